//! Log compaction: Kafka's semantics (latest value per key, offsets kept, tombstones
//! and markers after their delete horizon, aborted records gone, empty batches for
//! producer state), a property test against a model with cleanings and unclean
//! reopens, and crashes at every step of the swap.

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use strom_log::batch::builder::BatchBuilder;
use strom_log::batch::control::{marker_batch, ControlMarker};
use strom_log::batch::records::Records;
use strom_log::{
    BatchHeader, CleanOptions, CleanupPolicy, FlushPolicy, LogConfig, LogError, PartitionLog,
    SwapStep,
};
use support::{encode, split_batches, TestRecord, CODECS};

const DELETE_RETENTION_MS: u64 = 100;

fn compacted() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1024,
        flush_policy: FlushPolicy::Os,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..LogConfig::default()
    }
}

fn options(now_ms: i64) -> CleanOptions {
    CleanOptions {
        dedupe_buffer_bytes: 1 << 20,
        io_bytes_per_second_max: None,
        now_ms,
        stop_at: None,
    }
}

fn keyed(records: &[(&[u8], Option<&[u8]>)], timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new(timestamp);
    for (key, value) in records {
        builder.push(Some(key), *value, timestamp);
    }
    builder.finish()
}

/// One record as read back: offset, key, value; markers as key `b"<marker>"`.
type Read = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record from the log start, with the batch headers seen.
fn read_all(log: &PartitionLog) -> (Vec<Read>, Vec<BatchHeader>) {
    let mut out = Vec::new();
    let mut headers = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let read = log.read(next, 1 << 20, None).expect("read");
        if read.records.is_empty() {
            break;
        }
        for batch in split_batches(&read.records) {
            let header = BatchHeader::parse(batch).expect("valid batch");
            headers.push(header);
            let records = Records::new(batch, 1 << 26).expect("records");
            for record in records.iter() {
                let record = record.expect("record");
                let key = if header.is_control() {
                    Some(b"<marker>".to_vec())
                } else {
                    record.key.map(<[u8]>::to_vec)
                };
                out.push((record.offset as u64, key, record.value.map(<[u8]>::to_vec)));
            }
            next = header.last_offset() as u64 + 1;
        }
    }
    (out, headers)
}

/// Appends and then rolls, so that everything written so far is in sealed segments
/// before the checkpoint's segment (what the cleaner may touch).
fn seal_all(log: &PartitionLog, timestamp: i64) {
    // A filler batch larger than half a segment forces a roll.
    let filler = keyed(&[(b"filler", Some(&[0u8; 700]))], timestamp);
    log.append_at(&mut filler.clone(), timestamp)
        .expect("append");
    log.append_at(&mut filler.clone(), timestamp)
        .expect("append");
    log.checkpoint().expect("checkpoint");
}

fn latest(reads: &[Read]) -> BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)> {
    let mut map = BTreeMap::new();
    for (offset, key, value) in reads {
        if let Some(key) = key {
            map.insert(key.clone(), (*offset, value.clone()));
        }
    }
    map
}

#[test]
fn cleaning_keeps_the_latest_value_of_every_key_at_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    for round in 0..20u8 {
        for key in 0..5u8 {
            let value = [round, key];
            let mut batch = keyed(&[(&[b'k', key], Some(&value))], 1_000);
            log.append_at(&mut batch, 1_000).expect("append");
        }
    }
    seal_all(&log, 1_000);
    let (before, _) = read_all(&log);
    let end = log.log_end_offset();
    let size_before = log.size_bytes();
    let outcome = log.clean(&options(2_000)).expect("clean").expect("cleaned");
    assert!(outcome.completed);
    // 19 old values per key; the first filler stays (the second is in the active
    // segment, which is not cleaned, so nothing newer is known for its key).
    assert_eq!(outcome.stats.records_removed, 95);
    let (after, _) = read_all(&log);
    assert_eq!(log.log_end_offset(), end, "offsets never change");
    assert!(log.size_bytes() < size_before);
    assert_eq!(latest(&after), latest(&before));
    assert_eq!(after.len(), 5 + 2);
    // Every record read back is the one written at that offset.
    let written: BTreeMap<u64, &Read> = before.iter().map(|r| (r.0, r)).collect();
    for record in &after {
        assert_eq!(written[&record.0], record);
    }
    // Reading from an offset inside a gap returns the next record.
    let gap = log.read(0, 1 << 20, None).expect("read");
    assert!(!gap.records.is_empty());
    // The state survives a clean and an unclean reopen.
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir.path(), compacted()).expect("reopen");
    assert_eq!(read_all(&log).0, after);
    drop(log);
    std::fs::remove_file(dir.path().join("recovery-point")).expect("remove checkpoint");
    let log = PartitionLog::open(dir.path(), compacted()).expect("reopen unclean");
    assert_eq!(read_all(&log).0, after, "recovery accepts compacted gaps");
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn every_codec_is_cleaned_and_recompressed_with_the_same_codec() {
    for codec in CODECS {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), compacted()).expect("open");
        let records: Vec<TestRecord> = (0..6u8)
            .map(|i| TestRecord {
                key: Some(vec![b'a' + i % 2]),
                value: Some(vec![i; 20]),
                timestamp: 1_000 + i64::from(i),
                headers: vec![("h".into(), Some(vec![i]))],
            })
            .collect();
        let mut batch = encode(&records, codec);
        log.append_at(&mut batch, 1_000).expect("append");
        seal_all(&log, 2_000);
        log.clean(&options(3_000)).expect("clean").expect("cleaned");
        let read = log.read(0, 1 << 20, None).expect("read");
        let first = split_batches(&read.records)[0];
        let header = BatchHeader::parse(first).expect("valid");
        assert_eq!(
            (header.base_offset, header.last_offset()),
            (0, 5),
            "{codec:?}"
        );
        let records = Records::new(first, 1 << 20).expect("records");
        let kept: Vec<_> = records
            .iter()
            .map(|r| {
                let r = r.expect("record");
                (
                    r.offset,
                    r.value.map(<[u8]>::to_vec),
                    r.timestamp,
                    r.headers.len(),
                )
            })
            .collect();
        assert_eq!(
            kept,
            vec![
                (4, Some(vec![4; 20]), 1_004, 1),
                (5, Some(vec![5; 20]), 1_005, 1)
            ],
            "{codec:?}"
        );
    }
}

#[test]
fn tombstones_stay_until_their_delete_horizon_then_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    log.append_at(&mut keyed(&[(b"gone", Some(b"v1"))], 1_000), 1_000)
        .expect("append");
    log.append_at(&mut keyed(&[(b"stays", Some(b"v1"))], 1_000), 1_000)
        .expect("append");
    log.append_at(&mut keyed(&[(b"gone", None)], 1_000), 1_000)
        .expect("append");
    seal_all(&log, 1_000);
    log.clean(&options(5_000)).expect("clean").expect("cleaned");
    let (reads, headers) = read_all(&log);
    let keys: Vec<_> = reads.iter().map(|r| r.1.clone()).collect();
    assert!(
        keys.contains(&Some(b"gone".to_vec())),
        "tombstone kept first"
    );
    assert!(headers
        .iter()
        .any(|h| h.delete_horizon_ms() == Some(5_000 + DELETE_RETENTION_MS as i64)));
    let status = log.cleaner_status(5_000).expect("compacted");
    assert!(!status.needs_cleaning);
    let later = 5_000 + DELETE_RETENTION_MS as i64;
    assert!(log.cleaner_status(later).expect("compacted").needs_cleaning);
    log.clean(&options(later)).expect("clean").expect("cleaned");
    let (reads, _) = read_all(&log);
    assert!(reads.iter().all(|r| r.1.as_deref() != Some(&b"gone"[..])));
    assert!(reads.iter().any(|r| r.1.as_deref() == Some(&b"stays"[..])));
}

#[test]
fn aborted_records_and_spent_markers_disappear_and_producers_keep_an_empty_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    let txn = |pid: i64, seq: i32, key: &[u8], value: &[u8]| {
        let mut builder = BatchBuilder::producer(1_000, pid, 0, seq, true);
        builder.push(Some(key), Some(value), 1_000);
        builder.finish()
    };
    let marker = |pid: i64, commit: bool| {
        marker_batch(
            pid,
            0,
            ControlMarker {
                commit,
                coordinator_epoch: 0,
            },
            1_000,
        )
    };
    // Producer 1 aborts a value of `a`, then commits `c`; producer 2 commits `b`,
    // which a plain write overwrites.
    log.append_at(&mut txn(1, 0, b"a", b"aborted"), 1_000)
        .expect("append"); // 0
    log.append_at(&mut marker(1, false), 1_000).expect("append"); // 1
    log.append_at(&mut txn(2, 0, b"b", b"old"), 1_000)
        .expect("append"); // 2
    log.append_at(&mut marker(2, true), 1_000).expect("append"); // 3
    log.append_at(&mut keyed(&[(b"b", Some(b"new"))], 1_000), 1_000)
        .expect("append"); // 4
    log.append_at(&mut keyed(&[(b"a", Some(b"plain"))], 1_000), 1_000)
        .expect("append"); // 5
    log.append_at(&mut txn(1, 1, b"c", b"committed"), 1_000)
        .expect("append"); // 6
    log.append_at(&mut marker(1, true), 1_000).expect("append"); // 7
    seal_all(&log, 1_000);
    let markers = |reads: &[Read]| {
        reads
            .iter()
            .filter(|r| r.1.as_deref() == Some(&b"<marker>"[..]))
            .map(|r| r.0)
            .collect::<Vec<_>>()
    };
    let first = log.clean(&options(2_000)).expect("clean").expect("cleaned");
    assert!(
        first.removed_abort_markers.is_empty(),
        "markers wait for their horizon"
    );
    let (reads, headers) = read_all(&log);
    assert!(reads
        .iter()
        .all(|r| r.2.as_deref() != Some(&b"aborted"[..])));
    assert!(reads.iter().all(|r| r.2.as_deref() != Some(&b"old"[..])));
    assert_eq!(markers(&reads), vec![1, 3, 7]);
    // Producer 2's last data batch is kept empty, with its sequence.
    let empty = headers
        .iter()
        .find(|h| h.producer_id == 2 && !h.is_control())
        .expect("empty batch kept");
    assert_eq!((empty.record_count, empty.base_sequence), (0, 0));
    let later = 2_000 + DELETE_RETENTION_MS as i64;
    let second = log.clean(&options(later)).expect("clean").expect("cleaned");
    assert_eq!(second.removed_abort_markers, vec![(1, 1)]);
    let (reads, _) = read_all(&log);
    // The abort marker went with its records; the commit markers stay with what is
    // left of their transactions (a record, or producer 2's empty batch).
    assert_eq!(markers(&reads), vec![3, 7]);
    let latest = latest(&reads);
    assert_eq!(latest[&b"a".to_vec()].1.as_deref(), Some(&b"plain"[..]));
    assert_eq!(latest[&b"b".to_vec()].1.as_deref(), Some(&b"new"[..]));
    assert_eq!(latest[&b"c".to_vec()].1.as_deref(), Some(&b"committed"[..]));
}

#[test]
fn an_open_transaction_and_the_segments_after_it_are_not_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    log.append_at(&mut keyed(&[(b"k", Some(b"1"))], 1_000), 1_000)
        .expect("append");
    seal_all(&log, 1_000);
    let mut open = BatchBuilder::producer(1_000, 5, 0, 0, true);
    open.push(Some(b"k"), Some(b"open"), 1_000);
    log.append_at(&mut open.finish(), 1_000).expect("append");
    log.append_at(&mut keyed(&[(b"k", Some(b"2"))], 1_000), 1_000)
        .expect("append");
    seal_all(&log, 1_000);
    log.clean(&options(2_000)).expect("clean");
    let (reads, _) = read_all(&log);
    let values: Vec<_> = reads
        .iter()
        .filter(|r| r.1.as_deref() == Some(&b"k"[..]))
        .map(|r| r.2.clone())
        .collect();
    assert!(values.contains(&Some(b"open".to_vec())));
    assert!(values.contains(&Some(b"2".to_vec())));
}

#[test]
fn records_without_a_key_are_refused_by_a_compacted_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    let mut batch = encode(&[TestRecord::value(b"no key", 1_000)], CODECS[0]);
    assert!(matches!(
        log.append_at(&mut batch, 1_000),
        Err(LogError::MissingKey { position: 0 })
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn min_compaction_lag_protects_recent_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compacted()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    log.append_at(&mut keyed(&[(b"k", Some(b"1"))], 1_000), 1_000)
        .expect("append");
    log.append_at(&mut keyed(&[(b"k", Some(b"2"))], 1_000), 1_000)
        .expect("append");
    seal_all(&log, 1_000);
    assert!(log.clean(&options(5_000)).expect("clean").is_none());
    assert!(log.clean(&options(11_000)).expect("clean").is_some());
}

#[test]
fn a_crash_at_any_step_of_the_swap_leaves_the_old_or_the_new_log() {
    for step in [
        SwapStep::BeforeManifest,
        SwapStep::AfterManifest,
        SwapStep::AfterFirstRename,
        SwapStep::AfterRenames,
        SwapStep::AfterDeletes,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), compacted()).expect("open");
        for round in 0..30u8 {
            let key = [b'k', round % 4];
            log.append_at(&mut keyed(&[(&key, Some(&[round; 60]))], 1_000), 1_000)
                .expect("append");
        }
        seal_all(&log, 1_000);
        let (old, _) = read_all(&log);
        let end = log.log_end_offset();
        let stopped = CleanOptions {
            stop_at: Some(step),
            ..options(2_000)
        };
        let outcome = log.clean(&stopped).expect("clean").expect("cleaned");
        assert!(!outcome.completed);
        drop(log); // the crash: nothing else happens
        let log = PartitionLog::open(dir.path(), compacted()).expect("recover");
        let (now, _) = read_all(&log);
        assert_eq!(log.log_end_offset(), end, "{step:?}");
        if step == SwapStep::BeforeManifest {
            assert_eq!(now, old, "uncommitted swap discarded");
        } else {
            assert_eq!(latest(&now), latest(&old), "{step:?}");
            assert!(now.len() < old.len(), "committed swap finished at {step:?}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n == "cleaner-swap")
            .collect();
        assert!(leftovers.is_empty(), "{step:?}: {leftovers:?}");
        // And it can be cleaned again.
        log.clean(&options(3_000)).expect("clean again");
    }
}

/// Model-based test: random keyed writes, tombstones, transactions, cleanings and
/// unclean reopens (with and without an interrupted swap).
#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u8,
        value: Option<u8>,
        producer: Option<u8>,
    },
    EndTxn {
        producer: u8,
        commit: bool,
    },
    Seal,
    Clean {
        advance_ms: i64,
    },
    CrashDuringSwap {
        step: u8,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, proptest::option::weighted(0.85, any::<u8>()), proptest::option::weighted(0.3, 0u8..2))
            .prop_map(|(key, value, producer)| Op::Put { key, value, producer }),
        1 => (0u8..2, any::<bool>()).prop_map(|(producer, commit)| Op::EndTxn { producer, commit }),
        2 => Just(Op::Seal),
        2 => (0i64..150).prop_map(|advance_ms| Op::Clean { advance_ms }),
        1 => (0u8..5).prop_map(|step| Op::CrashDuringSwap { step }),
        1 => Just(Op::Reopen),
    ]
}

/// What the model knows of one written record.
#[derive(Debug, Clone, PartialEq)]
struct Written {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    /// `None` outside transactions; else the producer and, once ended, the outcome.
    txn: Option<(u8, Option<bool>)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), compacted()).expect("open");
        let mut written: BTreeMap<u64, Written> = BTreeMap::new();
        let mut open_txns: [bool; 2] = [false; 2];
        let mut sequences = [0i32; 2];
        let mut now = 1_000i64;
        let mut high_end = 0u64;
        for op in ops {
            match op {
                Op::Put { key, value, producer } => {
                    let key = vec![b'k', key];
                    let value = value.map(|v| vec![v; 1 + usize::from(v % 40)]);
                    let mut batch = match producer {
                        Some(p) => {
                            let mut b = BatchBuilder::producer(now, 10 + i64::from(p), 0, sequences[p as usize], true);
                            sequences[p as usize] += 1;
                            open_txns[p as usize] = true;
                            b.push(Some(&key), value.as_deref(), now);
                            b.finish()
                        }
                        None => keyed(&[(&key, value.as_deref())], now),
                    };
                    let info = log.append_at(&mut batch, now).expect("append");
                    written.insert(info.base_offset, Written { key, value, txn: producer.map(|p| (p, None)) });
                }
                Op::EndTxn { producer, commit } => {
                    if open_txns[producer as usize] {
                        open_txns[producer as usize] = false;
                        let mut batch = marker_batch(10 + i64::from(producer), 0, ControlMarker { commit, coordinator_epoch: 0 }, now);
                        log.append_at(&mut batch, now).expect("append");
                        for w in written.values_mut() {
                            if w.txn == Some((producer, None)) {
                                w.txn = Some((producer, Some(commit)));
                            }
                        }
                    }
                }
                Op::Seal => seal_all(&log, now),
                Op::Clean { advance_ms } => {
                    now += advance_ms;
                    log.clean(&options(now)).expect("clean");
                }
                Op::CrashDuringSwap { step } => {
                    let step = [SwapStep::BeforeManifest, SwapStep::AfterManifest, SwapStep::AfterFirstRename, SwapStep::AfterRenames, SwapStep::AfterDeletes][step as usize];
                    log.clean(&CleanOptions { stop_at: Some(step), ..options(now) }).expect("clean");
                    drop(log);
                    log = PartitionLog::open(dir.path(), compacted()).expect("recover");
                }
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(dir.path(), compacted()).expect("reopen");
                }
            }
            // Offsets only grow.
            prop_assert!(log.log_end_offset() >= high_end);
            high_end = log.log_end_offset();
            let (reads, _) = read_all(&log);
            let mut last = None;
            for (offset, key, value) in &reads {
                prop_assert!(last.is_none_or(|l| l < *offset), "offsets increase");
                last = Some(*offset);
                if key.as_deref() == Some(&b"<marker>"[..]) || key.as_deref() == Some(&b"filler"[..]) {
                    continue;
                }
                let w = written.get(offset).expect("a record read was written at its offset");
                prop_assert_eq!(key.as_ref(), Some(&w.key));
                prop_assert_eq!(value, &w.value);
            }
            let present: std::collections::BTreeSet<u64> = reads.iter().map(|r| r.0).collect();
            // The latest visible value of every key is present; open transactions too.
            let mut visible: BTreeMap<&[u8], (u64, &Written)> = BTreeMap::new();
            for (offset, w) in &written {
                match w.txn {
                    None | Some((_, Some(true))) => { visible.insert(&w.key, (*offset, w)); }
                    Some((_, None)) => prop_assert!(present.contains(offset), "open transaction record {} kept", offset),
                    Some((_, Some(false))) => {}
                }
            }
            for (offset, w) in visible.values() {
                if w.value.is_some() {
                    prop_assert!(present.contains(offset), "latest value of {:?} at {} kept", w.key, offset);
                }
            }
        }
    }
}

/// Environment variable that turns `cleaner_child` into the writing and cleaning
/// process of the SIGKILL test.
const CHILD_DIR_ENV: &str = "STROM_LOG_CLEANER_CHILD_DIR";
/// Keys the child cycles through: record `i` has key `i % KEYS` and value `i`.
const KEYS: u64 = 50;

fn child_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 16 * 1024,
        flush_policy: FlushPolicy::Always,
        ..compacted()
    }
}

/// The child of the SIGKILL test: one thread appends record `i` (key `i % KEYS`)
/// and prints `i` once it is durable; another checkpoints and cleans in a loop,
/// printing `cleaned` after each completed cleaning.
#[test]
#[ignore = "run as a child process by sigkill_during_cleaning_loses_nothing"]
fn cleaner_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let log = std::sync::Arc::new(
        PartitionLog::open(std::path::Path::new(&dir), child_config()).expect("open"),
    );
    println!();
    let cleaner = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || loop {
            log.checkpoint().expect("checkpoint");
            if let Some(outcome) = log.clean(&options(strom_log::now_ms())).expect("clean") {
                if outcome.completed && outcome.stats.records_removed > 0 {
                    println!("cleaned");
                }
            }
        })
    };
    for i in 0u64.. {
        let key = format!("k{}", i % KEYS);
        let value = i.to_string();
        let info = log
            .append(&mut keyed(&[(key.as_bytes(), Some(value.as_bytes()))], 0))
            .expect("append");
        assert_eq!(info.base_offset, i);
        log.await_durability(&info).expect("durable");
        println!("{i}");
    }
    let _ = cleaner.join();
}

#[test]
fn sigkill_during_cleaning_loses_nothing() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "cleaner_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acknowledged = 0u64;
    let mut cleanings = 0;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line == "cleaned" {
            cleanings += 1;
        } else if let Ok(i) = line.parse::<u64>() {
            acknowledged = i + 1;
        }
        // Kill once the cleaner has swapped segments a few times, mid-whatever.
        if cleanings >= 3 && acknowledged >= 3_000 {
            child.kill().expect("SIGKILL the child");
            break;
        }
    }
    let _ = child.wait();
    assert!(cleanings >= 3, "the child cleaned before the kill");
    let log = PartitionLog::open(dir.path(), child_config()).expect("recover");
    assert!(
        log.log_end_offset() >= acknowledged,
        "no acknowledged offset lost"
    );
    let (reads, _) = read_all(&log);
    let mut latest_by_key: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (offset, key, value) in &reads {
        // Every record is the one written at its offset.
        assert_eq!(
            key.as_deref(),
            Some(format!("k{}", offset % KEYS).as_bytes())
        );
        assert_eq!(value.as_deref(), Some(offset.to_string().as_bytes()));
        latest_by_key.insert(key.clone().unwrap_or_default(), *offset);
    }
    // Every key's last acknowledged record (or a later one) survived.
    for k in 0..KEYS.min(acknowledged) {
        let last_acked = (acknowledged - 1) - ((acknowledged - 1 + KEYS - k) % KEYS);
        let key = format!("k{k}").into_bytes();
        assert!(
            latest_by_key.get(&key).is_some_and(|o| *o >= last_acked),
            "key k{k}: last acknowledged offset {last_acked}, found {:?}",
            latest_by_key.get(&key)
        );
    }
    assert!(reads.len() < acknowledged as usize, "the log was compacted");
}

#[test]
fn a_failed_cleaning_stops_cleaning_that_log_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), compacted()).expect("open");
    for round in 0..10u8 {
        log.append_at(&mut keyed(&[(b"k", Some(&[round; 50]))], 1_000), 1_000)
            .expect("append");
    }
    seal_all(&log, 1_000);
    // Damage a value inside the first segment: its CRC no longer matches.
    let first = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).expect("read segment");
    bytes[70] ^= 0xff;
    std::fs::write(&first, &bytes).expect("write segment");
    let error = log
        .clean(&options(2_000))
        .expect_err("corrupt data is an error");
    assert!(matches!(error, LogError::CorruptData { .. }), "{error}");
    let status = log.cleaner_status(2_000).expect("compacted");
    assert!(status.failed.is_some() && !status.needs_cleaning);
    // Appends and reads of the log go on.
    let info = log
        .append_at(&mut keyed(&[(b"k", Some(b"after"))], 3_000), 3_000)
        .expect("append after a failed cleaning");
    let read = log.read(info.base_offset, 1 << 20, None).expect("read");
    assert!(!read.records.is_empty());
    let leftovers = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cleaned"))
        .count();
    assert_eq!(leftovers, 0, "the failed cleaning's files are removed");
}
