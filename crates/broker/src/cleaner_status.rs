//! `GET /v1/topics/{topic}/cleaner` on the HTTP address: how the log cleaner stands
//! with each partition of a compacted topic, as JSON (what `strom topic describe`
//! shows; Kafka's protocol has no API for it).

use serde::Serialize;

use crate::cluster::Cluster;

/// One partition's cleaner state.
#[derive(Debug, Serialize)]
pub(crate) struct PartitionCleanerStatus {
    partition: i32,
    first_dirty_offset: u64,
    cleanable_bytes: u64,
    dirty_bytes: u64,
    dirty_ratio: f64,
    needs_cleaning: bool,
    max_compaction_delay_ms: u64,
    last_cleaned_ms: Option<i64>,
    failed: Option<String>,
}

/// The cleaner state of every partition of `topic` (empty unless it is compacted);
/// `None` when the topic does not exist.
pub(crate) fn topic_cleaner_status(
    cluster: &Cluster,
    topic: &str,
) -> Option<Vec<PartitionCleanerStatus>> {
    let topic = cluster.topic(topic)?;
    let now_ms = strom_log::now_ms();
    Some(
        topic
            .partitions
            .iter()
            .filter_map(|p| {
                let status = p.log.cleaner_status(now_ms)?;
                Some(PartitionCleanerStatus {
                    partition: p.index,
                    first_dirty_offset: status.first_dirty_offset,
                    cleanable_bytes: status.cleanable_bytes,
                    dirty_bytes: status.dirty_bytes,
                    dirty_ratio: status.dirty_ratio,
                    needs_cleaning: status.needs_cleaning,
                    max_compaction_delay_ms: status.max_compaction_delay_ms,
                    last_cleaned_ms: status.last_cleaned_ms,
                    failed: status.failed,
                })
            })
            .collect(),
    )
}
