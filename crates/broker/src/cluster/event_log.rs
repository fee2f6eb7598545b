//! Internal logs of JSON events (the metadata log, the group offsets log): appended
//! durably through the storage engine, replayed in order at start. The same recovery
//! that protects data protects the broker's own state.

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_log::batch::builder::BatchBuilder;
use strom_log::batch::records::Records;
use strom_log::batch::validate_all;
use strom_log::{now_ms, FlushPolicy, LogConfig, LogError, PartitionLog};

use crate::error::StartError;

/// Settings of every internal log: each change synced, kept forever.
pub(crate) fn event_log_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 * 1024 * 1024,
        retention_ms: None,
        retention_bytes: None,
        flush_policy: FlushPolicy::Always,
        ..LogConfig::default()
    }
}

/// Appends `events` as one batch and waits until it is on disk.
pub(crate) fn append<T: Serialize>(log: &PartitionLog, events: &[T]) -> Result<(), LogError> {
    if events.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut builder = BatchBuilder::new(now);
    for event in events {
        let value = serde_json::to_vec(event).map_err(|e| LogError::Config(e.to_string()))?;
        builder.push(None, Some(&value), now);
    }
    let mut batch = builder.finish();
    let info = log.append(&mut batch)?;
    log.await_durability(&info)
}

/// Rewrites a log's live state (`batches`, each appended as one batch) at its end
/// and drops the records before it, so that a restart replays only what is current.
/// Does nothing while the log holds fewer than `min_records` records or fewer than
/// twice the live events. A crash in the middle is harmless: the rewritten records
/// only repeat what the older ones say. The caller keeps other writers out.
pub(crate) fn compact<T: Serialize>(
    log: &PartitionLog,
    batches: &[&[T]],
    min_records: u64,
) -> Result<bool, LogError> {
    let records = log.log_end_offset() - log.log_start_offset();
    let live: u64 = batches.iter().map(|b| b.len() as u64).sum();
    if records < min_records || records < 2 * live {
        return Ok(false);
    }
    let start = log.log_end_offset();
    for batch in batches {
        append(log, batch)?;
    }
    log.delete_records_before(start)?;
    Ok(true)
}

/// Calls `apply` with every event in the log, oldest first.
pub(crate) fn replay<T: DeserializeOwned>(
    log: &PartitionLog,
    mut apply: impl FnMut(T),
) -> Result<(), StartError> {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let decompressed_max = log.config().decompressed_bytes_max;
    let bad = |what: String| StartError::Metadata(format!("{}: {what}", log.dir().display()));
    while offset < end {
        let read = log.read(offset, 1024 * 1024, None)?;
        if read.records.is_empty() {
            break;
        }
        for batch in validate_all(&read.records) {
            let (position, header) =
                batch.map_err(|(at, e)| bad(format!("batch at byte {at}: {e}")))?;
            let bytes = &read.records[position..position + header.size_bytes()];
            let records = Records::new(bytes, decompressed_max).map_err(|e| bad(e.to_string()))?;
            for record in records.iter() {
                let record = record.map_err(|e| bad(e.to_string()))?;
                if (record.offset as u64) < offset {
                    continue;
                }
                let value = record.value.unwrap_or_default();
                let event = serde_json::from_slice(value)
                    .map_err(|e| bad(format!("record at offset {}: {e}", record.offset)))?;
                apply(event);
            }
            offset = offset.max(header.last_offset() as u64 + 1);
        }
    }
    Ok(())
}
