//! Producer-state snapshots, so that recovery reads a bounded part of each log. A
//! snapshot (`producers.snapshot` in the partition's directory, JSON) holds the
//! state as of an offset; at start the state is loaded from it and the batches after
//! it are replayed. Without a usable snapshot (a new data directory, or one ahead of
//! a log that a power loss cut short) the last [`REBUILD_TAIL_BYTES`] of the log are
//! replayed instead, keeping the snapshot's aborted transactions that end before that
//! tail: producers idle for longer are forgotten, as Kafka forgets producers idle for
//! `producer.id.expiration.ms`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use strom_log::batch::control::parse_marker;
use strom_log::{BatchHeader, LogError, PartitionLog};

use super::producer_state::{AbortedTxn, BatchSequence, Producer, ProducerStates};

/// How much of a partition's tail is replayed when there is no snapshot.
const REBUILD_TAIL_BYTES: u64 = 256 * 1024 * 1024;

/// The snapshot's file name in the partition directory.
const SNAPSHOT_FILE: &str = "producers.snapshot";

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The state covers every batch below this offset.
    offset: u64,
    producers: HashMap<i64, Producer>,
    aborted: Vec<AbortedTxn>,
}

/// Loads the partition's producer state: its snapshot plus the log after it.
pub(crate) fn load(log: &PartitionLog) -> Result<ProducerStates, LogError> {
    load_with_tail(log, REBUILD_TAIL_BYTES)
}

/// [`load`], replaying the last `tail_bytes` of the log when the snapshot is unusable.
fn load_with_tail(log: &PartitionLog, tail_bytes: u64) -> Result<ProducerStates, LogError> {
    let end = log.log_end_offset();
    let (mut states, from) = match read(log.dir()) {
        Some(snapshot) if snapshot.offset <= end => (
            ProducerStates::from_parts(snapshot.producers, snapshot.aborted),
            snapshot.offset.max(log.log_start_offset()),
        ),
        found => {
            let from = log.tail_start_offset(tail_bytes);
            // Aborted transactions that ended before the replayed tail are still facts
            // about the log (it is a prefix of what the snapshot saw).
            let aborted = found
                .map(|snapshot| {
                    tracing::warn!(dir = %log.dir().display(), "producer snapshot is past the log end; replaying the log's tail");
                    snapshot
                        .aborted
                        .into_iter()
                        .filter(|a| a.last_offset < from)
                        .collect()
                })
                .unwrap_or_default();
            (ProducerStates::from_parts(HashMap::new(), aborted), from)
        }
    };
    replay(log, from, &mut states)?;
    states.prune(log.log_start_offset());
    Ok(states)
}

/// Applies every batch from `from` to the log end to `states`.
fn replay(log: &PartitionLog, from: u64, states: &mut ProducerStates) -> Result<(), LogError> {
    let mut offset = from;
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 4 * 1024 * 1024, None)?;
        if read.records.is_empty() {
            break;
        }
        let mut at = 0;
        while let Ok(header) = BatchHeader::parse_unchecked(&read.records[at..]) {
            let size = header.size_bytes();
            let Some(bytes) = read.records.get(at..at + size) else {
                break;
            };
            let (base, last) = (header.base_offset as u64, header.last_offset() as u64);
            if last >= offset {
                if let Some(marker) = parse_marker(&header, bytes) {
                    states.record_marker(header.producer_id, header.producer_epoch, marker, base);
                } else if let Some(batch) = BatchSequence::of(&header) {
                    states.record(&batch, base, last);
                }
            }
            offset = offset.max(last + 1);
            at += size;
            if at >= read.records.len() {
                break;
            }
        }
    }
    Ok(())
}

/// The snapshot in `dir`, if there is a readable one.
fn read(dir: &Path) -> Option<Snapshot> {
    let bytes = std::fs::read(dir.join(SNAPSHOT_FILE)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(snapshot) => Some(snapshot),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "unreadable producer snapshot; replaying the log's tail");
            None
        }
    }
}

/// Writes `states`, which cover the log below `offset`, as the partition's snapshot.
/// Atomic: written aside, synced, renamed.
pub(crate) fn write(dir: &Path, states: &ProducerStates, offset: u64) -> std::io::Result<()> {
    let (producers, aborted) = states.parts();
    #[derive(Serialize)]
    struct SnapshotRef<'a> {
        offset: u64,
        producers: &'a HashMap<i64, Producer>,
        aborted: &'a [AbortedTxn],
    }
    let json = serde_json::to_vec(&SnapshotRef {
        offset,
        producers,
        aborted,
    })
    .map_err(std::io::Error::other)?;
    let temp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&json)?;
    file.sync_data()?;
    std::fs::rename(&temp, dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_log::batch::builder::BatchBuilder;
    use strom_log::batch::control::{marker_batch, ControlMarker};
    use strom_log::LogConfig;

    /// A one-record batch of producer `pid` (transactional or not) at sequence `seq`.
    fn producer_batch(pid: i64, seq: i32, transactional: bool) -> Vec<u8> {
        let mut batch = BatchBuilder::producer(0, pid, 0, seq, transactional);
        batch.push(None, Some(b"v"), 0);
        batch.finish()
    }

    fn append(log: &PartitionLog, mut batch: Vec<u8>) {
        log.append(&mut batch).expect("append");
    }

    #[test]
    fn snapshot_plus_replay_equals_a_full_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
        let abort = ControlMarker {
            commit: false,
            coordinator_epoch: 0,
        };
        append(&log, producer_batch(1, 0, true));
        append(&log, producer_batch(2, 0, false));
        append(&log, marker_batch(1, 0, abort, 0));
        append(&log, producer_batch(1, 1, true));
        let mid = load(&log).expect("load");
        write(dir.path(), &mid, log.log_end_offset()).expect("snapshot");
        append(&log, producer_batch(3, 0, true));
        append(&log, marker_batch(1, 0, abort, 0));
        let from_snapshot = load(&log).expect("load with snapshot");
        std::fs::remove_file(dir.path().join(SNAPSHOT_FILE)).expect("remove");
        let from_log = load(&log).expect("load without snapshot");
        assert_eq!(from_snapshot, from_log);
        assert_eq!(from_log.first_unstable_offset(), Some(4));
        assert_eq!(from_log.aborted_between(0, 10).len(), 2);
    }

    #[test]
    fn a_snapshot_past_the_log_end_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
        append(&log, producer_batch(1, 0, true));
        let mut ahead = ProducerStates::default();
        ahead.record(
            &BatchSequence::of(&BatchHeader::parse(&producer_batch(9, 0, true)).expect("header"))
                .expect("sequence"),
            0,
            0,
        );
        write(dir.path(), &ahead, 100).expect("snapshot");
        let states = load(&log).expect("load");
        assert_eq!(states.epoch(9), None);
        assert_eq!(states.first_unstable_offset(), Some(0));
    }

    #[test]
    fn a_snapshot_ahead_of_a_shortened_log_still_gives_its_older_aborted_transactions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes_max: 1024,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config).expect("open");
        let abort = ControlMarker {
            commit: false,
            coordinator_epoch: 0,
        };
        // An aborted transaction at offsets 0..=1, then enough plain data to fill
        // several segments.
        append(&log, producer_batch(1, 0, true));
        append(&log, marker_batch(1, 0, abort, 0));
        for seq in 0..100 {
            append(&log, producer_batch(2, seq, false));
        }
        let full = load(&log).expect("load");
        assert_eq!(full.aborted_between(0, 100).len(), 1);
        // A snapshot from a future the log no longer has (a power loss cut it short).
        write(dir.path(), &full, log.log_end_offset() + 50).expect("snapshot");
        let tail = 1;
        assert!(
            log.tail_start_offset(tail) > 1,
            "the tail leaves out the transaction"
        );
        let states = load_with_tail(&log, tail).expect("load");
        assert_eq!(states.aborted_between(0, 100), full.aborted_between(0, 100));
    }
}
