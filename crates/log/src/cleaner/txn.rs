//! What the cleaner must know about transactions, from one scan of batch headers:
//! which transactional batches were aborted, where the first still-open transaction
//! starts (nothing from there on may be cleaned: its outcome is unknown), and the
//! last data batch of every producer (kept, if only as an empty batch, so producer
//! state can be rebuilt from the log). The same scan counts the records of the dirty
//! section, which sizes the cleaner's key map.

use std::collections::HashMap;

use crate::batch::control::parse_marker;
use crate::error::{LogError, Result};
use crate::segment::scan::{read_range, scan, Scanned, RECOVERY_CHUNK_BYTES};
use crate::segment::SegmentView;

/// Transaction outcomes in a log.
#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    /// Per producer, its aborted transactions as `[first offset, marker offset)`.
    aborted: HashMap<i64, Vec<(u64, u64)>>,
    /// First offset of the earliest transaction without a marker.
    pub open_first_offset: Option<u64>,
    /// Per producer, the last offset of its last data batch.
    pub last_data_batch: HashMap<i64, u64>,
    /// Records in batches ending at or after the dirty offset given to `build`: at
    /// least as many as the dirty section has keys.
    pub dirty_records: u64,
}

impl TxnIndex {
    /// Scans the headers of `segments` (in order) and reads their markers, counting
    /// the records of batches that end at or after `dirty_from`.
    pub(crate) fn build(segments: &[SegmentView], dirty_from: u64) -> Result<Self> {
        let mut index = TxnIndex::default();
        let mut open: HashMap<i64, u64> = HashMap::new();
        for view in segments {
            let mut failure = None;
            let file = view
                .open()
                .map_err(LogError::io("open segment", view.path_hint()))?;
            scan(
                &file,
                (0, view.size),
                false,
                RECOVERY_CHUNK_BYTES,
                |item| match item {
                    Scanned::Batch { position, header } => {
                        let pid = header.producer_id;
                        let base = header.base_offset as u64;
                        if header.last_offset() as u64 >= dirty_from {
                            index.dirty_records += u64::from(header.record_count);
                        }
                        if !header.has_producer_id() {
                            return true;
                        }
                        if !header.is_control() {
                            index
                                .last_data_batch
                                .insert(pid, header.last_offset() as u64);
                            if header.is_transactional() {
                                open.entry(pid).or_insert(base);
                            }
                            return true;
                        }
                        let marker = read_range(&file, position, header.size_bytes())
                            .ok()
                            .and_then(|bytes| parse_marker(&header, &bytes));
                        if let (Some(marker), Some(first)) = (marker, open.get(&pid).copied()) {
                            open.remove(&pid);
                            if !marker.commit {
                                index.aborted.entry(pid).or_default().push((first, base));
                            }
                        }
                        true
                    }
                    Scanned::Invalid { position, reason } => {
                        failure = Some(format!("batch at byte {position}: {reason}"));
                        false
                    }
                },
            )
            .map_err(LogError::io(
                "scan segment for transactions",
                view.path_hint(),
            ))?;
            if let Some(reason) = failure {
                return Err(LogError::CorruptData {
                    path: view.path_hint(),
                    reason,
                });
            }
        }
        index.open_first_offset = open.values().min().copied();
        Ok(index)
    }

    /// Whether the transactional batch of `producer_id` starting at `offset` belongs
    /// to an aborted transaction.
    pub(crate) fn is_aborted(&self, producer_id: i64, offset: u64) -> bool {
        self.aborted.get(&producer_id).is_some_and(|spans| {
            let i = spans.partition_point(|(first, _)| *first <= offset);
            i > 0 && offset < spans[i - 1].1
        })
    }
}
