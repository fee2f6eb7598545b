//! The open-file budget: how many segment log files may be open at once.
//!
//! Every segment's `.log` file is reached through a [`CachedFile`]: its path and,
//! while the budget allows, an open descriptor. Using one marks it most recently
//! used; opening one past the budget closes the least recently used of the others.
//! A closed file is reopened by path on its next use. The number of partitions and
//! segments a broker holds is thus limited by disk and memory, not by
//! `RLIMIT_NOFILE`. (Index files need no descriptor between uses: an active index
//! keeps its entries in memory and opens its file only to write them, and a sealed
//! one is mapped, which keeps no descriptor.)
//!
//! An operation holds an `Arc<OpenFile>` while it reads, writes or syncs, so an
//! eviction never closes a descriptor under it: it drops the cache's reference and
//! the descriptor closes when the last user is done. The descriptors of segment files
//! open at once are therefore at most the budget, plus those in-flight operations
//! hold, plus those pinned for readers of replaced or deleted segments (whose path
//! no longer names the bytes the reader expects).
//!
//! Durability: data written through one descriptor is synced by an `fdatasync` on
//! any descriptor of the same file, so reopening does not weaken a flush. But a
//! write-back error in a file no process has open can be forgotten when the kernel
//! drops the inode from its cache (PostgreSQL's "fsyncgate"), and a later sync would
//! then succeed. So a file written since its last sync is synced before its
//! descriptor closes, unless the log's flush policy is `os` (which promises nothing);
//! a failed sync marks the log failed, as a failed flush does.
//!
//! Invariants: a slot that holds an open file is listed by the budget unless pinned
//! (a listed slot may hold none, briefly, after a race with an eviction: that costs
//! one budget place until it is evicted again, never a descriptor over the budget).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Fewest segment files a budget allows: below this, a cleaning or a scan of a few
/// segments would evict the files it is about to use again.
pub const OPEN_FILES_MIN: usize = 16;

/// A broker-wide bound on open segment files, shared by every log that uses it. See
/// the [module docs](self).
pub struct FileBudget {
    open_files_max: usize,
    lru: Mutex<Lru>,
    next_id: AtomicU64,
    opened: AtomicU64,
    evicted: AtomicU64,
}

/// Slots by last use: `by_id` maps a slot to its use stamp, `by_use` the stamps back.
#[derive(Default)]
struct Lru {
    clock: u64,
    by_id: HashMap<u64, (u64, Weak<CachedFile>)>,
    by_use: BTreeMap<u64, u64>,
}

impl FileBudget {
    /// A budget of `open_files_max` segment files (raised to [`OPEN_FILES_MIN`]).
    pub fn new(open_files_max: usize) -> Arc<Self> {
        Arc::new(FileBudget {
            open_files_max: open_files_max.max(OPEN_FILES_MIN),
            lru: Mutex::new(Lru::default()),
            next_id: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    /// A budget that never closes a file, for a log used on its own.
    pub fn unbounded() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// The budget derived from the process's open-file limit: half of the soft
    /// `RLIMIT_NOFILE`, leaving the other half to connections, index writes,
    /// checkpoints and the files in-flight operations hold.
    pub fn from_rlimit() -> Arc<Self> {
        Self::new(default_open_files_max())
    }

    /// Segment files open at most (besides those in use or pinned).
    pub fn open_files_max(&self) -> usize {
        self.open_files_max
    }

    /// Segment files the budget counts as open now.
    pub fn open_files(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Segment files opened (or reopened) so far.
    pub fn files_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Segment files closed to stay within the budget so far.
    pub fn files_evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a use of the slot `id` (listing it if new) and closes the least
    /// recently used others beyond the budget — after the budget's lock is released,
    /// since closing may sync.
    fn touch(&self, id: u64, slot: &Weak<CachedFile>) {
        let victims = {
            let mut lru = self.lock();
            lru.clock += 1;
            let clock = lru.clock;
            let previous = lru.by_id.insert(id, (clock, Weak::clone(slot)));
            if let Some((used, _)) = previous {
                lru.by_use.remove(&used);
            }
            lru.by_use.insert(clock, id);
            let mut victims = Vec::new();
            while lru.by_id.len() > self.open_files_max {
                let Some((_, victim)) = lru.by_use.pop_first() else {
                    break;
                };
                debug_assert_ne!(victim, id, "the slot just used is the newest");
                if let Some(victim) = lru.by_id.remove(&victim).and_then(|(_, w)| w.upgrade()) {
                    victims.push(victim);
                }
            }
            victims
        };
        for victim in victims {
            if victim.close() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops counting the slot `id` (closed for good, pinned or dropped).
    fn forget(&self, id: u64) {
        let mut lru = self.lock();
        if let Some((used, _)) = lru.by_id.remove(&id) {
            lru.by_use.remove(&used);
        }
    }
}

impl std::fmt::Debug for FileBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBudget")
            .field("open_files_max", &self.open_files_max)
            .field("open_files", &self.open_files())
            .finish_non_exhaustive()
    }
}

/// Half of the soft `RLIMIT_NOFILE` (see [`FileBudget::from_rlimit`]); 512 if the
/// limit cannot be read.
pub fn default_open_files_max() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 512;
    }
    let soft = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
    (soft / 2).max(OPEN_FILES_MIN)
}

/// What the open files of one log share: the budget, whether closing a written file
/// must sync it, and the log's failed flag, which a failed sync sets.
pub(crate) struct LogFiles {
    /// The broker-wide budget the log's segment files are opened through.
    pub budget: Arc<FileBudget>,
    /// Set when a sync failed; the log then refuses writes until reopened.
    pub failed: AtomicBool,
    sync_on_close: AtomicBool,
}

impl LogFiles {
    /// Files of a log that uses `budget`; `sync_on_close` unless its flush policy is
    /// `os`.
    pub(crate) fn new(budget: &Arc<FileBudget>, sync_on_close: bool) -> Arc<Self> {
        Arc::new(LogFiles {
            budget: Arc::clone(budget),
            failed: AtomicBool::new(false),
            sync_on_close: AtomicBool::new(sync_on_close),
        })
    }

    /// Follows a change of the log's flush policy.
    pub(crate) fn set_sync_on_close(&self, sync_on_close: bool) {
        self.sync_on_close.store(sync_on_close, Ordering::Release);
    }
}

/// One open descriptor of a segment file, shared by the cache and the operations
/// using it; closed when the last of them drops it.
pub(crate) struct OpenFile {
    file: File,
    path: PathBuf,
    /// Written since the last sync. Set after a write and cleared before a sync, so a
    /// write racing a sync leaves it set.
    dirty: AtomicBool,
    log: Arc<LogFiles>,
}

impl OpenFile {
    /// Writes all of `bytes` at `position`.
    pub(crate) fn write_all_at(&self, bytes: &[u8], position: u64) -> std::io::Result<()> {
        self.file.write_all_at(bytes, position)?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Sets the file's length.
    pub(crate) fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// `fdatasync`s the file.
    pub(crate) fn sync_data(&self) -> std::io::Result<()> {
        let was_dirty = self.dirty.swap(false, Ordering::AcqRel);
        self.file.sync_data().inspect_err(|_| {
            if was_dirty {
                self.dirty.store(true, Ordering::Release);
            }
        })
    }
}

/// Reads go straight to the file; writes must use [`OpenFile`]'s own methods (which
/// method resolution picks first) so that the file is known to be dirty.
impl Deref for OpenFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if !*self.dirty.get_mut() || !self.log.sync_on_close.load(Ordering::Acquire) {
            return;
        }
        if let Err(error) = self.file.sync_data() {
            tracing::error!(%error, file = %self.path.display(), "sync before closing failed; log is now failed");
            self.log.failed.store(true, Ordering::Release);
        }
    }
}

/// A segment file opened on demand through the budget. See the [module docs](self).
pub(crate) struct CachedFile {
    id: u64,
    path: PathBuf,
    log: Arc<LogFiles>,
    me: Weak<CachedFile>,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    open: Option<Arc<OpenFile>>,
    /// Kept open outside the budget until dropped.
    pinned: bool,
}

impl CachedFile {
    /// The existing file at `path`, not opened until used.
    pub(crate) fn new(path: PathBuf, log: &Arc<LogFiles>) -> Arc<Self> {
        Arc::new_cyclic(|me| CachedFile {
            id: log.budget.next_id.fetch_add(1, Ordering::Relaxed),
            path,
            log: Arc::clone(log),
            me: Weak::clone(me),
            slot: Mutex::new(Slot::default()),
        })
    }

    /// Creates (or empties) the file at `path` and keeps it open.
    pub(crate) fn create(path: PathBuf, log: &Arc<LogFiles>) -> std::io::Result<Arc<Self>> {
        let cached = Self::new(path, log);
        let file = cached.open_file(true)?;
        cached.lock().open = Some(file);
        cached.log.budget.touch(cached.id, &cached.me);
        Ok(cached)
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_file(&self, create: bool) -> std::io::Result<Arc<OpenFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .open(&self.path)?;
        self.log.budget.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(OpenFile {
            file,
            path: self.path.clone(),
            dirty: AtomicBool::new(false),
            log: Arc::clone(&self.log),
        }))
    }

    /// The open file, opening it (and closing the least recently used others beyond
    /// the budget) if it was closed.
    pub(crate) fn open(&self) -> std::io::Result<Arc<OpenFile>> {
        let file = {
            let mut slot = self.lock();
            match &slot.open {
                Some(file) if slot.pinned => return Ok(Arc::clone(file)),
                Some(file) => Arc::clone(file),
                None => {
                    let file = self.open_file(false)?;
                    slot.open = Some(Arc::clone(&file));
                    file
                }
            }
        };
        self.log.budget.touch(self.id, &self.me);
        Ok(file)
    }

    /// Closes the cache's descriptor unless pinned (it is reopened if used again);
    /// returns whether it held one.
    pub(crate) fn close(&self) -> bool {
        let taken = {
            let mut slot = self.lock();
            if slot.pinned {
                return false;
            }
            slot.open.take()
        };
        // Dropped outside the slot's lock: the last reference may sync.
        taken.is_some()
    }

    /// Keeps the file open until this slot is dropped, outside the budget: for a
    /// segment about to be renamed over or deleted while readers may still use it, so
    /// that they keep reading the bytes they expect.
    pub(crate) fn pin(&self) -> std::io::Result<()> {
        {
            let mut slot = self.lock();
            if slot.open.is_none() {
                slot.open = Some(self.open_file(false)?);
            }
            slot.pinned = true;
        }
        self.log.budget.forget(self.id);
        Ok(())
    }

    /// Forgets unsynced writes: the file is being deleted, and syncing it on close
    /// would be wasted.
    pub(crate) fn discard_unsynced(&self) {
        if let Some(file) = &self.lock().open {
            file.dirty.store(false, Ordering::Release);
        }
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        self.log.budget.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(
        dir: &std::path::Path,
        name: &str,
        count: usize,
        log: &Arc<LogFiles>,
    ) -> Vec<Arc<CachedFile>> {
        (0..count)
            .map(|i| CachedFile::create(dir.join(format!("{name}{i}.log")), log).expect("create"))
            .collect()
    }

    #[test]
    fn the_least_recently_used_file_is_closed_beyond_the_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = FileBudget::new(OPEN_FILES_MIN);
        let log = LogFiles::new(&budget, true);
        let all = files(dir.path(), "a", OPEN_FILES_MIN + 4, &log);
        assert_eq!(budget.open_files(), OPEN_FILES_MIN);
        assert_eq!(budget.files_evicted(), 4);
        assert!(all[0].lock().open.is_none(), "the oldest was closed");
        assert!(all[OPEN_FILES_MIN + 3].lock().open.is_some());
        // Reopening writes to the same file and evicts the now oldest.
        all[0]
            .open()
            .expect("reopen")
            .write_all_at(b"x", 0)
            .expect("write");
        assert_eq!(std::fs::read(&all[0].path).expect("read"), b"x");
        assert!(all[4].lock().open.is_none());
        assert_eq!(budget.open_files(), OPEN_FILES_MIN);
    }

    #[test]
    fn a_pinned_file_stays_open_outside_the_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = FileBudget::new(OPEN_FILES_MIN);
        let log = LogFiles::new(&budget, true);
        let all = files(dir.path(), "a", 1, &log);
        all[0].pin().expect("pin");
        assert_eq!(budget.open_files(), 0);
        let more = files(dir.path(), "b", OPEN_FILES_MIN + 1, &log);
        assert!(
            all[0].lock().open.is_some(),
            "pinned files are never evicted"
        );
        assert_eq!(budget.open_files(), OPEN_FILES_MIN);
        drop(more);
        assert_eq!(budget.open_files(), 0);
        // Used again, it is still the pinned descriptor, outside the budget.
        all[0].open().expect("open");
        assert_eq!(budget.open_files(), 0);
    }

    #[test]
    fn a_written_file_is_synced_and_closed_when_evicted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = FileBudget::new(OPEN_FILES_MIN);
        let log = LogFiles::new(&budget, true);
        let all = files(dir.path(), "a", 1, &log);
        let file = all[0].open().expect("open");
        file.write_all_at(b"data", 0).expect("write");
        assert!(file.dirty.load(Ordering::Acquire));
        let _more = files(dir.path(), "b", OPEN_FILES_MIN, &log);
        // The evicted descriptor lives while this operation holds it.
        file.write_all_at(b"more", 4).expect("write after eviction");
        drop(file);
        assert!(!log.failed.load(Ordering::Acquire));
        assert_eq!(std::fs::read(&all[0].path).expect("read"), b"datamore");
    }
}
