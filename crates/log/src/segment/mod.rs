//! A segment: one `.log` file of batches plus its `.index` and `.timeindex`.
//!
//! Files are named by the segment's base offset in 20 digits, as Kafka names them
//! (`00000000000000001234.log`). The log file is written with `pwrite` at the
//! segment's own size, never with `O_APPEND`, so a failed or partial write is simply
//! overwritten by the next append and never becomes part of the segment.
//!
//! The log file is opened on demand through the broker's open-file budget
//! ([`file_budget`]), so a segment costs no descriptor while unused.
//!
//! Invariants: `size` bytes of the file hold whole, valid batches with strictly
//! increasing offsets in `[base_offset, next_offset)`; index entries point inside
//! those bytes.

pub(crate) mod file_budget;
pub(crate) mod index;
pub(crate) mod scan;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::records::Records;
use crate::batch::BatchHeader;
use crate::error::{BatchError, LogError, Result};
use file_budget::{CachedFile, LogFiles, OpenFile};
use index::{OffsetIndex, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use scan::{scan, Scanned, LOOKUP_CHUNK_BYTES, RECOVERY_CHUNK_BYTES};

/// Suffix of the files of a cleaned segment not yet swapped in.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// The three files of a segment, by extension; the log file last, so that a swap
/// that renames in this order makes the log file appear only with its indexes.
pub(crate) const EXTENSIONS: [&str; 3] = ["index", "timeindex", "log"];

/// `<base offset, 20 digits>.<extension>`.
pub(crate) fn file_name(base_offset: u64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// Parses the base offset out of a segment file name with the given extension.
pub(crate) fn parse_file_name(name: &str, extension: &str) -> Option<u64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// One appended batch, as the segment needs to index it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchPlacement {
    /// Byte position of the batch within the appended record set.
    pub position_in_set: usize,
    /// Bytes the batch occupies.
    pub size: usize,
    /// Its last offset (absolute).
    pub last_offset: u64,
    /// Its max timestamp.
    pub max_timestamp: i64,
}

/// A read-only snapshot of where a segment's readable bytes are, taken under the log's
/// lock and used outside it.
#[derive(Clone)]
pub(crate) struct SegmentView {
    pub base_offset: u64,
    /// One past the last offset the segment covers (compaction may leave a gap
    /// before it).
    pub next_offset: u64,
    /// The log file, opened through the budget when read.
    pub file: Arc<CachedFile>,
    /// Bytes of valid data at the time of the snapshot.
    pub size: u64,
    /// A position at or before the batch holding the offset of interest.
    pub start_position: u64,
}

impl SegmentView {
    /// The log file, open (reopened if the budget closed it).
    pub(crate) fn open(&self) -> std::io::Result<Arc<OpenFile>> {
        self.file.open()
    }

    /// Visits the batch headers from `start_position` while `visit` returns true.
    fn scan_headers(&self, mut visit: impl FnMut(u64, BatchHeader) -> bool) -> std::io::Result<()> {
        let range = (self.start_position, self.size);
        let file = self.open()?;
        scan(&file, range, false, LOOKUP_CHUNK_BYTES, |item| match item {
            Scanned::Batch { position, header } => visit(position, header),
            Scanned::Invalid { .. } => false,
        })
    }

    /// Finds the first batch whose last offset is at or after `offset`, scanning
    /// headers from `start_position`. `None` if the segment holds no such batch.
    pub(crate) fn locate(&self, offset: u64) -> std::io::Result<Option<(u64, BatchHeader)>> {
        let mut found = None;
        self.scan_headers(|position, header| {
            if header.last_offset() as u64 >= offset {
                found = Some((position, header));
            }
            found.is_none()
        })?;
        Ok(found)
    }

    /// Finds the first record at or after `min_offset` whose timestamp is at or after
    /// `timestamp`, scanning from `start_position`: `(offset, timestamp)`.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: u64,
        decompressed_bytes_max: usize,
    ) -> Result<Option<(u64, i64)>> {
        let mut found = Ok(None);
        let file = self
            .open()
            .map_err(LogError::io("open segment", self.path_hint()))?;
        self.scan_headers(|position, header| {
            if header.max_timestamp < timestamp || (header.last_offset() as u64) < min_offset {
                return true;
            }
            found = scan::read_range(&file, position, header.size_bytes())
                .map_err(LogError::io("read batch", self.path_hint()))
                .and_then(|bytes| {
                    self.first_record_at_or_after(
                        &bytes,
                        position,
                        (timestamp, min_offset),
                        decompressed_bytes_max,
                    )
                });
            matches!(found, Ok(None))
        })
        .map_err(LogError::io("scan segment", self.path_hint()))?;
        found
    }

    /// The first record of `batch` (read from `position`) at or after `min_offset`
    /// whose timestamp is at or after `timestamp`.
    fn first_record_at_or_after(
        &self,
        batch: &[u8],
        position: u64,
        (timestamp, min_offset): (i64, u64),
        decompressed_bytes_max: usize,
    ) -> Result<Option<(u64, i64)>> {
        let corrupt = |reason: BatchError| LogError::CorruptData {
            path: self.path_hint(),
            reason: format!("batch at byte {position}: {reason}"),
        };
        let records = Records::new(batch, decompressed_bytes_max).map_err(corrupt)?;
        for record in records.iter() {
            let record = record.map_err(corrupt)?;
            if record.timestamp >= timestamp && record.offset >= min_offset as i64 {
                return Ok(Some((record.offset as u64, record.timestamp)));
            }
        }
        Ok(None)
    }

    pub(crate) fn path_hint(&self) -> PathBuf {
        PathBuf::from(file_name(self.base_offset, "log"))
    }
}

/// A segment of a partition log.
pub(crate) struct Segment {
    pub base_offset: u64,
    log_path: PathBuf,
    file: Arc<CachedFile>,
    /// Bytes of whole, valid batches.
    pub size: u64,
    /// One past the last offset stored (= `base_offset` when empty).
    pub next_offset: u64,
    /// Largest batch max timestamp, or -1 when empty.
    pub max_timestamp: i64,
    /// Last offset of the batch that holds `max_timestamp`.
    pub offset_of_max_timestamp: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index_entry: u64,
    /// Wall-clock time of the first append, for `segment_ms`.
    pub first_append_ms: Option<i64>,
}

impl Segment {
    /// Creates a new, empty segment (replacing any leftover files of that name).
    pub(crate) fn create(dir: &Path, base_offset: u64, files: &Arc<LogFiles>) -> Result<Self> {
        Self::create_named(dir, base_offset, "", files)
    }

    /// Creates the log cleaner's replacement for the segment at `base_offset`, under
    /// temporary names (`<base>.log.cleaned`, …) that recovery deletes unless a swap
    /// was committed (see `cleaner::swap`).
    pub(crate) fn create_cleaned(
        dir: &Path,
        base_offset: u64,
        files: &Arc<LogFiles>,
    ) -> Result<Self> {
        Self::create_named(dir, base_offset, CLEANED_SUFFIX, files)
    }

    fn create_named(
        dir: &Path,
        base_offset: u64,
        suffix: &str,
        files: &Arc<LogFiles>,
    ) -> Result<Self> {
        let name = |extension: &str| format!("{}{suffix}", file_name(base_offset, extension));
        let log_path = dir.join(name("log"));
        let file = CachedFile::create(log_path.clone(), files)
            .map_err(LogError::io("create segment", &log_path))?;
        for extension in ["index", "timeindex"] {
            remove_if_exists(&dir.join(name(extension)))?;
        }
        Ok(Segment {
            base_offset,
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            index: OffsetIndex::open_active(&dir.join(name("index")))?,
            time_index: TimeIndex::open_active(&dir.join(name("timeindex")))?,
            bytes_since_index_entry: 0,
            first_append_ms: None,
            log_path,
        })
    }

    /// Opens an existing segment without reading its data (nor opening its log file,
    /// which the budget opens on first use). Its indexes are opened sealed (lazily
    /// mapped) unless `active`. `next_offset` is trusted when given; recovery computes
    /// it otherwise.
    pub(crate) fn open(
        dir: &Path,
        base_offset: u64,
        next_offset: u64,
        active: bool,
        files: &Arc<LogFiles>,
    ) -> Result<Self> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let size = file_len(&log_path)?;
        let file = CachedFile::new(log_path.clone(), files);
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_path = dir.join(file_name(base_offset, "timeindex"));
        let (index, time_index) = if active {
            (
                OffsetIndex::open_active(&index_path)?,
                TimeIndex::open_active(&time_path)?,
            )
        } else {
            (
                OffsetIndex::sealed(&index_path),
                TimeIndex::sealed(&time_path),
            )
        };
        let mut segment = Segment {
            base_offset,
            file,
            size,
            next_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            index,
            time_index,
            bytes_since_index_entry: 0,
            first_append_ms: None,
            log_path,
        };
        if let Some((timestamp, relative)) = segment.time_index.last() {
            segment.max_timestamp = timestamp;
            segment.offset_of_max_timestamp = base_offset + u64::from(relative);
        }
        Ok(segment)
    }

    /// The segment's log file path.
    pub(crate) fn path(&self) -> &Path {
        &self.log_path
    }

    /// Cheap checks that the sealed indexes fit this segment: whole entries, last
    /// entries inside the data. A failure means they must be rebuilt.
    pub(crate) fn indexes_look_consistent(&self) -> bool {
        let relative_end = self.next_offset - self.base_offset;
        let file_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let whole = |p: &Path, width: u64| file_len(p).is_some_and(|len| len % width == 0);
        if !whole(self.index.path(), OFFSET_ENTRY_BYTES as u64)
            || !whole(self.time_index.path(), TIME_ENTRY_BYTES as u64)
        {
            return false;
        }
        let offset_ok = self.index.len().checked_sub(1).is_none_or(|i| {
            let (offset, position) = self.index.get(i);
            u64::from(offset) < relative_end && u64::from(position) < self.size
        });
        // Sealing records the max timestamp as the last entry, so a sealed segment
        // with data has at least one.
        let time_ok = match self.time_index.last() {
            Some((_, offset)) => u64::from(offset) < relative_end,
            None => self.size == 0,
        };
        offset_ok && time_ok
    }

    /// Whether `last_offset` still fits the 32-bit relative offsets of the indexes.
    pub(crate) fn fits_offsets(&self, last_offset: u64) -> bool {
        last_offset - self.base_offset <= u64::from(u32::MAX)
    }

    /// Whether either index has reached `entries_max` entries.
    pub(crate) fn index_full(&self, index_bytes_max: usize) -> bool {
        self.index.len() >= index_bytes_max / OFFSET_ENTRY_BYTES
            || self.time_index.len() >= index_bytes_max / TIME_ENTRY_BYTES
    }

    /// Writes `records` at the end of the segment and indexes its batches. On a write
    /// error nothing changes (the bytes past `size` are garbage to be overwritten).
    pub(crate) fn append(
        &mut self,
        records: &[u8],
        batches: &[BatchPlacement],
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> Result<()> {
        self.open_file()?
            .write_all_at(records, self.size)
            .map_err(LogError::io("append to segment", &self.log_path))?;
        let start = self.size;
        for batch in batches {
            self.index_batch(
                start + batch.position_in_set as u64,
                batch,
                index_interval_bytes,
            );
        }
        self.size += records.len() as u64;
        if let Some(last) = batches.last() {
            self.next_offset = last.last_offset + 1;
        }
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Adds index entries for a batch written at `position` when the index interval has
    /// passed. Index write errors only cost lookup speed (the index is sparse), so they
    /// are logged, not returned.
    fn index_batch(&mut self, position: u64, batch: &BatchPlacement, index_interval_bytes: u64) {
        if batch.max_timestamp > self.max_timestamp {
            self.max_timestamp = batch.max_timestamp;
            self.offset_of_max_timestamp = batch.last_offset;
        }
        if self.bytes_since_index_entry >= index_interval_bytes {
            let relative = (batch.last_offset - self.base_offset) as u32;
            let relative_max = (self.offset_of_max_timestamp - self.base_offset) as u32;
            let result = self
                .index
                .push(relative, position as u32)
                .and_then(|()| self.time_index.push(self.max_timestamp, relative_max));
            match result {
                Ok(()) => self.bytes_since_index_entry = 0,
                Err(error) => tracing::warn!(%error, "skipping index entry"),
            }
        }
        self.bytes_since_index_entry += batch.size as u64;
    }

    /// A snapshot for reading around `offset` outside the log's lock.
    pub(crate) fn view_for_offset(&self, offset: u64) -> SegmentView {
        let relative = offset
            .saturating_sub(self.base_offset)
            .min(u64::from(u32::MAX)) as u32;
        self.view_from(u64::from(self.index.lookup(relative)))
    }

    /// A snapshot for a timestamp search: starts after the records known to be older.
    pub(crate) fn view_for_timestamp(&self, timestamp: i64) -> SegmentView {
        let start = match self.time_index.lookup(timestamp) {
            Some(relative) => u64::from(self.index.lookup(relative)),
            None => 0,
        };
        self.view_from(start)
    }

    /// A snapshot of the whole segment, for the cleaner.
    pub(crate) fn whole_view(&self) -> SegmentView {
        self.view_from(0)
    }

    fn view_from(&self, start_position: u64) -> SegmentView {
        SegmentView {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            file: Arc::clone(&self.file),
            size: self.size,
            start_position: start_position.min(self.size),
        }
    }

    /// Validates batches from `position` (which holds offset `next_offset`) to the end
    /// of the file, indexing them and cutting the file at the first torn or corrupt
    /// batch. `max_so_far` is the `(max timestamp, its offset)` of the bytes before
    /// `position`. With `gaps`, batches need only increasing offsets (a compacted
    /// segment); without, each must start where the previous one ended. Returns the
    /// number of bytes cut.
    pub(crate) fn recover_from(
        &mut self,
        position: u64,
        next_offset: u64,
        max_so_far: (i64, u64),
        index_interval_bytes: u64,
        gaps: bool,
    ) -> Result<u64> {
        let file_len = file_len(&self.log_path)?;
        let position = position.min(file_len);
        self.index
            .truncate(self.index.entries_before_position(position))?;
        let relative_next = next_offset.saturating_sub(self.base_offset);
        self.time_index
            .truncate(self.time_index.entries_before_offset(relative_next))?;
        self.size = position;
        self.next_offset = next_offset.max(self.base_offset);
        (self.max_timestamp, self.offset_of_max_timestamp) = max_so_far;
        self.bytes_since_index_entry = match self.index.len().checked_sub(1) {
            Some(i) => position - u64::from(self.index.get(i).1),
            None => position,
        };
        let mut stop_reason = None;
        if position == file_len {
            // Nothing to validate (a clean restart): leave the file closed.
            return Ok(0);
        }
        let file = self.open_file()?;
        scan(
            &file,
            (position, file_len),
            true,
            RECOVERY_CHUNK_BYTES,
            |item| match item {
                Scanned::Batch {
                    position, header, ..
                } => {
                    let next = self.next_offset;
                    // Offsets in a segment written by appends are contiguous, so any other
                    // base offset means the (CRC-less) base offset field is damaged;
                    // cleaned segments may skip offsets, but never go back.
                    let misplaced = if gaps {
                        header.base_offset < next as i64
                    } else {
                        header.base_offset != next as i64
                    };
                    if misplaced || !self.fits_offsets(header.last_offset() as u64) {
                        stop_reason = Some(format!(
                            "batch at byte {position} has base offset {} instead of {next}",
                            header.base_offset
                        ));
                        return false;
                    }
                    let placement = BatchPlacement {
                        position_in_set: 0,
                        size: header.size_bytes(),
                        last_offset: header.last_offset() as u64,
                        max_timestamp: header.max_timestamp,
                    };
                    self.index_batch(position, &placement, index_interval_bytes);
                    self.size = position + placement.size as u64;
                    self.next_offset = placement.last_offset + 1;
                    true
                }
                Scanned::Invalid { position, reason } => {
                    stop_reason = Some(format!("batch at byte {position}: {reason}"));
                    false
                }
            },
        )
        .map_err(LogError::io("scan segment for recovery", &self.log_path))?;
        let cut = file_len - self.size;
        if cut > 0 {
            tracing::warn!(
                segment = %self.log_path.display(),
                bytes = cut,
                reason = stop_reason.as_deref().unwrap_or("unknown"),
                "truncating torn or corrupt segment tail"
            );
            file.set_len(self.size)
                .map_err(LogError::io("truncate segment", &self.log_path))?;
        }
        Ok(cut)
    }

    /// Drops every batch from the one holding `offset` on. Returns the new next offset
    /// (the base offset of the first removed batch, or `next_offset` if none).
    pub(crate) fn truncate_to(&mut self, offset: u64, index_interval_bytes: u64) -> Result<u64> {
        let view = self.view_from(0);
        let cut = view
            .locate(offset)
            .map_err(LogError::io("scan segment", &self.log_path))?;
        let Some((position, header)) = cut else {
            return Ok(self.next_offset);
        };
        let new_next = (header.base_offset as u64).max(self.base_offset);
        self.open_file()?
            .set_len(position)
            .map_err(LogError::io("truncate segment", &self.log_path))?;
        // Re-index the kept bytes; truncation is rare, so a full scan is acceptable.
        self.recover_from(
            0,
            self.base_offset,
            (-1, self.base_offset),
            index_interval_bytes,
            true,
        )?;
        debug_assert_eq!(self.next_offset, new_next.max(self.next_offset));
        Ok(self.next_offset)
    }

    /// Syncs the data and both indexes.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.open_file()?
            .sync_data()
            .map_err(LogError::io("sync segment", &self.log_path))?;
        self.index.sync()?;
        self.time_index.sync()
    }

    /// The log file, open, for I/O outside the log's lock (reopened through the
    /// budget if it was closed).
    pub(crate) fn open_file(&self) -> Result<Arc<OpenFile>> {
        self.file
            .open()
            .map_err(LogError::io("open segment", &self.log_path))
    }

    /// Handles to sync the log file and both indexes outside the log's lock.
    pub(crate) fn sync_handles(&mut self) -> Result<Vec<SyncHandle>> {
        let mut handles = vec![SyncHandle::Segment(
            self.open_file()?,
            self.log_path.clone(),
        )];
        for (file, path) in [self.index.sync_handle()?, self.time_index.sync_handle()?]
            .into_iter()
            .flatten()
        {
            handles.push(SyncHandle::Index(file, path));
        }
        Ok(handles)
    }

    /// Makes the segment read-only: records its max timestamp as the last time-index
    /// entry (so reopening knows it), trims and syncs the indexes.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if self.max_timestamp >= 0 {
            let relative = (self.offset_of_max_timestamp - self.base_offset) as u32;
            self.time_index.push(self.max_timestamp, relative)?;
        }
        self.index.seal()?;
        self.time_index.seal()
    }

    /// Trims the file to `size` (dropping garbage from failed writes) on clean close;
    /// a file already of that size is not opened.
    pub(crate) fn trim(&self) -> Result<()> {
        if file_len(&self.log_path)? == self.size {
            return Ok(());
        }
        self.open_file()?
            .set_len(self.size)
            .map_err(LogError::io("trim segment", &self.log_path))
    }

    /// Keeps the log file open, outside the budget, until this segment and its views
    /// are dropped (see [`CachedFile::pin`]): called before its path is renamed over,
    /// so that readers keep reading the bytes they located.
    pub(crate) fn pin(&self) -> Result<()> {
        self.file
            .pin()
            .map_err(LogError::io("open segment", &self.log_path))
    }

    /// Deletes the segment's files. Readers still holding a view keep reading the
    /// deleted file; without views (the caller holds the log's lock, under which
    /// views are taken) its descriptor is closed now, not when the log is dropped.
    pub(crate) fn delete(&self) -> Result<()> {
        self.file.discard_unsynced();
        if Arc::strong_count(&self.file) > 1 {
            self.pin()?;
        } else {
            self.file.close();
        }
        remove_if_exists(&self.log_path)?;
        remove_if_exists(self.index.path())?;
        remove_if_exists(self.time_index.path())
    }
}

/// A file to sync outside the log's lock.
pub(crate) enum SyncHandle {
    /// A segment's log file (its sync is recorded, so closing it need not sync).
    Segment(Arc<OpenFile>, PathBuf),
    /// An index file.
    Index(File, PathBuf),
}

impl SyncHandle {
    /// `fdatasync`s the file.
    pub(crate) fn sync_data(&self) -> std::io::Result<()> {
        match self {
            SyncHandle::Segment(file, _) => file.sync_data(),
            SyncHandle::Index(file, _) => file.sync_data(),
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        match self {
            SyncHandle::Segment(_, path) | SyncHandle::Index(_, path) => path,
        }
    }
}

/// The length of the file at `path`, without opening it.
fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(LogError::io("stat segment", path))
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(LogError::io("remove file", path)(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(1234, "log"), "00000000000000001234.log");
        assert_eq!(
            parse_file_name("00000000000000001234.log", "log"),
            Some(1234)
        );
        assert_eq!(parse_file_name("00000000000000001234.index", "log"), None);
        assert_eq!(parse_file_name("1234.log", "log"), None);
        assert_eq!(parse_file_name("0000000000000000123x.log", "log"), None);
    }
}
