//! Benchmarks of the storage engine on a real disk.
//!
//! - `append_os`: appends of 16 KiB and 1 MiB batches of 1 KiB records under
//!   `FlushPolicy::Os` (no syncs: this measures validation + the page cache).
//! - `append_always`: the same batches under `FlushPolicy::Always`, each append
//!   followed by `await_durability`, with 1 appender and with 8 appender threads
//!   sharing one log (group commit).
//! - `read`: a sequential scan of a 256 MiB log with `read(offset, 1 MiB, None)`,
//!   every returned batch parsed (and CRC-checked) with `BatchHeader::parse`. The log
//!   was just written, so this reads from the page cache.
//! - `recovery`: `PartitionLog::open` of a ~1 GiB log of 16 KiB batches in 64 MiB
//!   segments, left by a drop without `close` (what a SIGKILL leaves), with no
//!   checkpoint at all and with a checkpoint 64 MiB before the end (throughput =
//!   bytes re-validated); `recovery_checkpointed`: the same log checkpointed at its
//!   end. The checkpoint file is put back before every open, since open writes one.
//!
//! - `clean`: one cleaning of a 256 MiB compacted log (64 MiB segments, 16 KiB
//!   batches of 100-byte values over 100,000 keys, so each key has ~20 values):
//!   throughput = bytes of the log cleaned per second. Each sample cleans a fresh
//!   copy of the dirty log (the copy is not timed). `clean/append_while_cleaning`:
//!   16 KiB appends to another log (flush `os`) while a thread cleans copies of the
//!   dirty log in a loop, at the cleaner thread's lowered priority — compare with
//!   `append_os/1_appender/16KiB` (the aim: ≤ 10 % slower).
//!
//! Batches are encoded once with `kafka-protocol`. `append` patches the base offset
//! in place and re-appending the same bytes is valid, so every append reuses one
//! buffer per appender: no copy is part of any measurement.
//!
//! Data goes to `target/bench-tmp` (override with `STROM_BENCH_DIR`), not `/tmp`,
//! which may be a tmpfs. Each append sample writes a fresh log and deletes it
//! afterwards; the disk holds at most ~2 GiB at once. Logs to read or recover are
//! built on first use, so filtered runs (`cargo bench -p strom-log -- recovery`) skip
//! the others' setup. Compare with `bench/disk.sh`.

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_log::{BatchHeader, CleanOptions, CleanupPolicy, FlushPolicy, LogConfig, PartitionLog};
use tempfile::TempDir;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Value size of every record.
const RECORD_VALUE_BYTES: usize = KIB;
/// Batch size limits: Kafka's default producer `batch.size` and `max.message.bytes`.
const BATCH_SIZES: [(usize, &str); 2] = [(16 * KIB, "16KiB"), (MIB, "1MiB")];
/// Concurrent appenders in the group-commit benchmark.
const APPENDERS: usize = 8;
/// Size of the log the read benchmark scans.
const READ_LOG_BYTES: u64 = 256 * MIB as u64;
/// Size of the log the recovery benchmark opens, and its segment size.
const RECOVERY_LOG_BYTES: u64 = 1024 * MIB as u64;
const RECOVERY_SEGMENT_BYTES: u64 = 64 * MIB as u64;
/// Bytes appended after the checkpoint in the partial-recovery case.
const RECOVERY_TAIL_BYTES: u64 = 64 * MIB as u64;
/// The partition's checkpoint file (private to strom-log; see `checkpoint.rs`).
const CHECKPOINT_FILE: &str = "recovery-point";

/// Where benchmark logs live: a real disk, not a tmpfs.
fn bench_root() -> PathBuf {
    std::env::var_os("STROM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-tmp"))
}

fn temp_dir(prefix: &str) -> TempDir {
    let root = bench_root();
    std::fs::create_dir_all(&root).expect("create bench directory");
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&root)
        .expect("create temp dir")
}

fn config(flush_policy: FlushPolicy) -> LogConfig {
    LogConfig {
        flush_policy,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// One uncompressed v2 batch of `count` records with 1 KiB pseudo-random values.
fn encode_batch(count: usize) -> Vec<u8> {
    let timestamp = strom_log::now_ms();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let value: Vec<u8> = (0..RECORD_VALUE_BYTES)
                .map(|_| {
                    // xorshift64: incompressible enough, deterministic.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // offset - sequence must be constant in a batch; keeps base sequence -1.
                sequence: i as i32 - 1,
                timestamp,
                key: None,
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options)
        .expect("kafka-protocol encodes the batch");
    buf.to_vec()
}

/// The largest batch of 1 KiB records that is at most `limit` bytes, as a producer
/// with `batch.size = limit` would send.
fn batch_up_to(limit: usize) -> Vec<u8> {
    let mut count = (limit / (RECORD_VALUE_BYTES + 16)).max(1);
    let mut batch = encode_batch(count);
    loop {
        let bigger = encode_batch(count + 1);
        if bigger.len() > limit {
            break;
        }
        count += 1;
        batch = bigger;
    }
    assert!(
        batch.len() <= limit,
        "one record does not fit in {limit} bytes"
    );
    BatchHeader::parse(&batch).expect("kafka-protocol's batch parses");
    batch
}

/// Bytes [`fill`] appends to add at least `bytes` to a log (of whole batches).
fn filled_size(batch_bytes: usize, bytes: u64) -> u64 {
    bytes.div_ceil(batch_bytes as u64) * batch_bytes as u64
}

/// Appends `batch` until the log holds at least `bytes`.
fn fill(log: &PartitionLog, batch: &mut [u8], bytes: u64) {
    while log.size_bytes() < bytes {
        log.append(batch).expect("append");
    }
}

fn append_os(c: &mut Criterion, batches: &[(Vec<u8>, &str)]) {
    let mut group = c.benchmark_group("append_os");
    group.sampling_mode(SamplingMode::Flat);
    for (batch, label) in batches {
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::new("1_appender", label), |b| {
            b.iter_custom(|iters| {
                let dir = temp_dir("append-os");
                let log = PartitionLog::open(dir.path(), config(FlushPolicy::Os)).expect("open");
                let mut batch = batch.clone();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(log.append(&mut batch).expect("append"));
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn append_always(c: &mut Criterion, batches: &[(Vec<u8>, &str)]) {
    let mut group = c.benchmark_group("append_always");
    group.sampling_mode(SamplingMode::Flat);
    for (batch, label) in batches {
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::new("1_appender", label), |b| {
            b.iter_custom(|iters| {
                let dir = temp_dir("append-always");
                let log =
                    PartitionLog::open(dir.path(), config(FlushPolicy::Always)).expect("open");
                let mut batch = batch.clone();
                let start = Instant::now();
                for _ in 0..iters {
                    let info = log.append(&mut batch).expect("append");
                    log.await_durability(&info).expect("sync");
                }
                start.elapsed()
            })
        });

        // One iteration = one durable append by each of the appenders.
        group.throughput(Throughput::Bytes((APPENDERS * batch.len()) as u64));
        group.bench_function(
            BenchmarkId::new(format!("{APPENDERS}_appenders"), label),
            |b| {
                b.iter_custom(|iters| {
                    let dir = temp_dir("append-group");
                    // Shared by reference: the scoped threads cannot outlive it.
                    let log =
                        PartitionLog::open(dir.path(), config(FlushPolicy::Always)).expect("open");
                    let ready = Barrier::new(APPENDERS + 1);
                    std::thread::scope(|scope| {
                        for _ in 0..APPENDERS {
                            let (log, ready, mut batch) = (&log, &ready, batch.clone());
                            scope.spawn(move || {
                                ready.wait();
                                for _ in 0..iters {
                                    let info = log.append(&mut batch).expect("append");
                                    log.await_durability(&info).expect("sync");
                                }
                            });
                        }
                        ready.wait();
                        let start = Instant::now();
                        // Leaving the scope joins every appender.
                        start
                    })
                    .elapsed()
                })
            },
        );
    }
    group.finish();
}

/// Reads the whole log from offset 0 in 1 MiB reads; returns the bytes read.
fn read_all(log: &PartitionLog, end_offset: u64) -> u64 {
    let mut offset = 0;
    let mut total = 0;
    while offset < end_offset {
        let read = log.read(offset, MIB, None).expect("read");
        let records = &read.records[..];
        let mut at = 0;
        let mut last = None;
        while at < records.len() {
            let header = BatchHeader::parse(&records[at..]).expect("valid batch");
            last = Some(header.last_offset());
            at += header.size_bytes();
        }
        offset = last.expect("a read below the log end returns a batch") as u64 + 1;
        total += records.len() as u64;
    }
    total
}

fn read(c: &mut Criterion, batches: &[(Vec<u8>, &str)]) {
    let mut group = c.benchmark_group("read");
    group.sampling_mode(SamplingMode::Flat);
    for (batch, label) in batches {
        // Filled on first use, so that a filtered run skips it.
        let filled = OnceCell::new();
        group.throughput(Throughput::Bytes(filled_size(batch.len(), READ_LOG_BYTES)));
        group.bench_function(BenchmarkId::new("sequential_1MiB_reads", label), |b| {
            let (_dir, log, end) = filled.get_or_init(|| {
                let dir = temp_dir("read");
                let log = PartitionLog::open(dir.path(), config(FlushPolicy::Os)).expect("open");
                fill(&log, &mut batch.clone(), READ_LOG_BYTES);
                log.flush().expect("flush");
                let end = log.log_end_offset();
                assert_eq!(read_all(&log, end), log.size_bytes());
                (dir, log, end)
            });
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(read_all(log, *end));
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// The partition's checkpoint file as it is now (`None` when absent).
fn save_checkpoint(dir: &Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join(CHECKPOINT_FILE)).ok()
}

/// Puts back a checkpoint saved by [`save_checkpoint`] (the open being measured
/// writes a new one after recovering).
fn restore_checkpoint(dir: &Path, saved: &Option<Vec<u8>>) {
    let path = dir.join(CHECKPOINT_FILE);
    match saved {
        Some(bytes) => std::fs::write(&path, bytes).expect("restore checkpoint"),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("remove checkpoint: {e}"),
            _ => {}
        },
    }
}

/// Times `PartitionLog::open` of `dir`, restoring `checkpoint` before each open.
fn time_opens(
    iters: u64,
    dir: &Path,
    log_config: &LogConfig,
    checkpoint: &Option<Vec<u8>>,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        restore_checkpoint(dir, checkpoint);
        let start = Instant::now();
        let log = PartitionLog::open(dir, log_config.clone()).expect("open");
        total += start.elapsed();
        // Dropped without close, as before.
        drop(black_box(log));
    }
    total
}

/// A log left by an unclean stop, with the checkpoint files it had at three moments
/// (in the order of [`RECOVERY_CASES`]).
struct RecoveryLog {
    dir: TempDir,
    checkpoints: [Option<Vec<u8>>; 3],
}

/// The recovery cases, by the checkpoint restored before each open: none at all
/// (everything is re-validated), at `RECOVERY_LOG_BYTES` (the tail after it is
/// re-validated), at the log end (nothing is).
const RECOVERY_CASES: [&str; 3] = [
    "no_checkpoint",
    "tail_since_checkpoint",
    "checkpoint_at_end",
];

/// Writes `RECOVERY_LOG_BYTES` without a checkpoint, reopens (which recovers and
/// checkpoints), appends `RECOVERY_TAIL_BYTES` more and reopens once more. Every
/// stop is a drop without `close`; data is flushed before each (the OS would have
/// written it back by then), checkpoints are not.
fn recovery_log(batch: &[u8], log_config: &LogConfig) -> RecoveryLog {
    let dir = temp_dir("recovery");
    let mut batch = batch.to_vec();
    let log = PartitionLog::open(dir.path(), log_config.clone()).expect("open");
    fill(&log, &mut batch, RECOVERY_LOG_BYTES);
    log.flush().expect("flush");
    drop(log);
    let none = save_checkpoint(dir.path());

    let log = PartitionLog::open(dir.path(), log_config.clone()).expect("open");
    let before = log.size_bytes();
    fill(&log, &mut batch, before + RECOVERY_TAIL_BYTES);
    log.flush().expect("flush");
    drop(log);
    let before_tail = save_checkpoint(dir.path());

    drop(PartitionLog::open(dir.path(), log_config.clone()).expect("open"));
    let at_end = save_checkpoint(dir.path());
    assert!(none.is_none() && before_tail.is_some() && at_end.is_some() && before_tail != at_end);
    RecoveryLog {
        dir,
        checkpoints: [none, before_tail, at_end],
    }
}

fn recovery(c: &mut Criterion, batch: &[u8], label: &str) {
    let log_config = LogConfig {
        segment_bytes_max: RECOVERY_SEGMENT_BYTES,
        ..config(FlushPolicy::Os)
    };
    let head = filled_size(batch.len(), RECOVERY_LOG_BYTES);
    let tail = filled_size(batch.len(), RECOVERY_TAIL_BYTES);
    let mib = |bytes: u64| format!("{}MiB", bytes / MIB as u64);
    let built = OnceCell::new();
    let get = || built.get_or_init(|| recovery_log(batch, &log_config));
    let revalidated = [head + tail, tail, 0];

    let mut group = c.benchmark_group("recovery");
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(5));
    for (case, (name, revalidated)) in RECOVERY_CASES.into_iter().zip(revalidated).enumerate() {
        if revalidated > 0 {
            // Throughput = bytes re-validated.
            group.throughput(Throughput::Bytes(revalidated));
        } else {
            // Throughput cannot be unset in a group: report this one on its own.
            group.finish();
            group = c.benchmark_group("recovery_checkpointed");
            group.sampling_mode(SamplingMode::Flat);
        }
        let id = format!("{name}/{}_log/{label}_batches", mib(head + tail));
        group.bench_function(id, |b| {
            let log = get();
            let checkpoint = &log.checkpoints[case];
            b.iter_custom(|iters| time_opens(iters, log.dir.path(), &log_config, checkpoint))
        });
    }
    group.finish();
}

/// Size of the compacted log the cleaner benchmark cleans, its segments, its keys.
const CLEAN_LOG_BYTES: u64 = 256 * MIB as u64;
const CLEAN_SEGMENT_BYTES: u64 = 64 * MIB as u64;
const CLEAN_KEYS: usize = 100_000;
const CLEAN_VALUE_BYTES: usize = 100;

fn compacted_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: CLEAN_SEGMENT_BYTES,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        ..config(FlushPolicy::Os)
    }
}

/// A 16 KiB batch of keyed 100-byte values, keys `key-<n>` from `first_key` on.
fn keyed_batch(first_key: usize) -> (Vec<u8>, usize) {
    let timestamp = strom_log::now_ms();
    let mut records = Vec::new();
    let mut size = 0;
    let mut key = first_key;
    while size < 16 * KIB - 200 {
        let k = format!("key-{}", key % CLEAN_KEYS);
        size += k.len() + CLEAN_VALUE_BYTES + 10;
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: records.len() as i64,
            sequence: records.len() as i32 - 1,
            timestamp,
            key: Some(Bytes::from(k)),
            value: Some(Bytes::from(vec![(key % 251) as u8; CLEAN_VALUE_BYTES])),
            headers: Default::default(),
        });
        key += 7919; // a prime stride spreads keys over batches
    }
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
    (buf.to_vec(), key)
}

/// Writes the dirty compacted log once; samples clean copies of it.
fn dirty_log() -> TempDir {
    let dir = temp_dir("clean-template");
    let log = PartitionLog::open(dir.path(), compacted_config()).expect("open");
    let mut next_key = 0;
    while log.size_bytes() < CLEAN_LOG_BYTES {
        let (mut batch, next) = keyed_batch(next_key);
        next_key = next;
        log.append(&mut batch).expect("append");
    }
    log.close().expect("close");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn clean_options() -> CleanOptions {
    CleanOptions {
        dedupe_buffer_bytes: 128 * MIB,
        io_bytes_per_second_max: None,
        now_ms: strom_log::now_ms(),
        stop_at: None,
    }
}

/// Opens a fresh copy of the dirty log and cleans it: the time of the cleaning.
fn clean_copy(template: &Path, scratch: &Path) -> Duration {
    let _ = std::fs::remove_dir_all(scratch);
    copy_dir(template, scratch);
    let log = PartitionLog::open(scratch, compacted_config()).expect("open copy");
    let start = Instant::now();
    let outcome = log
        .clean(&clean_options())
        .expect("clean")
        .expect("cleaned");
    let elapsed = start.elapsed();
    black_box(outcome);
    elapsed
}

fn clean(c: &mut Criterion, append_batch: &[u8]) {
    let template = OnceCell::new();
    let get = || template.get_or_init(dirty_log);
    let mut group = c.benchmark_group("clean");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(CLEAN_LOG_BYTES));
    let scratch = temp_dir("clean-copy");
    let reported = std::sync::Once::new();
    group.bench_function("256MiB_log/100k_keys", |b| {
        let template = get();
        reported.call_once(|| {
            // Report what one cleaning reads, writes and removes.
            copy_dir(template.path(), scratch.path());
            let log = PartitionLog::open(scratch.path(), compacted_config()).expect("open");
            let outcome = log
                .clean(&clean_options())
                .expect("clean")
                .expect("cleaned");
            eprintln!(
                "one cleaning: read {} MiB, wrote {} MiB, removed {} records, kept {}",
                outcome.stats.bytes_read / MIB as u64,
                outcome.stats.bytes_written / MIB as u64,
                outcome.stats.records_removed,
                outcome.stats.records_kept
            );
        });
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| clean_copy(template.path(), scratch.path()))
                .sum()
        })
    });
    group.throughput(Throughput::Bytes(64 * MIB as u64));
    group.bench_function("append_while_cleaning/16KiB", |b| {
        let template = get().path().to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cleaner = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                strom_log::cleaner::lower_thread_priority();
                let scratch = temp_dir("clean-busy");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    clean_copy(&template, scratch.path());
                }
            })
        };
        let mut batch = append_batch.to_vec();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = temp_dir("append-busy");
                let log = PartitionLog::open(dir.path(), config(FlushPolicy::Os)).expect("open");
                let start = Instant::now();
                fill(&log, &mut batch, 64 * MIB as u64);
                total += start.elapsed();
            }
            total
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = cleaner.join();
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let batches: Vec<(Vec<u8>, &str)> = BATCH_SIZES
        .iter()
        .map(|&(limit, label)| (batch_up_to(limit), label))
        .collect();
    for (batch, label) in &batches {
        let records = BatchHeader::parse(batch).expect("valid").record_count;
        eprintln!(
            "batch {label}: {} bytes, {records} records of {RECORD_VALUE_BYTES} B",
            batch.len()
        );
    }
    append_os(c, &batches);
    append_always(c, &batches);
    read(c, &batches);
    recovery(c, &batches[0].0, batches[0].1);
    clean(c, &batches[0].0);
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
