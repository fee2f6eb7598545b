//! One partition led by this node: its log, the wake-up for long-polling fetches,
//! and its producers (idempotence and transactions), with the operations that need
//! both the log and the producers: writing transaction markers, the last stable
//! offset, and producer-state snapshots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strom_log::batch::control::{marker_batch, ControlMarker};
use strom_log::{now_ms, FlushPolicy, LogError, PartitionLog};
use tokio::sync::Notify;

use super::producer_snapshot;
use super::producer_state::{AbortedTxn, ProducerStates};

/// A snapshot is taken once this many bytes were appended since the last one...
const SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;
/// ...or this long after the last one, if anything changed.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);

/// One partition of a topic, led by this node.
pub(crate) struct Partition {
    /// Partition index.
    pub index: i32,
    /// Its log.
    pub log: Arc<PartitionLog>,
    /// Woken after every append, every flush the broker waits for (the high watermark
    /// may have moved) and on deletion, for long-polling fetches.
    pub appended: Notify,
    /// A background flush is scheduled or running ([`Partition::request_flush`]).
    flush_pending: AtomicBool,
    /// Producers' sequences and transactions; held across check and append.
    pub producers: Mutex<ProducerStates>,
    /// The last snapshot: (log end offset, log size in bytes, when).
    last_snapshot: Mutex<(u64, u64, Instant)>,
}

impl Partition {
    /// A partition around its log, with its producers recovered.
    pub fn open(index: i32, log: Arc<PartitionLog>) -> Result<Self, LogError> {
        let producers = producer_snapshot::load(&log)?;
        let mark = (log.log_end_offset(), log.size_bytes(), Instant::now());
        Ok(Partition {
            index,
            log,
            appended: Notify::new(),
            flush_pending: AtomicBool::new(false),
            producers: Mutex::new(producers),
            last_snapshot: Mutex::new(mark),
        })
    }

    /// The producers, locked.
    pub fn producers(&self) -> MutexGuard<'_, ProducerStates> {
        self.producers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The high watermark: what consumers may read (the flushed offset under the
    /// `always` flush policy, else the log end).
    pub fn high_watermark(&self) -> u64 {
        self.log.high_watermark()
    }

    /// Makes what was appended durable soon and wakes long-polling fetches then, for
    /// appends nobody waits for (acks 0 and 1) under the `always` policy, whose
    /// records are invisible until flushed. One background flush at a time per
    /// partition; a request during it makes it flush again. Needs a tokio runtime.
    pub fn request_flush(self: &Arc<Self>) {
        if self.log.config().flush_policy != FlushPolicy::Always
            || self.flush_pending.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let partition = Arc::clone(self);
        tokio::task::spawn_blocking(move || loop {
            if let Err(error) = partition.log.flush() {
                tracing::warn!(%error, partition = partition.index, "background flush failed");
            }
            partition.appended.notify_waiters();
            partition.flush_pending.store(false, Ordering::SeqCst);
            // An append whose request found the flag set happened before it was
            // cleared: flush again unless it is covered or another request took over.
            if partition.log.flushed_offset() >= partition.log.log_end_offset()
                || partition.flush_pending.swap(true, Ordering::SeqCst)
            {
                break;
            }
        });
    }

    /// The last stable offset: below it every transaction is decided, so
    /// read_committed consumers read up to it (never past the high watermark).
    pub fn last_stable_offset(&self) -> u64 {
        let end = self.high_watermark();
        self.producers()
            .first_unstable_offset()
            .map_or(end, |first| first.min(end))
    }

    /// What a read_committed fetch from `from` needs, under one lock: the last stable
    /// offset and the aborted transactions with records between `from` and it.
    pub fn committed_view(&self, from: u64) -> (u64, Vec<AbortedTxn>) {
        let end = self.high_watermark();
        let producers = self.producers();
        let stable = producers
            .first_unstable_offset()
            .map_or(end, |first| first.min(end));
        (stable, producers.aborted_between(from, stable))
    }

    /// Writes the marker that ends `producer_id`'s transaction here, and waits until
    /// it is as durable as the topic's flush policy makes data (blocking).
    pub fn write_marker(&self, producer_id: i64, epoch: i16, commit: bool) -> Result<(), LogError> {
        let marker = ControlMarker {
            commit,
            coordinator_epoch: 0,
        };
        let mut batch = marker_batch(producer_id, epoch, marker, now_ms());
        let info = {
            let mut producers = self.producers();
            let info = self.log.append(&mut batch)?;
            producers.record_marker(producer_id, epoch, marker, info.base_offset);
            info
        };
        let durable = self.log.await_durability(&info);
        self.appended.notify_waiters();
        durable
    }

    /// Snapshots the producers if enough was appended since the last snapshot (or
    /// `force`, at shutdown, if anything was). The log is not synced for it: a
    /// snapshot found ahead of the log after a power loss is recognised at load and
    /// only its older aborted transactions are used (blocking: writes a small file).
    pub fn snapshot_producers(&self, force: bool) -> Result<(), LogError> {
        let mut last = self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner());
        let (end, size) = (self.log.log_end_offset(), self.log.size_bytes());
        let grown = size.saturating_sub(last.1);
        let due = grown >= SNAPSHOT_BYTES || (force || last.2.elapsed() >= SNAPSHOT_INTERVAL);
        if end == last.0 || !due {
            return Ok(());
        }
        self.write_snapshot(&mut last)
    }

    /// Forgets the aborted transactions whose abort markers the log cleaner removed
    /// (their records went before them) and snapshots at once, so that a restart does
    /// not bring them back: a read_committed consumer told of an aborted transaction
    /// skips its producer's records until it meets the abort marker.
    pub fn forget_aborted(&self, removed: &[(i64, u64)]) -> Result<(), LogError> {
        self.producers().forget_aborted(removed);
        let mut last = self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner());
        self.write_snapshot(&mut last)
    }

    fn write_snapshot(&self, last: &mut (u64, u64, Instant)) -> Result<(), LogError> {
        let size = self.log.size_bytes();
        let (mut states, offset) = {
            let producers = self.producers();
            (producers.clone(), self.log.log_end_offset())
        };
        states.prune(self.log.log_start_offset());
        producer_snapshot::write(self.log.dir(), &states, offset)
            .map_err(LogError::io("write producer snapshot", self.log.dir()))?;
        *last = (offset, size, Instant::now());
        Ok(())
    }
}
