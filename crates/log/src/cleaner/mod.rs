//! The log cleaner: compaction of logs whose `cleanup.policy` includes `compact`.
//!
//! A compacted log keeps at least the latest record of every key. It is split in
//! two by the *first dirty offset*: before it, the clean section (already
//! compacted); after it, the dirty section (written since). One cleaning:
//!
//! 1. snapshots the segments and decides which may be rewritten
//!    ([`PartitionLog::clean`]): only sealed segments before the recovery
//!    checkpoint's segment whose records are all older than `min.compaction.lag.ms`;
//! 2. scans batch headers for transaction outcomes (`txn`): nothing from the first
//!    open transaction on is cleaned;
//! 3. builds a bounded map key digest → latest offset over the dirty section
//!    (`offset_map`); when the keys do not fit, the cleaning stops where the map
//!    did and the next one continues from there;
//! 4. rewrites the cleanable segments from the log start, in groups that fit one
//!    segment, keeping what the rules in `clean` keep;
//! 5. swaps the new segments in crash-safely (`swap`) and, under the log's lock for
//!    no longer than replacing list entries, into the in-memory segment list.
//!
//! One thread cleans every log of a [`crate::LogManager`], the dirtiest first
//! (dirty bytes / cleanable bytes at or above `min.cleanable.dirty.ratio`, or dirty
//! data older than `max.compaction.lag.ms`, or a tombstone horizon that passed),
//! throttled to `io_bytes_per_second_max`. A failed cleaning (disk error, corrupt
//! data) marks only that log uncleanable until the next start; appends and reads
//! never wait for the cleaner.

pub(crate) mod clean;
pub(crate) mod offset_map;
pub(crate) mod state;
pub(crate) mod swap;
pub(crate) mod txn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use clean::CleaningStats;
pub use offset_map::SLOT_BYTES;
pub use state::CleanerStatus;
pub use swap::SwapStep;

/// Settings of the log cleaner thread (Kafka's `log.cleaner.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerConfig {
    /// Memory of the key → offset map of one cleaning
    /// (`log.cleaner.dedupe.buffer.size`, default 128 MiB; 24 bytes per key).
    pub dedupe_buffer_bytes: usize,
    /// Bytes read plus written per second, at most (`log.cleaner.io.max.bytes.per.second`);
    /// `None` for no limit.
    pub io_bytes_per_second_max: Option<u64>,
    /// How long the thread sleeps when no log needs cleaning (`log.cleaner.backoff.ms`).
    pub backoff: Duration,
}

impl CleanerConfig {
    /// Smallest useful key map: 1,024 keys.
    pub const DEDUPE_BUFFER_BYTES_MIN: usize = 1024 * SLOT_BYTES;
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: 128 * 1024 * 1024,
            io_bytes_per_second_max: None,
            backoff: Duration::from_secs(15),
        }
    }
}

/// Totals of the log cleaner since start, for metrics.
#[derive(Debug, Default)]
pub struct CleanerStats {
    /// Cleanings completed.
    pub runs: AtomicU64,
    /// Cleanings that failed (the log is then left alone until restart).
    pub failures: AtomicU64,
    /// Bytes read by cleanings.
    pub bytes_read: AtomicU64,
    /// Bytes written by cleanings.
    pub bytes_written: AtomicU64,
    /// Records removed by cleanings.
    pub records_removed: AtomicU64,
}

impl CleanerStats {
    pub(crate) fn add(&self, stats: &CleaningStats) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.bytes_read
            .fetch_add(stats.bytes_read, Ordering::Relaxed);
        self.bytes_written
            .fetch_add(stats.bytes_written, Ordering::Relaxed);
        self.records_removed
            .fetch_add(stats.records_removed, Ordering::Relaxed);
    }
}

/// Nice value of the cleaner thread: it yields the CPU to appends and fetches.
const CLEANER_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority to the cleaner's (Linux schedules
/// threads by their own nice value), so that on a busy machine compaction takes
/// spare CPU rather than produce and fetch throughput. Best effort: failure is
/// logged and ignored.
pub fn lower_thread_priority() {
    // SAFETY: gettid and setpriority take no pointers; they act on this thread only.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, CLEANER_NICE)
    };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the cleaner thread's priority");
    }
}

/// Keeps a cleaning's I/O under a byte rate by sleeping.
#[derive(Debug)]
pub(crate) struct Throttle {
    bytes_per_second: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    /// A throttle at `bytes_per_second` (`None`: no limit).
    pub(crate) fn new(bytes_per_second: Option<u64>) -> Self {
        Throttle {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` of I/O and sleeps if the rate is above the limit.
    pub(crate) fn account(&mut self, bytes: u64) {
        let Some(rate) = self.bytes_per_second.filter(|r| *r > 0) else {
            return;
        };
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}
