//! Sparse segment indexes in Kafka's file formats.
//!
//! ```text
//! .index      entries of 8 bytes:  relative offset u32 BE | file position u32 BE
//! .timeindex  entries of 12 bytes: timestamp i64 BE       | relative offset u32 BE
//! ```
//!
//! An offset-index entry `(o, p)` says the batch starting at byte `p` holds offset
//! `base + o` (its last offset); a time-index entry `(t, o)` says no record at or
//! before offset `base + o` has a timestamp above `t`. Both are sparse: a missing
//! entry only costs a longer scan, never a wrong answer.
//!
//! The active segment keeps its entries in memory and writes the new ones to the file
//! in one `pwrite` when the index is synced (checkpoint, seal, close) — not one syscall
//! per entry. Entries past the last checkpoint need not be on disk: recovery rebuilds
//! them. Sealed segments map their files read-only on first use, so an idle partition
//! with many segments costs no heap. Neither keeps a descriptor open between uses (a
//! mapping needs none), so indexes cost nothing of the open-file budget: the active
//! index opens its file for each write, which happens at most once per checkpoint.
//!
//! Invariants: entries are strictly increasing in both fields (offsets, positions,
//! timestamps); the file's first `written` bytes equal the first `written` bytes of
//! an active index's entries.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;

use crate::error::{LogError, Result};

/// Width of an offset-index entry.
pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
/// Width of a time-index entry.
pub(crate) const TIME_ENTRY_BYTES: usize = 12;

/// One index file: an append-only array of fixed-width big-endian entries.
pub(crate) struct IndexFile<const W: usize> {
    path: PathBuf,
    state: IndexState,
}

enum IndexState {
    /// Entries in memory; the first `written` bytes are also in the file, synced
    /// unless `unsynced`.
    Active {
        bytes: Vec<u8>,
        written: usize,
        unsynced: bool,
    },
    /// Read-only; the file is mapped on first lookup.
    Sealed { mapped: OnceLock<Option<Mmap>> },
}

impl<const W: usize> IndexFile<W> {
    /// Opens (creating if needed) an index for appending, loading its entries.
    /// A trailing partial entry is dropped.
    pub(crate) fn open_active(path: &Path) -> Result<Self> {
        let file = open_for_writing(path)?;
        let len = file
            .metadata()
            .map_err(LogError::io("stat index", path))?
            .len() as usize;
        let mut bytes = vec![0u8; len - len % W];
        file.read_exact_at(&mut bytes, 0)
            .map_err(LogError::io("read index", path))?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            state: IndexState::Active {
                written: bytes.len(),
                bytes,
                unsynced: false,
            },
        })
    }

    /// An index of a sealed segment, read lazily.
    pub(crate) fn sealed(path: &Path) -> Self {
        IndexFile {
            path: path.to_path_buf(),
            state: IndexState::Sealed {
                mapped: OnceLock::new(),
            },
        }
    }

    /// The entries as one byte slice (mapping a sealed file on first use). A sealed
    /// index that cannot be read behaves as empty: lookups fall back to scanning.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.state {
            IndexState::Active { bytes, .. } => bytes,
            IndexState::Sealed { mapped } => {
                let map = mapped.get_or_init(|| map_file(&self.path));
                match map {
                    Some(map) => &map[..map.len() - map.len() % W],
                    None => &[],
                }
            }
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.bytes().len() / W
    }

    /// The `i`-th entry.
    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        &self.bytes()[i * W..(i + 1) * W]
    }

    /// Appends one entry in memory; it reaches the file at the next sync.
    pub(crate) fn append(&mut self, entry: &[u8; W]) -> Result<()> {
        match &mut self.state {
            IndexState::Active { bytes, .. } => {
                bytes.extend_from_slice(entry);
                Ok(())
            }
            IndexState::Sealed { .. } => Err(LogError::CorruptData {
                path: self.path.clone(),
                reason: "append to a sealed index".into(),
            }),
        }
    }

    /// Writes the entries not yet in the file, in one `pwrite`, and returns the file
    /// if it has changes not yet synced; `None` for a sealed index or one already
    /// synced. On error nothing is counted as written, so the next call retries.
    fn write_pending(&mut self) -> Result<Option<File>> {
        let IndexState::Active {
            bytes,
            written,
            unsynced,
        } = &mut self.state
        else {
            return Ok(None);
        };
        if *written == bytes.len() && !*unsynced {
            return Ok(None);
        }
        let file = open_for_writing(&self.path)?;
        if *written < bytes.len() {
            file.write_all_at(&bytes[*written..], *written as u64)
                .map_err(LogError::io("write index entries", &self.path))?;
            *written = bytes.len();
        }
        // Counted as synced now: the caller syncs it, and a failed sync fails the log.
        *unsynced = false;
        Ok(Some(file))
    }

    /// Keeps the first `entries` entries, in memory and on disk.
    pub(crate) fn truncate(&mut self, entries: usize) -> Result<()> {
        if let IndexState::Active { bytes, .. } = &self.state {
            if entries * W >= bytes.len() {
                // Nothing to cut (recovery of an intact tail): no need to open the file.
                return Ok(());
            }
        }
        self.make_active()?;
        if let IndexState::Active {
            bytes,
            written,
            unsynced,
        } = &mut self.state
        {
            bytes.truncate(entries * W);
            *written = (*written).min(bytes.len());
            open_for_writing(&self.path)?
                .set_len(*written as u64)
                .map_err(LogError::io("truncate index", &self.path))?;
            *unsynced = true;
        }
        Ok(())
    }

    /// Reopens a sealed index for appending (after truncation of its segment).
    pub(crate) fn make_active(&mut self) -> Result<()> {
        if matches!(self.state, IndexState::Sealed { .. }) {
            // Drop the mapping before the file can change size under it.
            let path = self.path.clone();
            self.state = IndexState::Sealed {
                mapped: OnceLock::new(),
            };
            *self = Self::open_active(&path)?;
        }
        Ok(())
    }

    /// Writes pending entries, makes the file exactly as long as the entries, syncs it
    /// and switches to the lazily mapped read-only form.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if let IndexState::Active { unsynced, .. } = &mut self.state {
            // Sealing trims and syncs even an index with nothing new.
            *unsynced = true;
        }
        let file = self.write_pending()?;
        if let (Some(file), IndexState::Active { bytes, .. }) = (file, &self.state) {
            file.set_len(bytes.len() as u64)
                .map_err(LogError::io("trim index", &self.path))?;
            file.sync_data()
                .map_err(LogError::io("sync index", &self.path))?;
            self.state = IndexState::Sealed {
                mapped: OnceLock::new(),
            };
        }
        Ok(())
    }

    /// Writes pending entries and syncs them (no-op for a sealed index, synced when
    /// sealed).
    pub(crate) fn sync(&mut self) -> Result<()> {
        match self.sync_handle()? {
            Some((file, path)) => file.sync_data().map_err(LogError::io("sync index", path)),
            None => Ok(()),
        }
    }

    /// Writes pending entries and returns the file to sync without holding the log's
    /// lock; `None` for a sealed index or when nothing changed since the last sync.
    pub(crate) fn sync_handle(&mut self) -> Result<Option<(File, PathBuf)>> {
        Ok(self.write_pending()?.map(|file| (file, self.path.clone())))
    }

    /// The index file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens an index file for writing (creating it if needed); the descriptor lives only
/// as long as the write or sync that needs it.
fn open_for_writing(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(LogError::io("open index", path))
}

fn map_file(path: &Path) -> Option<Mmap> {
    let file = File::open(path).ok()?;
    if file.metadata().ok()?.len() == 0 {
        return None;
    }
    // SAFETY: sealed index files are never written again while mapped: the log only
    // changes a sealed index after `make_active` has dropped the mapping, and deletes
    // unlink the file, which leaves an existing mapping valid.
    unsafe { Mmap::map(&file) }.ok()
}

/// Offset index: relative last offset of a batch → byte position of that batch.
pub(crate) type OffsetIndex = IndexFile<OFFSET_ENTRY_BYTES>;
/// Time index: max timestamp so far → relative offset where it was reached.
pub(crate) type TimeIndex = IndexFile<TIME_ENTRY_BYTES>;

impl OffsetIndex {
    /// Entry `i` as `(relative offset, position)`.
    pub(crate) fn get(&self, i: usize) -> (u32, u32) {
        let e = self.entry(i);
        (
            u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        )
    }

    /// The position of the last indexed batch whose last offset is below
    /// `relative_offset` — scanning from there reaches the batch holding it.
    /// Returns 0 when no entry qualifies.
    pub(crate) fn lookup(&self, relative_offset: u32) -> u32 {
        let n = self.len();
        // Entries with last offset < target: the batch holding the target starts after.
        let count = partition_point(n, |i| self.get(i).0 < relative_offset);
        if count == 0 {
            0
        } else {
            // The batch at that position ends before the target, but scanning from it
            // is still correct and the next entry may already be past the target.
            self.get(count - 1).1
        }
    }

    /// Appends `(relative offset, position)`.
    pub(crate) fn push(&mut self, relative_offset: u32, position: u32) -> Result<()> {
        let mut entry = [0u8; OFFSET_ENTRY_BYTES];
        entry[..4].copy_from_slice(&relative_offset.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.append(&entry)
    }

    /// Number of leading entries whose position is below `position`.
    pub(crate) fn entries_before_position(&self, position: u64) -> usize {
        partition_point(self.len(), |i| u64::from(self.get(i).1) < position)
    }
}

impl TimeIndex {
    /// Entry `i` as `(timestamp, relative offset)`.
    pub(crate) fn get(&self, i: usize) -> (i64, u32) {
        let e = self.entry(i);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        (
            i64::from_be_bytes(ts),
            u32::from_be_bytes([e[8], e[9], e[10], e[11]]),
        )
    }

    /// The last entry, which for a sealed segment is its max timestamp.
    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// The relative offset of the last entry with a timestamp below `timestamp`: every
    /// record up to and including it is older, so a search may start after it.
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<u32> {
        let count = partition_point(self.len(), |i| self.get(i).0 < timestamp);
        count.checked_sub(1).map(|i| self.get(i).1)
    }

    /// Appends `(timestamp, relative offset)` if it raises the last timestamp.
    pub(crate) fn push(&mut self, timestamp: i64, relative_offset: u32) -> Result<()> {
        if let Some((last_ts, last_offset)) = self.last() {
            if timestamp <= last_ts || relative_offset <= last_offset {
                return Ok(());
            }
        }
        let mut entry = [0u8; TIME_ENTRY_BYTES];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.append(&entry)
    }

    /// Number of leading entries whose offset is below `relative_offset`.
    pub(crate) fn entries_before_offset(&self, relative_offset: u64) -> usize {
        partition_point(self.len(), |i| u64::from(self.get(i).1) < relative_offset)
    }
}

/// The number of leading indices in `0..n` for which `pred` holds (`pred` must be
/// true then false, like `slice::partition_point`).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_a_position_at_or_before_the_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = OffsetIndex::open_active(&dir.path().join("0.index")).expect("open");
        assert_eq!(index.lookup(5), 0);
        index.push(9, 4096).expect("push");
        index.push(19, 8192).expect("push");
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 4096);
        assert_eq!(index.lookup(19), 4096);
        assert_eq!(index.lookup(25), 8192);
    }

    #[test]
    fn sealed_index_reads_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::open_active(&path).expect("open");
        index.push(100, 1).expect("push");
        index.push(100, 2).expect("equal timestamp is skipped");
        index.push(200, 3).expect("push");
        index.seal().expect("seal");
        assert_eq!(index.len(), 2);
        assert_eq!(index.last(), Some((200, 3)));
        assert_eq!(index.lookup(150), Some(1));
        assert_eq!(index.lookup(100), None);
        let reopened = TimeIndex::sealed(&path);
        assert_eq!(reopened.last(), Some((200, 3)));
    }

    #[test]
    fn partial_trailing_entry_is_dropped_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0, 0, 0, 1, 0, 0, 16, 0, 9, 9, 9]).expect("write");
        let index = OffsetIndex::open_active(&path).expect("open");
        assert_eq!(index.len(), 1);
        assert_eq!(index.get(0), (1, 4096));
    }
}
