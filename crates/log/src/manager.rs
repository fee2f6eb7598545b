//! The log manager: every partition log of one data directory.
//!
//! ```text
//! DATA/
//!   .lock                      held (flock) while a process has the directory open
//!   .clean-shutdown            written by `close`, removed by `open`
//!   <topic>-<partition>/       one PartitionLog each
//!     00000000000000000000.log / .index / .timeindex
//!     recovery-point
//! ```
//!
//! `open` recovers every log in parallel (one thread per core). Every log opens its
//! segment files through the manager's [`FileBudget`], so neither start-up nor the
//! number of partitions is bounded by the open-file limit. Background
//! maintenance — interval flushes, recovery checkpoints, retention — runs on one
//! thread started with [`LogManager::spawn_maintenance`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cleaner::{CleanerConfig, CleanerStats};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::partition::{now_ms, CleanOptions, CleaningOutcome, PartitionLog};
use crate::segment::file_budget::FileBudget;

/// Called by the cleaner thread after each completed cleaning.
pub type CleanedCallback = Box<dyn Fn(&TopicPartition, &CleaningOutcome) + Send + Sync>;

const LOCK_FILE: &str = ".lock";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Directory (inside the data directory) where logs nothing refers to are set aside.
pub const ORPHANED_DIR: &str = "orphaned";
/// Longest topic name Kafka allows.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// A topic partition, named on disk `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name (the topic may itself contain `-`).
    pub fn parse_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        let partition: i32 = partition.parse().ok().filter(|p| *p >= 0)?;
        is_valid_topic_name(topic).then(|| TopicPartition::new(topic, partition))
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Kafka's rule: 1–249 characters of ASCII letters, digits, `.`, `_` and `-`, and not
/// `.` or `..`. Checked here too because topic names become directory names.
pub fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= TOPIC_NAME_BYTES_MAX
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// How often background maintenance does each job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// How often the thread wakes (also the resolution of `interval` flushes).
    pub tick: Duration,
    /// How often each changed log writes its recovery checkpoint. Bounds how much
    /// data a restart after a crash must re-validate.
    pub checkpoint_interval: Duration,
    /// How often retention runs.
    pub retention_check_interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            tick: Duration::from_millis(10),
            checkpoint_interval: Duration::from_secs(1),
            retention_check_interval: Duration::from_secs(30),
        }
    }
}

/// All partition logs of a data directory.
pub struct LogManager {
    data_dir: PathBuf,
    /// Held for the manager's lifetime; the OS releases the lock if the process dies.
    _lock: File,
    logs: RwLock<HashMap<TopicPartition, Arc<PartitionLog>>>,
    /// True when the previous process shut down cleanly.
    recovered_clean: bool,
    /// Listed by `open_first` and not opened yet.
    unopened: Mutex<Vec<TopicPartition>>,
    /// Bounds the segment files open at once, across every log.
    budget: Arc<FileBudget>,
}

impl LogManager {
    /// Locks `data_dir` (creating it if needed) and opens every partition log in it,
    /// in parallel, with the config `config_for` returns for each, under the default
    /// open-file budget ([`FileBudget::from_rlimit`]).
    pub fn open(
        data_dir: &Path,
        config_for: impl Fn(&TopicPartition) -> LogConfig + Sync,
    ) -> Result<Self> {
        let manager =
            Self::open_first(data_dir, &FileBudget::from_rlimit(), |_| true, &config_for)?;
        manager.open_rest(|_| true, &config_for)?;
        Ok(manager)
    }

    /// Locks `data_dir` (creating it if needed), lists its partition logs and opens,
    /// in parallel, those `first` selects (e.g. the metadata log that says which of the
    /// others to open); [`open_rest`](Self::open_rest) deals with the rest. Every log
    /// opens its segment files through `budget`.
    pub fn open_first(
        data_dir: &Path,
        budget: &Arc<FileBudget>,
        first: impl Fn(&TopicPartition) -> bool,
        config_for: impl Fn(&TopicPartition) -> LogConfig + Sync,
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(LogError::io("create data directory", data_dir))?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(LogError::io("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    path: data_dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LogError::io("lock data directory", &lock_path)(e))
            }
        }
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let (partitions, rest): (Vec<_>, Vec<_>) = list_partitions(data_dir)?
            .into_iter()
            .partition(|tp| first(tp));
        let started = Instant::now();
        let opened = open_parallel(data_dir, &partitions, (clean, budget), &config_for)?;
        // Removed before any log is written: a crash from here on recovers everything.
        if clean {
            std::fs::remove_file(&marker)
                .map_err(LogError::io("remove clean-shutdown marker", &marker))?;
        }
        crate::checkpoint::sync_dir(data_dir)?;
        tracing::info!(
            dir = %data_dir.display(),
            partitions = opened.len(),
            clean,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "opened the first logs"
        );
        Ok(LogManager {
            data_dir: data_dir.to_path_buf(),
            _lock: lock,
            logs: RwLock::new(opened.into_iter().collect()),
            recovered_clean: clean,
            unopened: Mutex::new(rest),
            budget: Arc::clone(budget),
        })
    }

    /// Opens, in parallel, the listed logs [`open_first`](Self::open_first) left that
    /// `keep` accepts, and returns the others, unopened (no descriptor is spent on
    /// them): the caller [sets them aside](Self::set_aside_unopened) or
    /// [removes](Self::remove_unopened) them.
    pub fn open_rest(
        &self,
        keep: impl Fn(&TopicPartition) -> bool,
        config_for: impl Fn(&TopicPartition) -> LogConfig + Sync,
    ) -> Result<Vec<TopicPartition>> {
        let rest = std::mem::take(&mut *self.unopened.lock().unwrap_or_else(|e| e.into_inner()));
        let (kept, others): (Vec<_>, Vec<_>) = rest.into_iter().partition(|tp| keep(tp));
        let started = Instant::now();
        let opened = open_parallel(
            &self.data_dir,
            &kept,
            (self.recovered_clean, &self.budget),
            &config_for,
        )?;
        self.write_logs().extend(opened);
        tracing::info!(
            dir = %self.data_dir.display(),
            partitions = kept.len(),
            left_unopened = others.len(),
            open_files = self.budget.open_files(),
            open_files_max = self.budget.open_files_max(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "opened logs"
        );
        Ok(others)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The budget of open segment files every log of this manager shares.
    pub fn file_budget(&self) -> &Arc<FileBudget> {
        &self.budget
    }

    /// Whether the previous process shut down cleanly (no recovery scan was needed).
    pub fn recovered_clean(&self) -> bool {
        self.recovered_clean
    }

    /// The log of `tp`, if it exists.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionLog>> {
        self.read_logs().get(tp).cloned()
    }

    /// Every log, sorted by topic and partition.
    pub fn logs(&self) -> Vec<(TopicPartition, Arc<PartitionLog>)> {
        let mut all: Vec<_> = self
            .read_logs()
            .iter()
            .map(|(tp, log)| (tp.clone(), Arc::clone(log)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Creates an empty log for `tp`. On failure, a directory it created is removed.
    pub fn create(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<PartitionLog>> {
        if !is_valid_topic_name(&tp.topic) || tp.partition < 0 {
            return Err(LogError::Config(format!("invalid topic partition {tp}")));
        }
        let mut logs = self.write_logs();
        if logs.contains_key(tp) {
            return Err(LogError::Partition {
                name: tp.to_string(),
                what: "already exists",
            });
        }
        let dir = self.data_dir.join(tp.dir_name());
        let existed = dir.exists();
        let log = match PartitionLog::open_in(&dir, config, &self.budget) {
            Ok(log) => Arc::new(log),
            Err(error) => {
                // Leave nothing behind but what was there: a failed create is undone.
                if !existed && dir.is_dir() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                return Err(error);
            }
        };
        crate::checkpoint::sync_dir(&self.data_dir)?;
        logs.insert(tp.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// Removes the directory of `tp`, a log [`open_rest`](Self::open_rest) left
    /// unopened (e.g. of a topic whose deletion was interrupted).
    pub fn remove_unopened(&self, tp: &TopicPartition) -> Result<()> {
        let dir = self.data_dir.join(tp.dir_name());
        std::fs::remove_dir_all(&dir).map_err(LogError::io("remove partition directory", &dir))?;
        crate::checkpoint::sync_dir(&self.data_dir)
    }

    /// Moves the directory of `tp`, a log [`open_rest`](Self::open_rest) left
    /// unopened, intact, under [`ORPHANED_DIR`] as `<topic>-<partition>.<unix ms>`,
    /// for an operator to look at. Returns where it went.
    pub fn set_aside_unopened(&self, tp: &TopicPartition) -> Result<PathBuf> {
        let aside = self.data_dir.join(ORPHANED_DIR);
        std::fs::create_dir_all(&aside).map_err(LogError::io("create directory", &aside))?;
        let from = self.data_dir.join(tp.dir_name());
        let to = aside.join(format!("{}.{}", tp.dir_name(), crate::now_ms()));
        std::fs::rename(&from, &to).map_err(LogError::io("move partition directory", &from))?;
        crate::checkpoint::sync_dir(&aside)?;
        crate::checkpoint::sync_dir(&self.data_dir)?;
        Ok(to)
    }

    /// Removes the log of `tp` and its files. Readers still holding it keep working on
    /// the unlinked files until they drop it.
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        self.take(tp)?.delete()?;
        crate::checkpoint::sync_dir(&self.data_dir)
    }

    /// Takes the log of `tp` out of the manager.
    fn take(&self, tp: &TopicPartition) -> Result<Arc<PartitionLog>> {
        self.write_logs()
            .remove(tp)
            .ok_or_else(|| LogError::Partition {
                name: tp.to_string(),
                what: "does not exist",
            })
    }

    /// One round of maintenance at `now`: interval flushes always; checkpoints and
    /// retention when `checkpoint`/`retention` say so. Errors are logged per log.
    pub fn maintain(&self, now: Instant, checkpoint: bool, retention: bool) {
        let wall_ms = now_ms();
        for (tp, log) in self.logs() {
            let result = log
                .flush_if_due(now)
                .and_then(|()| if checkpoint { log.checkpoint() } else { Ok(()) })
                .and_then(|()| {
                    if retention {
                        let outcome = log.enforce_retention(wall_ms)?;
                        if outcome.segments_deleted > 0 {
                            tracing::info!(%tp, segments = outcome.segments_deleted, bytes = outcome.bytes_deleted, "retention deleted segments");
                        }
                    }
                    Ok(())
                });
            if let Err(error) = result {
                tracing::warn!(%tp, %error, "log maintenance failed");
            }
        }
    }

    /// Starts the maintenance thread; it stops when the handle is stopped or dropped.
    pub fn spawn_maintenance(self: &Arc<Self>, config: MaintenanceConfig) -> Maintenance {
        let manager = Arc::clone(self);
        let mut last_checkpoint = Instant::now();
        let mut last_retention = Instant::now();
        Maintenance::spawn("strom-log-maintenance", move || {
            std::thread::park_timeout(config.tick);
            let now = Instant::now();
            let checkpoint = now.duration_since(last_checkpoint) >= config.checkpoint_interval;
            let retention = now.duration_since(last_retention) >= config.retention_check_interval;
            manager.maintain(now, checkpoint, retention);
            if checkpoint {
                last_checkpoint = now;
            }
            if retention {
                last_retention = now;
            }
        })
    }

    /// One pass of the log cleaner at `now_ms`: cleans the compacted log that needs it
    /// most (the most overdue by `max.compaction.lag.ms`, then the dirtiest). Returns
    /// the log cleaned, if any. Failures are logged and counted, and leave that log
    /// uncleanable until restart.
    pub fn clean_once(
        &self,
        config: &CleanerConfig,
        stats: &CleanerStats,
        now_ms: i64,
    ) -> Option<(TopicPartition, CleaningOutcome)> {
        let mut candidates: Vec<_> = self
            .logs()
            .into_iter()
            .filter_map(|(tp, log)| {
                let status = log.cleaner_status(now_ms)?;
                status.needs_cleaning.then_some((tp, log, status))
            })
            .collect();
        candidates.sort_by(|a, b| {
            (b.2.max_compaction_delay_ms, b.2.dirty_ratio)
                .partial_cmp(&(a.2.max_compaction_delay_ms, a.2.dirty_ratio))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let options = CleanOptions {
            dedupe_buffer_bytes: config.dedupe_buffer_bytes,
            io_bytes_per_second_max: config.io_bytes_per_second_max,
            now_ms,
            stop_at: None,
        };
        for (tp, log, status) in candidates {
            let started = Instant::now();
            match log.clean(&options) {
                Ok(Some(outcome)) if outcome.completed => {
                    stats.add(&outcome.stats);
                    tracing::info!(
                        %tp,
                        dirty_ratio = status.dirty_ratio,
                        read = outcome.stats.bytes_read,
                        written = outcome.stats.bytes_written,
                        removed = outcome.stats.records_removed,
                        segments = outcome.segments_replaced,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "cleaned log"
                    );
                    return Some((tp, outcome));
                }
                Ok(_) => {}
                Err(error) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%tp, %error, "log cleaning failed");
                }
            }
        }
        None
    }

    /// Starts the log cleaner thread: it cleans one log at a time while some need it,
    /// then sleeps `config.backoff`. `on_cleaned` hears of every cleaning.
    pub fn spawn_cleaner(
        self: &Arc<Self>,
        config: CleanerConfig,
        stats: Arc<CleanerStats>,
        on_cleaned: CleanedCallback,
    ) -> Maintenance {
        let manager = Arc::clone(self);
        Maintenance::spawn("strom-log-cleaner", move || {
            // Idempotent and cheap (one syscall per pass).
            crate::cleaner::lower_thread_priority();
            match manager.clean_once(&config, &stats, now_ms()) {
                Some((tp, outcome)) => on_cleaned(&tp, &outcome),
                None => std::thread::park_timeout(config.backoff),
            }
        })
    }

    /// Closes every log (sync, checkpoint) and writes the clean-shutdown marker, so the
    /// next open skips recovery. The manager should not be used afterwards.
    pub fn close(&self) -> Result<()> {
        let mut first_error = None;
        for (tp, log) in self.logs() {
            if let Err(error) = log.close() {
                tracing::error!(%tp, %error, "closing log failed");
                first_error.get_or_insert(error);
            }
        }
        if let Some(error) = first_error {
            // Without the marker the next start recovers, which is what we want.
            return Err(error);
        }
        crate::checkpoint::write_atomically(&self.data_dir, CLEAN_SHUTDOWN_FILE, b"")
    }

    fn read_logs(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Arc<PartitionLog>>> {
        self.logs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_logs(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Arc<PartitionLog>>> {
        self.logs.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Handle of a background thread (maintenance or cleaner); stopping or dropping it
/// stops the thread.
pub struct Maintenance {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Maintenance {
    /// Starts thread `name` running `round` until stopped (a stop wakes it from
    /// `park_timeout`).
    fn spawn(name: &str, mut round: impl FnMut() + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !stop_flag.load(Ordering::Acquire) {
                    round();
                }
            })
            .ok();
        Maintenance { stop, thread }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn list_partitions(data_dir: &Path) -> Result<Vec<TopicPartition>> {
    let mut partitions = Vec::new();
    let entries =
        std::fs::read_dir(data_dir).map_err(LogError::io("list data directory", data_dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("list data directory", data_dir))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) || entry.file_name() == ORPHANED_DIR {
            continue;
        }
        match entry
            .file_name()
            .to_str()
            .and_then(TopicPartition::parse_dir_name)
        {
            Some(tp) => partitions.push(tp),
            None => {
                tracing::warn!(path = %entry.path().display(), "ignoring unknown directory in data dir")
            }
        }
    }
    Ok(partitions)
}

fn open_parallel(
    data_dir: &Path,
    partitions: &[TopicPartition],
    (clean, budget): (bool, &Arc<FileBudget>),
    config_for: &(impl Fn(&TopicPartition) -> LogConfig + Sync),
) -> Result<Vec<(TopicPartition, Arc<PartitionLog>)>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(partitions.len().max(1));
    let chunk = partitions.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = partitions
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|tp| {
                            let dir = data_dir.join(tp.dir_name());
                            PartitionLog::open_with(&dir, config_for(tp), clean, budget)
                                .map(|log| (tp.clone(), Arc::new(log)))
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut opened = Vec::with_capacity(partitions.len());
        for worker in workers {
            let logs = worker
                .join()
                .map_err(|_| LogError::Config("a log-opening thread panicked".into()))??;
            opened.extend(logs);
        }
        Ok(opened)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(is_valid_topic_name("orders.v1_eu-west"));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name("."));
        assert!(!is_valid_topic_name(".."));
        assert!(!is_valid_topic_name("a/b"));
        assert!(!is_valid_topic_name(&"x".repeat(250)));
        assert!(is_valid_topic_name(&"x".repeat(249)));
    }

    #[test]
    fn dir_names_round_trip_with_dashes_in_topics() {
        let tp = TopicPartition::new("my-topic", 12);
        assert_eq!(TopicPartition::parse_dir_name(&tp.dir_name()), Some(tp));
        assert_eq!(
            TopicPartition::parse_dir_name("topic--1"),
            Some(TopicPartition::new("topic-", 1))
        );
        assert_eq!(TopicPartition::parse_dir_name("topic-x"), None);
        assert_eq!(TopicPartition::parse_dir_name("a/b-0"), None);
        assert_eq!(TopicPartition::parse_dir_name("topic"), None);
    }

    #[test]
    fn a_second_manager_cannot_open_a_locked_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = LogManager::open(dir.path(), |_| LogConfig::default()).expect("open");
        let second = LogManager::open(dir.path(), |_| LogConfig::default());
        assert!(matches!(second, Err(LogError::Locked { .. })));
        drop(first);
        assert!(LogManager::open(dir.path(), |_| LogConfig::default()).is_ok());
    }
}
