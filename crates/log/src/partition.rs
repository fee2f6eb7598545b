//! The partition log: an ordered list of segments, the last one active.
//!
//! Named offsets (all exclusive ends except the start):
//! - *log start*: the first readable offset (advanced by retention and DeleteRecords);
//! - *log end*: one past the last written offset;
//! - *flushed*: one past the last offset known to be on disk (fdatasync'd);
//! - *high watermark*: one past the last offset readers may see — the flushed offset
//!   under `always`, the log end otherwise;
//! - the *recovery point* (checkpoint): flushed data whose indexes are synced too.
//!
//! Invariants: `log start <= log end`, `flushed <= log end`, `high watermark <= log
//! end`; segments are sorted,
//! never empty as a list, and only the last one is written to.
//!
//! Concurrency: one mutex guards the segment list; appends hold it while writing to
//! the page cache. Reads and syncs take a snapshot (the segment file and a size) under
//! the lock and do their I/O outside it, so slow disks stall neither readers nor
//! appenders. Group commit: one appender syncs on behalf of all who are waiting.
//!
//! Open files: segment log files are opened on demand through a [`FileBudget`] shared
//! by every log of a broker, which may close any of them between uses (syncing one
//! with unsynced writes first, unless the flush policy is `os`). A snapshot holds the
//! segment's file slot, not a descriptor, and opens it when it reads; a segment about
//! to be renamed over (cleaner swap) or deleted is pinned open first if a snapshot of
//! it exists, so that readers keep reading the bytes they located.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::{self, TimestampType};
use crate::checkpoint::Checkpoint;
use crate::cleaner::clean::{self, CleanPlan};
use crate::cleaner::state::CleanerState;
use crate::cleaner::{swap, CleanerStatus, CleaningStats, SwapStep, Throttle};
use crate::config::{CompressionType, FlushPolicy, LogConfig};
use crate::error::{BatchError, LogError, Result};
use crate::segment::file_budget::{FileBudget, LogFiles};
use crate::segment::{self, BatchPlacement, Segment, SegmentView};

/// What an append did: the offsets it assigned and the log's state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: u64,
    /// Offset of the last record appended.
    pub last_offset: u64,
    /// Number of batches appended.
    pub batch_count: usize,
    /// Number of records appended.
    pub record_count: u64,
    /// The broker's timestamp for LogAppendTime logs, else `None`.
    pub log_append_time_ms: Option<i64>,
    /// The log start offset at the time of the append.
    pub log_start_offset: u64,
}

/// Whole batches read from the log, plus the offsets a fetch response reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Zero or more whole batches, back to back, as stored.
    pub records: Bytes,
    /// The log start offset when read.
    pub log_start_offset: u64,
    /// The log end offset when read.
    pub log_end_offset: u64,
}

/// What retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes freed.
    pub bytes_deleted: u64,
}

/// A partition's log. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct PartitionLog {
    dir: PathBuf,
    state: Mutex<LogState>,
    flush: Mutex<FlushState>,
    flushed_changed: Condvar,
    /// The budget its segment files are opened through, and the flag a failed sync
    /// sets (the log then refuses writes until reopened).
    files: Arc<LogFiles>,
    /// The log cleaner's bookkeeping (compacted logs only).
    cleaner: Mutex<CleanerState>,
    /// Held for a whole cleaning, and by the operations that delete or cut segments
    /// (retention, DeleteRecords, truncation), so they never run during one.
    /// Appends and reads never take it. Taken before `state`.
    cleaning: Mutex<()>,
}

/// How to run one cleaning ([`PartitionLog::clean`]).
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// Memory of the key → offset map.
    pub dedupe_buffer_bytes: usize,
    /// Bytes read plus written per second, at most.
    pub io_bytes_per_second_max: Option<u64>,
    /// The wall clock, for lags and delete horizons.
    pub now_ms: i64,
    /// For crash tests: stop the swap at this step, leaving the files as a crash
    /// there would (the log must then be dropped and reopened).
    pub stop_at: Option<SwapStep>,
}

/// What one cleaning did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleaningOutcome {
    /// Bytes and records.
    pub stats: CleaningStats,
    /// Segments replaced.
    pub segments_replaced: usize,
    /// Segments that replaced them.
    pub segments_written: usize,
    /// The first dirty offset after the cleaning.
    pub first_dirty_offset: u64,
    /// `(producer id, offset)` of every abort marker removed: the transactions a
    /// reader must no longer be told are aborted (their records are gone too).
    pub removed_abort_markers: Vec<(i64, u64)>,
    /// False when stopped early by [`CleanOptions::stop_at`].
    pub completed: bool,
}

struct LogState {
    config: LogConfig,
    segments: Vec<Segment>,
    log_start_offset: u64,
    /// The last checkpoint written.
    checkpoint: Checkpoint,
}

struct FlushState {
    flushed_offset: u64,
    flushing: bool,
    last_flush: Instant,
}

impl LogState {
    fn active(&self) -> &Segment {
        // The list is never empty (invariant).
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn log_end_offset(&self) -> u64 {
        self.active().next_offset
    }

    fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Index of the segment that holds `offset` or, if `offset` falls in a gap, the
    /// first segment after it.
    fn segment_for(&self, offset: u64) -> usize {
        let floor = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        (floor..self.segments.len())
            .find(|&i| self.segments[i].next_offset > offset)
            .unwrap_or(self.segments.len() - 1)
    }

    /// How many leading segments the cleaner may rewrite: sealed, before the recovery
    /// checkpoint's segment (recovery re-validates from there, by byte position), and
    /// with every record older than `min_compaction_lag_ms`.
    fn cleanable_prefix(&self, now_ms: i64) -> usize {
        let min_lag = i64::try_from(self.config.min_compaction_lag_ms).unwrap_or(i64::MAX);
        let sealed = &self.segments[..self.segments.len() - 1];
        sealed
            .iter()
            .take_while(|s| {
                s.base_offset < self.checkpoint.segment_base_offset
                    && (s.max_timestamp < 0 || now_ms.saturating_sub(s.max_timestamp) >= min_lag)
            })
            .count()
    }

    fn check_offset(&self, offset: u64) -> Result<()> {
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, from the wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PartitionLog {
    /// Opens the log in `dir` (creating the directory and an empty log if needed),
    /// recovering it from its checkpoint: only data after the recovery point is
    /// re-validated, and the first torn or corrupt batch ends the log.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self> {
        Self::open_in(dir, config, &FileBudget::unbounded())
    }

    /// [`open`](Self::open), with the log's segment files opened through `budget`
    /// (shared with other logs) instead of kept open.
    pub fn open_in(dir: &Path, config: LogConfig, budget: &Arc<FileBudget>) -> Result<Self> {
        Self::open_with(dir, config, false, budget)
    }

    /// Opens the log; `clean` (set by the log manager after a clean shutdown) skips
    /// the consistency checks of sealed segments' indexes.
    pub(crate) fn open_with(
        dir: &Path,
        config: LogConfig,
        clean: bool,
        budget: &Arc<FileBudget>,
    ) -> Result<Self> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(LogError::io("create partition directory", dir))?;
        let files = LogFiles::new(budget, sync_on_close(config.flush_policy));
        let (segments, checkpoint) = crate::recovery::recover(dir, &config, clean, &files)?;
        let log_start_offset = checkpoint
            .log_start_offset
            .max(segments[0].base_offset)
            .min(segments[segments.len() - 1].next_offset);
        let flushed_offset = checkpoint
            .next_offset
            .min(segments[segments.len() - 1].next_offset);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            state: Mutex::new(LogState {
                config,
                segments,
                log_start_offset,
                checkpoint,
            }),
            flush: Mutex::new(FlushState {
                flushed_offset,
                flushing: false,
                last_flush: Instant::now(),
            }),
            flushed_changed: Condvar::new(),
            files,
            cleaner: Mutex::new(CleanerState::load(dir)),
            cleaning: Mutex::new(()),
        };
        // Make what recovery kept durable and move the recovery point past it (a no-op
        // when the checkpoint is already at the log end, as after a clean shutdown).
        log.checkpoint()?;
        Ok(log)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters more than losing the log, so recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_flush(&self) -> MutexGuard<'_, FlushState> {
        self.flush.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_cleaning(&self) -> MutexGuard<'_, ()> {
        self.cleaning.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_cleaner(&self) -> MutexGuard<'_, CleanerState> {
        self.cleaner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_not_failed(&self) -> Result<()> {
        if self.files.failed.load(Ordering::Acquire) {
            return Err(LogError::Failed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    /// Replaces the configuration (takes effect for the next append/roll/retention).
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        let mut state = self.lock();
        self.files
            .set_sync_on_close(sync_on_close(config.flush_policy));
        state.config = config;
        Ok(())
    }

    /// First readable offset.
    pub fn log_start_offset(&self) -> u64 {
        self.lock().log_start_offset
    }

    /// One past the last written offset.
    pub fn log_end_offset(&self) -> u64 {
        self.lock().log_end_offset()
    }

    /// One past the last offset known to be on disk.
    pub fn flushed_offset(&self) -> u64 {
        self.lock_flush().flushed_offset
    }

    /// One past the last offset readers may see. Under [`FlushPolicy::Always`] it is
    /// the flushed offset: a record a crash could still remove is never served (its
    /// offset could be reused by a different record after a power loss). Under `os`
    /// and `interval` flushing it is the log end, as in Kafka.
    pub fn high_watermark(&self) -> u64 {
        let (policy, end) = {
            let state = self.lock();
            (state.config.flush_policy, state.log_end_offset())
        };
        match policy {
            FlushPolicy::Always => self.flushed_offset().min(end),
            FlushPolicy::Interval(_) | FlushPolicy::Os => end,
        }
    }

    /// Bytes of data in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().size_bytes()
    }

    /// The base offset of the oldest segment that starts within `max_bytes` of the log
    /// end (the active segment's at least; never below the log start). Lets a reader
    /// of the recent tail, such as rebuilding producer state, bound its work by segment
    /// size instead of log size.
    pub fn tail_start_offset(&self, max_bytes: u64) -> u64 {
        let state = self.lock();
        let mut tail = 0u64;
        let mut start = state.log_end_offset();
        for segment in state.segments.iter().rev() {
            start = segment.base_offset;
            tail += segment.size;
            if tail >= max_bytes {
                break;
            }
        }
        start.max(state.log_start_offset)
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Appends one or more whole v2 batches (back to back in `records`), stamping
    /// their offsets (and LogAppendTime timestamps) in place. Uses the wall clock.
    pub fn append(&self, records: &mut [u8]) -> Result<AppendInfo> {
        self.append_at(records, now_ms())
    }

    /// The record set re-encoded in the log's `compression.type`, or `None` when it
    /// may be appended as it is (the type is `producer`, or every batch already uses
    /// the codec). Batches in another codec are recompressed with offsets, timestamps,
    /// headers and producer fields kept; the others are copied untouched. Runs without
    /// the log's lock: call it before [`append`](Self::append).
    pub fn conform_compression(&self, records: &[u8]) -> Result<Option<Vec<u8>>> {
        let (compression_type, levels, decompressed_bytes_max) = {
            let state = self.lock();
            (
                state.config.compression_type,
                state.config.compression_levels,
                state.config.decompressed_bytes_max,
            )
        };
        let CompressionType::Codec(codec) = compression_type else {
            return Ok(None);
        };
        let corrupt = |position, reason| LogError::CorruptBatch { position, reason };
        let mut batches = Vec::with_capacity(1);
        for item in batch::validate_all(records) {
            batches.push(item.map_err(|(position, reason)| corrupt(position, reason))?);
        }
        if batches
            .iter()
            .all(|(_, header)| header.compression() == codec || header.is_control())
        {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(records.len());
        for (position, header) in batches {
            let bytes = &records[position..position + header.size_bytes()];
            if header.compression() == codec || header.is_control() {
                out.extend_from_slice(bytes);
            } else {
                let rebuilt =
                    batch::recompress(bytes, codec, levels.of(codec), decompressed_bytes_max)
                        .map_err(|reason| corrupt(position, reason))?;
                out.extend_from_slice(&rebuilt);
            }
        }
        Ok(Some(out))
    }

    /// [`append`](Self::append) with an explicit clock reading, for tests and callers
    /// that already have one.
    pub fn append_at(&self, records: &mut [u8], now_ms: i64) -> Result<AppendInfo> {
        self.check_not_failed()?;
        let (max_message_bytes, compacted, decompressed_bytes_max, timestamp_bounds) = {
            let state = self.lock();
            let config = &state.config;
            let bounded = config.timestamp_type == TimestampType::CreateTime
                && (config.timestamp_before_max_ms.is_some()
                    || config.timestamp_after_max_ms.is_some());
            (
                config.max_message_bytes,
                config.cleanup_policy.compact,
                config.decompressed_bytes_max,
                bounded.then(|| {
                    let ms = |bound: Option<u64>| {
                        bound.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64)
                    };
                    (
                        now_ms.saturating_sub(ms(config.timestamp_before_max_ms)),
                        now_ms.saturating_add(ms(config.timestamp_after_max_ms)),
                    )
                }),
            )
        };
        // Validate outside the lock: CRCs are the expensive part.
        let mut headers = Vec::with_capacity(1);
        for item in batch::validate_all(records) {
            let (position, header) =
                item.map_err(|(position, reason)| LogError::CorruptBatch { position, reason })?;
            if header.record_count == 0 {
                return Err(LogError::CorruptBatch {
                    position,
                    reason: BatchError::InvalidRecordCount {
                        record_count: 0,
                        last_offset_delta: header.last_offset_delta as i32,
                    },
                });
            }
            if header.size_bytes() > max_message_bytes {
                return Err(LogError::RecordSetTooLarge {
                    size: header.size_bytes(),
                    limit: max_message_bytes,
                });
            }
            if let (Some(bounds), false) = (timestamp_bounds, header.is_control()) {
                check_timestamps(
                    &records[position..position + header.size_bytes()],
                    position,
                    bounds,
                    now_ms,
                    decompressed_bytes_max,
                )?;
            }
            if compacted && !header.is_control() {
                check_keys(
                    &records[position..position + header.size_bytes()],
                    position,
                    decompressed_bytes_max,
                )?;
            }
            headers.push((position, header));
        }
        if headers.is_empty() {
            return Err(LogError::CorruptBatch {
                position: 0,
                reason: BatchError::Empty,
            });
        }

        let mut state = self.lock();
        let config = &state.config;
        if records.len() as u64 > config.segment_bytes_max {
            return Err(LogError::RecordSetTooLarge {
                size: records.len(),
                limit: config.segment_bytes_max as usize,
            });
        }
        let log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        let base_offset = state.log_end_offset();
        let mut next = base_offset;
        let mut placements = Vec::with_capacity(headers.len());
        let mut record_count = 0u64;
        for (position, header) in &headers {
            let bytes = &mut records[*position..*position + header.size_bytes()];
            batch::set_base_offset(bytes, next as i64);
            let mut max_timestamp = header.max_timestamp;
            if log_append_time {
                batch::set_log_append_time(bytes, header.size_bytes(), now_ms);
                max_timestamp = now_ms;
            }
            let last_offset = next + u64::from(header.last_offset_delta);
            placements.push(BatchPlacement {
                position_in_set: *position,
                size: header.size_bytes(),
                last_offset,
                max_timestamp,
            });
            record_count += u64::from(header.record_count);
            next = last_offset + 1;
        }
        let last_offset = next - 1;
        self.maybe_roll(&mut state, records.len() as u64, last_offset, now_ms)?;
        let index_interval = state.config.index_interval_bytes;
        state
            .active_mut()
            .append(records, &placements, index_interval, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            batch_count: headers.len(),
            record_count,
            log_append_time_ms: log_append_time.then_some(now_ms),
            log_start_offset: state.log_start_offset,
        })
    }

    fn maybe_roll(
        &self,
        state: &mut LogState,
        bytes: u64,
        last_offset: u64,
        now_ms: i64,
    ) -> Result<()> {
        let config = &state.config;
        let active = state.active();
        let roll = active.size > 0
            && (active.size + bytes > config.segment_bytes_max
                || active.first_append_ms.is_some_and(|first| {
                    now_ms.saturating_sub(first) >= config.segment_roll_ms() as i64
                })
                || active.index_full(config.index_bytes_max)
                || !active.fits_offsets(last_offset));
        if roll {
            let base = active.next_offset;
            tracing::debug!(dir = %self.dir.display(), base, "rolling segment");
            let segment = Segment::create(&self.dir, base, &self.files)?;
            // The new file's directory entry must be durable before data synced into
            // it can count as durable.
            crate::checkpoint::sync_dir(&self.dir)?;
            state.active_mut().seal()?;
            state.segments.push(segment);
        }
        Ok(())
    }

    /// Waits until the append described by `info` satisfies the flush policy: synced
    /// under `always`, immediately otherwise. This is what `acks=all` waits for.
    pub fn await_durability(&self, info: &AppendInfo) -> Result<()> {
        let policy = self.lock().config.flush_policy;
        match policy {
            FlushPolicy::Always => self.flush_to(info.last_offset + 1),
            FlushPolicy::Interval(_) | FlushPolicy::Os => self.check_not_failed(),
        }
    }

    /// Syncs everything written so far; returns the flushed offset.
    pub fn flush(&self) -> Result<u64> {
        let end = self.log_end_offset();
        self.flush_to(end)?;
        Ok(self.flushed_offset())
    }

    /// Blocks until every offset below `end_offset` is on disk. Concurrent callers
    /// share syncs: while one sync runs, later callers wait, and the next sync covers
    /// all of them (group commit).
    pub fn flush_to(&self, end_offset: u64) -> Result<()> {
        let mut flush = self.lock_flush();
        loop {
            self.check_not_failed()?;
            if flush.flushed_offset >= end_offset {
                return Ok(());
            }
            if flush.flushing {
                flush = self
                    .flushed_changed
                    .wait(flush)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            flush.flushing = true;
            let from = flush.flushed_offset;
            drop(flush);

            let opened = {
                let state = self.lock();
                state
                    .segments
                    .iter()
                    .filter(|s| s.next_offset > from)
                    .map(|s| Ok((s.open_file()?, s.path().to_path_buf())))
                    .collect::<Result<Vec<_>>>()
                    .map(|files| (state.log_end_offset(), files))
            };
            // Failing to open a file (e.g. out of descriptors) fails this flush only;
            // failing to sync one fails the log.
            let mut sync_failed = false;
            let result = opened.and_then(|(target, files)| {
                let started = Instant::now();
                let synced = files.iter().try_for_each(|(file, path)| {
                    file.sync_data().map_err(LogError::io("sync segment", path))
                });
                crate::sync_observer::observe(started.elapsed());
                sync_failed = synced.is_err();
                synced.map(|()| target)
            });

            flush = self.lock_flush();
            flush.flushing = false;
            match &result {
                Ok(target) => {
                    flush.flushed_offset = flush.flushed_offset.max(*target);
                    flush.last_flush = Instant::now();
                }
                Err(error) if sync_failed => {
                    tracing::error!(%error, dir = %self.dir.display(), "sync failed; log is now failed");
                    self.files.failed.store(true, Ordering::Release);
                }
                Err(_) => {}
            }
            self.flushed_changed.notify_all();
            result?;
        }
    }

    /// Under the `interval` policy, syncs if the interval has passed since the last
    /// sync and there is unsynced data. Called by the log manager's background task.
    pub fn flush_if_due(&self, now: Instant) -> Result<()> {
        let (policy, end) = {
            let state = self.lock();
            (state.config.flush_policy, state.log_end_offset())
        };
        let FlushPolicy::Interval(every) = policy else {
            return Ok(());
        };
        let due = {
            let flush = self.lock_flush();
            flush.flushed_offset < end && now.duration_since(flush.last_flush) >= every
        };
        if due {
            self.flush_to(end)?;
        }
        Ok(())
    }

    /// Syncs all data and indexes up to the current log end and records that as the
    /// recovery point, so a restart re-validates nothing before it. Skipped when the
    /// checkpoint is already current.
    pub fn checkpoint(&self) -> Result<()> {
        self.check_not_failed()?;
        let (target, syncs) = {
            let mut state = self.lock();
            let active = state.active();
            let target = Checkpoint {
                log_start_offset: state.log_start_offset,
                segment_base_offset: active.base_offset,
                position: active.size,
                next_offset: active.next_offset,
                max_timestamp: active.max_timestamp,
                offset_of_max_timestamp: active.offset_of_max_timestamp,
            };
            if target == state.checkpoint {
                return Ok(());
            }
            let from = state.checkpoint.segment_base_offset;
            let syncs = state
                .segments
                .iter_mut()
                .filter(|s| s.base_offset >= from)
                .map(|s| s.sync_handles())
                .collect::<Result<Vec<_>>>()?;
            (target, syncs)
        };
        for handle in syncs.iter().flatten() {
            if let Err(source) = handle.sync_data() {
                self.files.failed.store(true, Ordering::Release);
                return Err(LogError::Io {
                    context: "sync for checkpoint",
                    path: handle.path().to_path_buf(),
                    source,
                });
            }
        }
        target.write(&self.dir)?;
        {
            let mut flush = self.lock_flush();
            flush.flushed_offset = flush.flushed_offset.max(target.next_offset);
        }
        let mut state = self.lock();
        // Only move forward: a truncation may have written a newer checkpoint meanwhile.
        if state.checkpoint.segment_base_offset <= target.segment_base_offset {
            state.checkpoint = target;
        }
        Ok(())
    }

    /// Reads whole batches starting with the one that holds `from_offset`, up to
    /// `max_bytes` (the first batch is returned whole even if larger, so a consumer
    /// always makes progress), stopping before any batch at or after `end_offset`
    /// (e.g. a high watermark; `None` means the log end).
    pub fn read(
        &self,
        from_offset: u64,
        max_bytes: usize,
        end_offset: Option<u64>,
    ) -> Result<ReadResult> {
        let (mut view, log_start_offset, log_end_offset) = {
            let state = self.lock();
            state.check_offset(from_offset)?;
            let end = state.log_end_offset();
            let view = state.segments[state.segment_for(from_offset)].view_for_offset(from_offset);
            (view, state.log_start_offset, end)
        };
        let limit = end_offset.unwrap_or(log_end_offset).min(log_end_offset);
        let empty = ReadResult {
            records: Bytes::new(),
            log_start_offset,
            log_end_offset,
        };
        // A compacted segment may end in a gap: then the offset's next batch is in a
        // later segment.
        let (position, first) = loop {
            if from_offset >= limit || view.base_offset >= limit {
                return Ok(empty);
            }
            let located = view
                .locate(from_offset)
                .map_err(LogError::io("locate offset", self.dir.clone()))?;
            if let Some(found) = located {
                break found;
            }
            let state = self.lock();
            let next = state.segment_for(view.next_offset.max(view.base_offset + 1));
            if state.segments[next].base_offset <= view.base_offset {
                return Ok(empty);
            }
            view = state.segments[next].view_for_offset(from_offset);
        };
        if first.base_offset as u64 >= limit {
            return Ok(empty);
        }
        let available = (view.size - position) as usize;
        let want = max_bytes.max(first.size_bytes()).min(available);
        let file = view
            .open()
            .map_err(LogError::io("open segment", view.path_hint()))?;
        let mut bytes = segment::scan::read_range(&file, position, want)
            .map_err(LogError::io("read segment", self.dir.clone()))?;
        let keep = whole_batches_below(&bytes, limit);
        bytes.truncate(keep);
        Ok(ReadResult {
            records: Bytes::from(bytes),
            log_start_offset,
            log_end_offset,
        })
    }

    /// The first record with a timestamp at or after `timestamp_ms`, at or after the
    /// log start: `(offset, timestamp)`; `None` if every record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(u64, i64)>> {
        let (views, log_start, decompressed_max) = {
            let state = self.lock();
            let views: Vec<SegmentView> = state
                .segments
                .iter()
                .filter(|s| {
                    s.size > 0
                        && s.max_timestamp >= timestamp_ms
                        && s.next_offset > state.log_start_offset
                })
                .map(|s| s.view_for_timestamp(timestamp_ms))
                .collect();
            (
                views,
                state.log_start_offset,
                state.config.decompressed_bytes_max,
            )
        };
        for view in views {
            let found = view.find_timestamp(timestamp_ms, log_start, decompressed_max)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first such record if several):
    /// `(offset, timestamp)`; `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<(u64, i64)>> {
        let (view, max, log_start, decompressed_max) = {
            let state = self.lock();
            let best = state
                .segments
                .iter()
                .filter(|s| s.size > 0 && s.next_offset > state.log_start_offset)
                .fold(None::<&Segment>, |best, s| match best {
                    Some(b) if b.max_timestamp >= s.max_timestamp => Some(b),
                    _ => Some(s),
                });
            let Some(best) = best else {
                return Ok(None);
            };
            (
                best.view_for_timestamp(best.max_timestamp),
                best.max_timestamp,
                state.log_start_offset,
                state.config.decompressed_bytes_max,
            )
        };
        view.find_timestamp(max, log_start, decompressed_max)
    }

    /// Removes every batch from the one holding `offset` on (Kafka's truncation to a
    /// batch boundary); the new log end is returned. Truncating below the log start
    /// empties the log and restarts it at `offset`.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        self.check_not_failed()?;
        let _cleaning = self.lock_cleaning();
        let mut state = self.lock();
        if offset >= state.log_end_offset() {
            return Ok(state.log_end_offset());
        }
        let index_interval = state.config.index_interval_bytes;
        let keep = state.segments.partition_point(|s| s.base_offset <= offset);
        if keep == 0 || offset < state.log_start_offset {
            // Nothing at or below `offset` survives: start over at `offset`.
            let fresh = Segment::create(&self.dir, offset, &self.files)?;
            for old in std::mem::replace(&mut state.segments, vec![fresh]) {
                if old.base_offset != offset {
                    old.delete()?;
                }
            }
            state.log_start_offset = offset;
        } else {
            for old in state.segments.drain(keep..) {
                old.delete()?;
            }
            state.active_mut().truncate_to(offset, index_interval)?;
        }
        let new_end = state.log_end_offset();
        state.log_start_offset = state.log_start_offset.min(new_end);
        {
            // What was cut off must be cleaned again if it is rewritten.
            let mut cleaner = self.lock_cleaner();
            cleaner.first_dirty_offset = cleaner.first_dirty_offset.min(new_end);
        }
        state.active_mut().sync()?;
        let active = state.active();
        let checkpoint = Checkpoint {
            log_start_offset: state.log_start_offset,
            segment_base_offset: active.base_offset,
            position: active.size,
            next_offset: new_end,
            max_timestamp: active.max_timestamp,
            offset_of_max_timestamp: active.offset_of_max_timestamp,
        };
        checkpoint.write(&self.dir)?;
        state.checkpoint = checkpoint;
        let mut flush = self.lock_flush();
        flush.flushed_offset = flush.flushed_offset.min(new_end);
        Ok(new_end)
    }

    /// Advances the log start offset to `offset` (Kafka's DeleteRecords), deleting
    /// segments that fall entirely below it. The new start is durable on return.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        self.check_not_failed()?;
        let _cleaning = self.lock_cleaning();
        let mut state = self.lock();
        if offset <= state.log_start_offset {
            return Ok(state.log_start_offset);
        }
        state.check_offset(offset)?;
        state.log_start_offset = offset;
        let mut checkpoint = state.checkpoint;
        checkpoint.log_start_offset = offset;
        checkpoint.write(&self.dir)?;
        state.checkpoint = checkpoint;
        let doomed = state
            .segments
            .iter()
            .take(state.segments.len() - 1)
            .take_while(|s| s.next_offset <= offset)
            .count();
        self.delete_prefix(&mut state, doomed)?;
        Ok(offset)
    }

    /// Deletes the oldest segments that `retention_ms` (by their newest timestamp) or
    /// `retention_bytes` (by total size) no longer allow; never the active segment.
    /// Only for logs whose cleanup policy includes `delete`. Skipped (nothing
    /// deleted) while the cleaner is compacting the log: the maintenance thread that
    /// calls it must not wait for a cleaning, and the next round catches up.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let _cleaning = match self.cleaning.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(RetentionOutcome::default()),
        };
        let mut state = self.lock();
        let config = &state.config;
        if !config.cleanup_policy.delete {
            return Ok(RetentionOutcome::default());
        }
        let mut remaining = state.size_bytes();
        let mut doomed = 0;
        for segment in &state.segments[..state.segments.len() - 1] {
            let expired = config.retention_ms.is_some_and(|ms| {
                segment.max_timestamp >= 0
                    && now_ms.saturating_sub(segment.max_timestamp) > ms as i64
            });
            let oversized = config
                .retention_bytes
                .is_some_and(|limit| remaining.saturating_sub(segment.size) >= limit);
            if !(expired || oversized) {
                break;
            }
            remaining -= segment.size;
            doomed += 1;
        }
        let bytes_deleted = state.segments[..doomed].iter().map(|s| s.size).sum();
        if doomed > 0 {
            let new_start = state.segments[doomed]
                .base_offset
                .max(state.log_start_offset);
            state.log_start_offset = new_start;
            self.delete_prefix(&mut state, doomed)?;
        }
        Ok(RetentionOutcome {
            segments_deleted: doomed,
            bytes_deleted,
        })
    }

    /// How this log stands with the cleaner; `None` unless it is compacted.
    pub fn cleaner_status(&self, now_ms: i64) -> Option<CleanerStatus> {
        let state = self.lock();
        if !state.config.cleanup_policy.compact {
            return None;
        }
        let cleaner = self.lock_cleaner().clone();
        let cleanable = &state.segments[..state.cleanable_prefix(now_ms)];
        let first_dirty = cleaner.first_dirty_offset.max(state.log_start_offset);
        let cleanable_bytes: u64 = cleanable.iter().map(|s| s.size).sum();
        let dirty: Vec<&Segment> = cleanable
            .iter()
            .filter(|s| s.next_offset > first_dirty && s.size > 0)
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
        let dirty_ratio = if cleanable_bytes == 0 {
            0.0
        } else {
            dirty_bytes as f64 / cleanable_bytes as f64
        };
        // A segment's first record is not tracked; its newest is a lower bound of the
        // delay (segments of compacted logs roll within max.compaction.lag.ms).
        let max_lag = i64::try_from(state.config.max_compaction_lag_ms).unwrap_or(i64::MAX);
        let max_compaction_delay_ms =
            dirty
                .first()
                .filter(|s| s.max_timestamp >= 0)
                .map_or(0, |s| {
                    now_ms
                        .saturating_sub(s.max_timestamp)
                        .saturating_sub(max_lag)
                        .max(0) as u64
                });
        let horizon_due = cleaner
            .next_delete_horizon_ms
            .is_some_and(|horizon| horizon <= now_ms);
        let needs_cleaning = cleaner.failed.is_none()
            && !cleanable.is_empty()
            && ((dirty_bytes > 0
                && (dirty_ratio >= state.config.min_cleanable_dirty_ratio
                    || max_compaction_delay_ms > 0))
                || horizon_due);
        Some(CleanerStatus {
            first_dirty_offset: first_dirty,
            cleanable_bytes,
            dirty_bytes,
            dirty_ratio,
            needs_cleaning,
            max_compaction_delay_ms,
            last_cleaned_ms: cleaner.last_cleaned_ms,
            failed: cleaner.failed,
        })
    }

    /// Compacts the log once (see [`crate::cleaner`]): `None` when it is not compacted
    /// or nothing may be cleaned yet. Appends and reads go on meanwhile; the segment
    /// list is locked only to swap entries. On an error the log is unchanged (or, if
    /// the swap was committed, completed at the next open) and the log is marked
    /// uncleanable until reopened; appends and reads are not affected.
    pub fn clean(&self, options: &CleanOptions) -> Result<Option<CleaningOutcome>> {
        let _cleaning = self.lock_cleaning();
        self.check_not_failed()?;
        let result = self.clean_locked(options);
        if let Err(error) = &result {
            tracing::error!(dir = %self.dir.display(), %error, "log cleaning failed; this log will not be cleaned again until restart");
            self.lock_cleaner().failed = Some(error.to_string());
            if let Err(error) = swap::discard_cleaned(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), %error, "could not remove the failed cleaning's files");
            }
        }
        result
    }

    fn clean_locked(&self, options: &CleanOptions) -> Result<Option<CleaningOutcome>> {
        let plan = {
            let state = self.lock();
            if !state.config.cleanup_policy.compact {
                return Ok(None);
            }
            let cleanable = state.cleanable_prefix(options.now_ms);
            if cleanable == 0 {
                return Ok(None);
            }
            let first_dirty = self
                .lock_cleaner()
                .first_dirty_offset
                .max(state.log_start_offset);
            CleanPlan {
                segments: state.segments.iter().map(Segment::whole_view).collect(),
                cleanable,
                first_dirty_offset: first_dirty,
                config: state.config.clone(),
                now_ms: options.now_ms,
                files: Arc::clone(&self.files),
            }
        };
        let mut throttle = Throttle::new(options.io_bytes_per_second_max);
        let Some(cleaned) =
            clean::clean(&self.dir, &plan, options.dedupe_buffer_bytes, &mut throttle)?
        else {
            return Ok(None);
        };
        let mut outcome = CleaningOutcome {
            stats: cleaned.stats,
            segments_replaced: cleaned.swap.old_bases.len(),
            segments_written: cleaned.swap.new_bases.len(),
            first_dirty_offset: cleaned.first_dirty_offset,
            removed_abort_markers: cleaned.removed_abort_markers,
            completed: false,
        };
        // Recovery must know, before any rewritten segment is in place, that gaps
        // are legitimate below this offset.
        let rewritten_end = cleaned.new_segments.last().map_or(0, |&(_, next)| next);
        {
            let mut cleaner = self.lock_cleaner();
            if rewritten_end > cleaner.cleaned_end_offset {
                cleaner.cleaned_end_offset = rewritten_end;
                cleaner.save(&self.dir)?;
            }
        }
        // Readers of the replaced segments (and reads between the renames and the
        // splice below) must keep the old files, not reopen the new ones by name. The
        // pins stay if the swap fails part way (some names may already be the new
        // files'): the log keeps reading the old ones until it is reopened, and it is
        // not cleaned again before that.
        let replaced = cleaned.swap.old_bases.len();
        {
            let state = self.lock();
            for old in &state.segments[..replaced] {
                old.pin()?;
            }
        }
        if !swap::commit(&self.dir, &cleaned.swap, options.stop_at)? {
            return Ok(Some(outcome));
        }
        let replacements = cleaned
            .new_segments
            .iter()
            .map(|&(base, next)| Segment::open(&self.dir, base, next, false, &self.files))
            .collect::<Result<Vec<_>>>()?;
        {
            let mut state = self.lock();
            debug_assert!(state
                .segments
                .iter()
                .map(|s| s.base_offset)
                .take(replaced)
                .eq(cleaned.swap.old_bases.iter().copied()));
            state.segments.splice(..replaced, replacements);
        }
        let mut cleaner = self.lock_cleaner();
        cleaner.first_dirty_offset = cleaned.first_dirty_offset;
        cleaner.next_delete_horizon_ms = cleaned.next_delete_horizon_ms;
        cleaner.last_cleaned_ms = Some(options.now_ms);
        cleaner.save(&self.dir)?;
        outcome.completed = true;
        Ok(Some(outcome))
    }

    /// Removes the first `count` (sealed) segments and their files.
    fn delete_prefix(&self, state: &mut LogState, count: usize) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let first_kept = state.segments[count].base_offset;
        if state.checkpoint.segment_base_offset < first_kept {
            // The recovery point was in a deleted segment: recover the next one fully.
            let checkpoint = Checkpoint::empty(state.log_start_offset, first_kept);
            checkpoint.write(&self.dir)?;
            state.checkpoint = checkpoint;
        }
        for segment in state.segments.drain(..count) {
            tracing::info!(segment = %segment.path().display(), "deleting segment");
            segment.delete()?;
        }
        Ok(())
    }

    /// Flushes, trims and checkpoints the log so the next open needs no recovery.
    pub fn close(&self) -> Result<()> {
        self.check_not_failed()?;
        self.lock().active().trim()?;
        self.checkpoint()
    }

    /// Deletes the whole log from disk. The log must not be used afterwards.
    pub fn delete(&self) -> Result<()> {
        let state = self.lock();
        for segment in &state.segments {
            segment.delete()?;
        }
        std::fs::remove_dir_all(&self.dir)
            .map_err(LogError::io("remove partition directory", &self.dir))
    }
}

/// Whether closing a written segment file must sync it first: unless the policy is
/// `os`, which promises no durability (see `segment::file_budget`).
fn sync_on_close(policy: FlushPolicy) -> bool {
    !matches!(policy, FlushPolicy::Os)
}

/// Refuses a batch with a record whose timestamp is outside `[earliest, latest]`
/// (`message.timestamp.before.max.ms` / `after.max.ms` around `now_ms`).
fn check_timestamps(
    batch: &[u8],
    position: usize,
    (earliest, latest): (i64, i64),
    now_ms: i64,
    decompressed_bytes_max: usize,
) -> Result<()> {
    let corrupt = |reason| LogError::CorruptBatch { position, reason };
    let records = batch::records::Records::new(batch, decompressed_bytes_max).map_err(corrupt)?;
    for record in records.iter() {
        let timestamp_ms = record.map_err(corrupt)?.timestamp;
        if timestamp_ms < earliest || timestamp_ms > latest {
            return Err(LogError::TimestampOutOfRange {
                position,
                timestamp_ms,
                now_ms,
            });
        }
    }
    Ok(())
}

/// Refuses a batch with a key-less record: a compacted log keeps the latest record
/// per key, so a record without one could never be kept (Kafka refuses it too).
fn check_keys(batch: &[u8], position: usize, decompressed_bytes_max: usize) -> Result<()> {
    let corrupt = |reason| LogError::CorruptBatch { position, reason };
    let records = batch::records::Records::new(batch, decompressed_bytes_max).map_err(corrupt)?;
    for record in records.iter() {
        if record.map_err(corrupt)?.key.is_none() {
            return Err(LogError::MissingKey { position });
        }
    }
    Ok(())
}

/// Length of the prefix of `bytes` made of whole batches whose base offset is below
/// `limit`; the first batch counts even if `bytes` was sized for it alone.
fn whole_batches_below(bytes: &[u8], limit: u64) -> usize {
    let mut keep = 0;
    while let Ok((base, size, _)) = batch::read_prefix(&bytes[keep..]) {
        if keep + size > bytes.len() || base < 0 || base as u64 >= limit {
            break;
        }
        keep += size;
    }
    keep
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
