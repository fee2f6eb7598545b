//! The open-file budget: logs with many more segments than the budget allows open
//! keep appending, reading, recovering, deleting and compacting correctly while their
//! files are closed and reopened underneath them, and the process never holds more
//! descriptors than the budget (plus what operations in flight use).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strom_log::batch::builder::BatchBuilder;
use strom_log::batch::records::Records;
use strom_log::{
    BatchHeader, CleanOptions, CleanupPolicy, FileBudget, FlushPolicy, LogConfig, LogManager,
    PartitionLog, TopicPartition, OPEN_FILES_MIN,
};
use support::{single, split_batches, values};

const BUDGET: usize = OPEN_FILES_MIN;
const PARTITIONS: usize = 64;
const ROUNDS: usize = 12;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1024,
        index_interval_bytes: 128,
        flush_policy: FlushPolicy::Always,
        ..LogConfig::default()
    }
}

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

fn value(partition: usize, round: usize) -> Vec<u8> {
    format!("p{partition}-r{round}-").repeat(20).into_bytes()
}

fn open_manager(dir: &Path, budget: &Arc<FileBudget>) -> LogManager {
    LogManager::open_first(dir, budget, |_| true, |_| config()).expect("open manager")
}

/// Every value of `log` from `from` on, in offset order.
fn read_values(log: &PartitionLog, from: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let read = log.read(next, 4096, None).expect("read");
        if read.records.is_empty() {
            return out;
        }
        for batch in split_batches(&read.records) {
            next = BatchHeader::parse(batch).expect("batch").last_offset() as u64 + 1;
        }
        out.extend(values(&read.records).into_iter().map(|(_, v)| v));
    }
}

fn expected(partition: usize, rounds: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    rounds.map(|round| value(partition, round)).collect()
}

#[test]
fn more_segments_than_the_budget_serve_appends_reads_recovery_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fds_before = open_fds();
    let budget = FileBudget::new(BUDGET);
    let manager = open_manager(dir.path(), &budget);
    let logs: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            manager
                .create(&TopicPartition::new("t", p as i32), config())
                .expect("create")
        })
        .collect();
    // Round robin, so that every append finds its active file closed by the others'.
    for round in 0..ROUNDS {
        for (p, log) in logs.iter().enumerate() {
            let info = log
                .append(&mut single(&value(p, round), round as i64))
                .expect("append");
            assert_eq!(info.base_offset, round as u64);
            if round % 3 == 0 {
                log.await_durability(&info).expect("durable");
            }
        }
    }
    let segments: usize = logs.iter().map(|log| log.segment_count()).sum();
    assert!(segments > 4 * BUDGET, "{segments} segments");
    assert!(budget.open_files() <= BUDGET);
    assert!(budget.files_evicted() > 0);
    // The other test of this file may hold its own budget's files meanwhile.
    assert!(
        open_fds() <= fds_before + 2 * BUDGET + 16,
        "{} descriptors open for {segments} segments",
        open_fds() - fds_before
    );

    // Readers and appenders on several threads while files are evicted under them.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let logs = &logs;
            scope.spawn(move || {
                for (p, log) in logs.iter().enumerate() {
                    // Another thread may have appended one more meanwhile.
                    let read = read_values(log, 0);
                    assert_eq!(read[..ROUNDS], expected(p, 0..ROUNDS));
                    if p % 4 == t {
                        let info = log
                            .append(&mut single(&value(p, ROUNDS), ROUNDS as i64))
                            .expect("append");
                        log.await_durability(&info).expect("durable");
                    }
                }
            });
        }
    });
    for (p, log) in logs.iter().enumerate() {
        assert_eq!(log.flushed_offset(), ROUNDS as u64 + 1);
        assert_eq!(read_values(log, 0), expected(p, 0..ROUNDS + 1));
    }

    // A crash (no close): recovery re-validates every segment after the checkpoint,
    // through a budget as small.
    drop(logs);
    drop(manager);
    let budget = FileBudget::new(BUDGET);
    let manager = open_manager(dir.path(), &budget);
    assert!(!manager.recovered_clean());
    assert!(budget.open_files() <= BUDGET);
    let logs: Vec<_> = manager.logs().into_iter().map(|(_, log)| log).collect();
    assert_eq!(logs.len(), PARTITIONS);
    let partition_of = |log: &PartitionLog| -> usize {
        let name = log
            .dir()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        TopicPartition::parse_dir_name(name).expect("tp").partition as usize
    };
    for log in &logs {
        let p = partition_of(log);
        assert_eq!(read_values(log, 0), expected(p, 0..ROUNDS + 1));
        let info = log
            .append(&mut single(&value(p, ROUNDS + 1), 0))
            .expect("append after recovery");
        assert_eq!(info.base_offset, ROUNDS as u64 + 1);
    }

    // DeleteRecords and retention delete segments whose files may be closed.
    for (i, log) in logs.iter().enumerate() {
        let p = partition_of(log);
        if i % 2 == 0 {
            log.delete_records_before(5).expect("delete records");
            assert_eq!(read_values(log, 5), expected(p, 5..ROUNDS + 2));
        } else {
            log.set_config(LogConfig {
                retention_bytes: Some(1),
                ..config()
            })
            .expect("config");
            let outcome = log.enforce_retention(0).expect("retention");
            assert!(outcome.segments_deleted > 0);
            let start = log.log_start_offset();
            let first = start as usize;
            assert_eq!(read_values(log, start), expected(p, first..ROUNDS + 2));
        }
    }
    manager.close().expect("close");
    drop(logs);
    drop(manager);

    // A clean restart opens no segment file until it is used.
    let budget = FileBudget::new(BUDGET);
    let manager = open_manager(dir.path(), &budget);
    assert!(manager.recovered_clean());
    assert_eq!(budget.files_opened(), 0);
    for (_, log) in manager.logs() {
        let start = log.log_start_offset();
        assert_eq!(
            read_values(&log, start).len() as u64,
            ROUNDS as u64 + 2 - start
        );
    }
}

fn keyed(key: u32, round: u32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0);
    let value = format!("value-{round}-").repeat(10);
    builder.push(
        Some(&key.to_be_bytes()[..]),
        Some(value.as_bytes()),
        i64::from(round),
    );
    builder.finish()
}

/// The latest value of every key, read from the log start.
fn latest_by_key(log: &PartitionLog) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut latest = BTreeMap::new();
    let mut next = log.log_start_offset();
    loop {
        let read = log.read(next, 1 << 16, None).expect("read");
        if read.records.is_empty() {
            return latest;
        }
        for batch in split_batches(&read.records) {
            next = BatchHeader::parse(batch).expect("batch").last_offset() as u64 + 1;
            for record in Records::new(batch, 1 << 20).expect("records").iter() {
                let record = record.expect("record");
                if let (Some(key), Some(value)) = (record.key, record.value) {
                    latest.insert(key.to_vec(), value.to_vec());
                }
            }
        }
    }
}

#[test]
fn compaction_swaps_segments_whose_files_are_evicted_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let budget = FileBudget::new(BUDGET);
    let compacted = LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    };
    let log =
        PartitionLog::open_in(&dir.path().join("c-0"), compacted.clone(), &budget).expect("open");
    let churn: Vec<_> = (0..2 * BUDGET)
        .map(|i| {
            PartitionLog::open_in(&dir.path().join(format!("x-{i}")), config(), &budget)
                .expect("open")
        })
        .collect();
    let mut model = BTreeMap::new();
    for round in 0..40u32 {
        for key in 0..5u32 {
            let mut batch = keyed(key, round);
            log.append(&mut batch).expect("append");
            let value = format!("value-{round}-").repeat(10).into_bytes();
            model.insert(key.to_be_bytes().to_vec(), value);
        }
        // Other logs' appends evict the compacted log's files.
        for (i, other) in churn.iter().enumerate() {
            other
                .append(&mut single(&value(i, round as usize), 0))
                .expect("append");
        }
    }
    log.checkpoint().expect("checkpoint");
    let segments_before = log.segment_count();
    assert!(segments_before > BUDGET);
    let before = log.size_bytes();
    let outcome = log
        .clean(&CleanOptions {
            dedupe_buffer_bytes: 1 << 20,
            io_bytes_per_second_max: None,
            now_ms: 1_000,
            stop_at: None,
        })
        .expect("clean")
        .expect("something to clean");
    assert!(outcome.completed);
    assert!(log.size_bytes() < before);
    assert!(budget.open_files() <= BUDGET);
    assert_eq!(latest_by_key(&log), model);
    drop(log);
    let log = PartitionLog::open_in(&dir.path().join("c-0"), compacted, &budget).expect("reopen");
    assert_eq!(latest_by_key(&log), model);
}
