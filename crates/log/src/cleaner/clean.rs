//! One cleaning of one log: build the offset map from the dirty section, rewrite the
//! cleanable segments keeping the latest record of every key, and hand back the swap
//! to commit. Works on snapshots of the segments taken under the log's lock and does
//! all its I/O outside it; only sealed segments are read, and only new files written.
//!
//! Kafka's semantics, kept exactly:
//! - offsets never change: a batch keeps its base and last offset when it loses
//!   records, and a batch that loses every record disappears, leaving a gap — unless
//!   it is its producer's last data batch, which stays as an empty batch so that the
//!   producer's sequence and epoch survive;
//! - a record goes when a later record of its key exists in the dirty section (the
//!   map says so), when it has no key, or when it belongs to an aborted transaction;
//! - a tombstone (null value) stays until `delete.retention.ms` after the cleaning
//!   that first kept it: that cleaning stamps the batch's delete horizon (KIP-534),
//!   and a later cleaning past the horizon removes it;
//! - a commit or abort marker goes, after its own delete horizon, once no record of
//!   its transaction is left;
//! - nothing at or after the first open transaction, the active segment, the
//!   segment of the recovery checkpoint, or records younger than
//!   `min.compaction.lag.ms` is touched.

use std::collections::HashMap;
use std::path::Path;

use crate::batch::control::parse_marker;
use crate::batch::rebuild::rebuild;
use crate::batch::records::{Record, Records};
use crate::batch::BatchHeader;
use crate::config::LogConfig;
use crate::error::BatchError;
use crate::error::{LogError, Result};
use crate::segment::file_budget::LogFiles;
use crate::segment::scan::{for_each_batch, RECOVERY_CHUNK_BYTES};
use crate::segment::{BatchPlacement, Segment, SegmentView};
use std::sync::Arc;

use super::offset_map::{digest, OffsetMap};
use super::swap::Swap;
use super::txn::TxnIndex;
use super::Throttle;

/// Bytes of cleaned batches written per `pwrite`.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// What a cleaning works on, snapshotted under the log's lock.
pub(crate) struct CleanPlan {
    /// Every segment of the log, in order; the last is the active one.
    pub segments: Vec<SegmentView>,
    /// How many leading segments may be rewritten, before transactions are looked at.
    pub cleanable: usize,
    /// Where the dirty section starts (everything before was cleaned already).
    pub first_dirty_offset: u64,
    /// The log's configuration.
    pub config: LogConfig,
    /// The wall clock, for delete horizons.
    pub now_ms: i64,
    /// Where the log's files come from (the budget), for the cleaned segments.
    pub files: Arc<LogFiles>,
}

/// Counts of one cleaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleaningStats {
    /// Bytes read from segments (map building and rewriting).
    pub bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Records removed.
    pub records_removed: u64,
    /// Records kept in the cleaned segments.
    pub records_kept: u64,
}

/// A cleaning's result, ready to be swapped in.
pub(crate) struct Cleaned {
    /// The segments replaced and their replacements.
    pub swap: Swap,
    /// `(base, next offset)` of every replacement segment.
    pub new_segments: Vec<(u64, u64)>,
    /// The dirty section starts here after the swap.
    pub first_dirty_offset: u64,
    /// The earliest delete horizon of a tombstone or marker left in place.
    pub next_delete_horizon_ms: Option<i64>,
    /// Counts.
    pub stats: CleaningStats,
    /// `(producer id, offset)` of the abort markers removed: readers must stop
    /// listing those transactions as aborted.
    pub removed_abort_markers: Vec<(i64, u64)>,
}

/// Cleans the log in `dir` as `plan` says; `None` when nothing may be cleaned.
pub(crate) fn clean(
    dir: &Path,
    plan: &CleanPlan,
    map_memory_bytes: usize,
    throttle: &mut Throttle,
) -> Result<Option<Cleaned>> {
    let txn = TxnIndex::build(&plan.segments, plan.first_dirty_offset)?;
    let open_bound = txn.open_first_offset.unwrap_or(u64::MAX);
    let cleanable = plan.segments[..plan.cleanable]
        .iter()
        .take_while(|s| s.next_offset <= open_bound)
        .count();
    if cleanable == 0 {
        return Ok(None);
    }
    let segments = &plan.segments[..cleanable];
    let cleanable_end = segments[cleanable - 1].next_offset;
    let first_dirty = plan.first_dirty_offset;
    let mut stats = CleaningStats::default();
    let keys_max = usize::try_from(txn.dirty_records).unwrap_or(usize::MAX);
    let mut map = OffsetMap::with_memory(map_memory_bytes, keys_max);
    let map_end = build_map(
        segments,
        (first_dirty, cleanable_end),
        &txn,
        &mut map,
        plan.config.decompressed_bytes_max,
        (&mut stats, throttle),
    )?;
    tracing::debug!(dir = %dir.display(), keys = map.len(), first_dirty, map_end, cleanable_end, "offset map built");
    let rewritten = segments
        .iter()
        .take_while(|s| s.base_offset < map_end)
        .count();
    if rewritten == 0 {
        return Ok(None);
    }
    let mut rewriter = Rewriter {
        map: &map,
        txn: &txn,
        now_ms: plan.now_ms,
        config: &plan.config,
        files: &plan.files,
        txn_retained: HashMap::new(),
        next_delete_horizon_ms: None,
        removed_abort_markers: Vec::new(),
        stats,
    };
    let mut swap = Swap {
        old_bases: Vec::new(),
        new_bases: Vec::new(),
    };
    let mut new_segments = Vec::new();
    for group in groups(&segments[..rewritten], plan.config.segment_bytes_max) {
        let base = group[0].base_offset;
        let next = group[group.len() - 1].next_offset;
        rewriter.write_group(dir, group, throttle)?;
        swap.old_bases.extend(group.iter().map(|s| s.base_offset));
        swap.new_bases.push(base);
        new_segments.push((base, next));
    }
    Ok(Some(Cleaned {
        swap,
        new_segments,
        first_dirty_offset: map_end.max(first_dirty),
        next_delete_horizon_ms: rewriter.next_delete_horizon_ms,
        stats: rewriter.stats,
        removed_abort_markers: rewriter.removed_abort_markers,
    }))
}

/// Error conversions for [`for_each_batch`] inside a segment.
struct ScanError(LogError);

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        ScanError(LogError::io("read segment for cleaning", "segment")(e))
    }
}

impl From<(u64, BatchError)> for ScanError {
    fn from((position, reason): (u64, BatchError)) -> Self {
        ScanError(LogError::CorruptData {
            path: "segment".into(),
            reason: format!("batch at byte {position}: {reason}"),
        })
    }
}

impl From<LogError> for ScanError {
    fn from(e: LogError) -> Self {
        ScanError(e)
    }
}

/// Names the segment in a scan error.
fn in_segment(view: &SegmentView) -> impl FnOnce(ScanError) -> LogError + '_ {
    move |ScanError(error)| match error {
        LogError::Io {
            context, source, ..
        } => LogError::Io {
            context,
            path: view.path_hint(),
            source,
        },
        LogError::CorruptData { reason, .. } => LogError::CorruptData {
            path: view.path_hint(),
            reason,
        },
        other => other,
    }
}

fn corrupt_records(view: &SegmentView) -> impl Fn(BatchError) -> LogError + '_ {
    move |reason| LogError::CorruptData {
        path: view.path_hint(),
        reason: reason.to_string(),
    }
}

/// Fills `map` with the latest offset of every key in `[first_dirty, cleanable_end)`
/// (skipping markers, aborted batches and key-less records). Returns where the map
/// ends: `cleanable_end`, or the first offset that did not fit.
fn build_map(
    segments: &[SegmentView],
    (first_dirty, cleanable_end): (u64, u64),
    txn: &TxnIndex,
    map: &mut OffsetMap,
    decompressed_bytes_max: usize,
    (stats, throttle): (&mut CleaningStats, &mut Throttle),
) -> Result<u64> {
    let mut map_end = cleanable_end;
    for view in segments.iter().filter(|s| s.next_offset > first_dirty) {
        let mut full = false;
        let file = view
            .open()
            .map_err(LogError::io("open segment", view.path_hint()))?;
        for_each_batch(
            &file,
            (0, view.size),
            RECOVERY_CHUNK_BYTES,
            |_, header, bytes| -> std::result::Result<bool, ScanError> {
                stats.bytes_read += bytes.len() as u64;
                throttle.account(bytes.len() as u64);
                if (header.last_offset() as u64) < first_dirty
                    || header.is_control()
                    || (header.is_transactional()
                        && txn.is_aborted(header.producer_id, header.base_offset as u64))
                {
                    return Ok(true);
                }
                let records =
                    Records::new(bytes, decompressed_bytes_max).map_err(corrupt_records(view))?;
                for record in records.iter() {
                    let record = record.map_err(corrupt_records(view))?;
                    let offset = record.offset as u64;
                    let Some(key) = record.key else { continue };
                    if offset < first_dirty || offset >= cleanable_end {
                        continue;
                    }
                    if !map.put(&digest(key), offset) {
                        map_end = offset;
                        full = true;
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
        .map_err(in_segment(view))?;
        if full {
            break;
        }
    }
    Ok(map_end)
}

/// Consecutive segments whose data together fits one segment (the cleaned group can
/// only be smaller) and whose offsets fit the indexes' 32-bit relative offsets.
fn groups(segments: &[SegmentView], segment_bytes_max: u64) -> Vec<&[SegmentView]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let base = segments[start].base_offset;
        let mut end = start + 1;
        let mut bytes = segments[start].size;
        while end < segments.len()
            && bytes + segments[end].size <= segment_bytes_max
            && segments[end].next_offset - base <= u64::from(u32::MAX)
        {
            bytes += segments[end].size;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

/// Rewrites groups of segments, carrying transaction state from one to the next.
struct Rewriter<'a> {
    map: &'a OffsetMap,
    txn: &'a TxnIndex,
    now_ms: i64,
    config: &'a LogConfig,
    files: &'a Arc<LogFiles>,
    /// Per producer: whether a record of its current transaction was kept.
    txn_retained: HashMap<i64, bool>,
    next_delete_horizon_ms: Option<i64>,
    removed_abort_markers: Vec<(i64, u64)>,
    stats: CleaningStats,
}

/// What becomes of one batch.
enum Outcome {
    /// Kept byte for byte.
    Keep,
    /// Replaced by these bytes.
    Replace(Vec<u8>),
    /// Removed.
    Drop,
}

impl Rewriter<'_> {
    /// Writes the cleaned replacement of `group` as `<first base>.log.cleaned` (with
    /// its indexes), synced.
    fn write_group(
        &mut self,
        dir: &Path,
        group: &[SegmentView],
        throttle: &mut Throttle,
    ) -> Result<()> {
        let mut out = Segment::create_cleaned(dir, group[0].base_offset, self.files)?;
        let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BUFFER_BYTES);
        let mut placements: Vec<BatchPlacement> = Vec::new();
        for view in group {
            let file = view
                .open()
                .map_err(LogError::io("open segment", view.path_hint()))?;
            for_each_batch(
                &file,
                (0, view.size),
                RECOVERY_CHUNK_BYTES,
                |_, header, bytes| -> std::result::Result<bool, ScanError> {
                    self.stats.bytes_read += bytes.len() as u64;
                    throttle.account(bytes.len() as u64);
                    let outcome = self.decide(view, header, bytes)?;
                    let (written, header) = match &outcome {
                        Outcome::Drop => return Ok(true),
                        Outcome::Keep => (bytes, *header),
                        Outcome::Replace(new) => (
                            new.as_slice(),
                            BatchHeader::parse_unchecked(new).map_err(corrupt_records(view))?,
                        ),
                    };
                    placements.push(BatchPlacement {
                        position_in_set: pending.len(),
                        size: written.len(),
                        last_offset: header.last_offset() as u64,
                        max_timestamp: header.max_timestamp,
                    });
                    pending.extend_from_slice(written);
                    if pending.len() >= WRITE_BUFFER_BYTES {
                        self.flush(&mut out, &mut pending, &mut placements, throttle)?;
                    }
                    Ok(true)
                },
            )
            .map_err(in_segment(view))?;
        }
        self.flush(&mut out, &mut pending, &mut placements, throttle)?;
        out.next_offset = group[group.len() - 1].next_offset;
        out.seal()?;
        out.sync()
    }

    fn flush(
        &mut self,
        out: &mut Segment,
        pending: &mut Vec<u8>,
        placements: &mut Vec<BatchPlacement>,
        throttle: &mut Throttle,
    ) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        out.append(
            pending,
            placements,
            self.config.index_interval_bytes,
            self.now_ms,
        )?;
        self.stats.bytes_written += pending.len() as u64;
        throttle.account(pending.len() as u64);
        pending.clear();
        placements.clear();
        Ok(())
    }

    fn note_horizon(&mut self, horizon_ms: i64) {
        self.next_delete_horizon_ms = Some(
            self.next_delete_horizon_ms
                .map_or(horizon_ms, |h| h.min(horizon_ms)),
        );
    }

    fn horizon_passed(&self, header: &BatchHeader) -> bool {
        header
            .delete_horizon_ms()
            .is_some_and(|horizon| horizon <= self.now_ms)
    }

    fn new_horizon(&self) -> i64 {
        self.now_ms
            .saturating_add(i64::try_from(self.config.delete_retention_ms).unwrap_or(i64::MAX))
    }

    fn decide(
        &mut self,
        view: &SegmentView,
        header: &BatchHeader,
        bytes: &[u8],
    ) -> Result<Outcome> {
        if header.is_control() {
            return self.decide_marker(view, header, bytes);
        }
        let pid = header.producer_id;
        let aborted =
            header.is_transactional() && self.txn.is_aborted(pid, header.base_offset as u64);
        let horizon_passed = self.horizon_passed(header);
        let records = Records::new(bytes, self.config.decompressed_bytes_max)
            .map_err(corrupt_records(view))?;
        let mut kept: Vec<Record<'_>> = Vec::with_capacity(header.record_count as usize);
        let mut total = 0u64;
        let mut tombstones_kept = false;
        for record in records.iter() {
            let record = record.map_err(corrupt_records(view))?;
            total += 1;
            let keep = !aborted
                && record.key.is_some_and(|key| {
                    self.map
                        .get(&digest(key))
                        .is_none_or(|latest| latest <= record.offset as u64)
                })
                && !(record.value.is_none() && horizon_passed);
            if keep {
                tombstones_kept |= record.value.is_none();
                kept.push(record);
            }
        }
        self.stats.records_removed += total - kept.len() as u64;
        self.stats.records_kept += kept.len() as u64;

        let horizon = match header.delete_horizon_ms() {
            Some(h) => Some(h),
            None if tombstones_kept => Some(self.new_horizon()),
            None => None,
        };
        if tombstones_kept {
            if let Some(h) = horizon {
                self.note_horizon(h);
            }
        }
        let last_of_producer = header.has_producer_id()
            && self.txn.last_data_batch.get(&pid) == Some(&(header.last_offset() as u64));
        // A kept batch (even emptied) keeps its transaction's marker: a reader that
        // rebuilds producer state from the log must see the transaction end.
        if header.is_transactional() && (!kept.is_empty() || last_of_producer) {
            self.txn_retained.insert(pid, true);
        }
        if kept.is_empty() && !last_of_producer {
            return Ok(Outcome::Drop);
        }
        if kept.len() as u64 == total && horizon == header.delete_horizon_ms() {
            return Ok(Outcome::Keep);
        }
        let rebuilt = rebuild(header, &kept, horizon).map_err(corrupt_records(view))?;
        Ok(Outcome::Replace(rebuilt))
    }

    fn decide_marker(
        &mut self,
        view: &SegmentView,
        header: &BatchHeader,
        bytes: &[u8],
    ) -> Result<Outcome> {
        let pid = header.producer_id;
        let retained = self.txn_retained.remove(&pid).unwrap_or(false);
        let Some(marker) = parse_marker(header, bytes) else {
            return Ok(Outcome::Keep);
        };
        if retained {
            return Ok(Outcome::Keep);
        }
        match header.delete_horizon_ms() {
            Some(horizon) if horizon <= self.now_ms => {
                self.stats.records_removed += u64::from(header.record_count);
                if !marker.commit {
                    self.removed_abort_markers
                        .push((pid, header.base_offset as u64));
                }
                Ok(Outcome::Drop)
            }
            Some(horizon) => {
                self.note_horizon(horizon);
                Ok(Outcome::Keep)
            }
            None => {
                let horizon = self.new_horizon();
                self.note_horizon(horizon);
                let records = Records::new(bytes, self.config.decompressed_bytes_max)
                    .map_err(corrupt_records(view))?;
                let all: Vec<Record<'_>> = records
                    .iter()
                    .collect::<std::result::Result<_, _>>()
                    .map_err(corrupt_records(view))?;
                let rebuilt =
                    rebuild(header, &all, Some(horizon)).map_err(corrupt_records(view))?;
                Ok(Outcome::Replace(rebuilt))
            }
        }
    }
}
