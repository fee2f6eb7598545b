//! A short tour of the storage engine on a real data directory.
//!
//! ```text
//! cargo run --release -p strom-log --example demo -- ./data [records]
//! ```
//!
//! Opens (and, after a crash, recovers) every log in the directory, appends
//! `records` 1 KiB records to `demo-0` in 16 KiB batches, each acknowledged only once
//! it is fdatasync'd (`flush = always`, as `acks=all` will be), reads everything back,
//! closes cleanly and prints what it did. Run it twice to see the log persist; kill it
//! with `kill -9` mid-run and run it again to see recovery.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use strom_log::{BatchHeader, LogConfig, LogManager, MaintenanceConfig, TopicPartition};

/// Records per batch: 16 records of 1 KiB make a 16 KiB batch.
const RECORDS_PER_BATCH: usize = 16;
const RECORD_BYTES: usize = 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(args.next().unwrap_or_else(|| "./data".into()));
    let records: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);

    let started = Instant::now();
    let manager = Arc::new(LogManager::open(&data_dir, |_| LogConfig::default())?);
    println!(
        "opened {} in {:.1} ms ({} shutdown, {} partition logs)",
        data_dir.display(),
        started.elapsed().as_secs_f64() * 1e3,
        if manager.recovered_clean() {
            "clean"
        } else {
            "unclean or first"
        },
        manager.logs().len()
    );
    let maintenance = manager.spawn_maintenance(MaintenanceConfig::default());
    let tp = TopicPartition::new("demo", 0);
    let log = match manager.get(&tp) {
        Some(log) => log,
        None => manager.create(&tp, LogConfig::default())?,
    };
    let start_offset = log.log_end_offset();

    let template = demo_batch();
    let batches = records.div_ceil(RECORDS_PER_BATCH);
    let started = Instant::now();
    for _ in 0..batches {
        let mut batch = template.clone();
        let info = log.append(&mut batch)?;
        log.await_durability(&info)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = (batches * template.len()) as f64;
    println!(
        "appended {} records ({:.1} MiB) durably in {:.2} s: {:.1} MiB/s, {:.0} batches/s",
        batches * RECORDS_PER_BATCH,
        bytes / (1 << 20) as f64,
        elapsed,
        bytes / (1 << 20) as f64 / elapsed,
        batches as f64 / elapsed
    );

    let started = Instant::now();
    let (mut offset, mut read_bytes) = (log.log_start_offset(), 0usize);
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20, None)?;
        let mut at = 0;
        while at < read.records.len() {
            let header = BatchHeader::parse(&read.records[at..])?;
            offset = header.last_offset() as u64 + 1;
            at += header.size_bytes();
        }
        read_bytes += read.records.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "read back {:.1} MiB (offsets {}..{}) in {:.2} s: {:.1} MiB/s",
        read_bytes as f64 / (1 << 20) as f64,
        log.log_start_offset(),
        log.log_end_offset(),
        elapsed,
        read_bytes as f64 / (1 << 20) as f64 / elapsed
    );
    println!(
        "this run wrote offsets {start_offset}..{}; log start {}, flushed {}, {} segment(s), {:.1} MiB on disk",
        log.log_end_offset(),
        log.log_start_offset(),
        log.flushed_offset(),
        log.segment_count(),
        log.size_bytes() as f64 / (1 << 20) as f64
    );
    maintenance.stop();
    manager.close()?;
    println!("closed cleanly");
    Ok(())
}

/// One uncompressed v2 batch of `RECORDS_PER_BATCH` records with 1 KiB values.
fn demo_batch() -> Vec<u8> {
    let now = strom_log::now_ms();
    let mut records = Vec::new();
    for i in 0..RECORDS_PER_BATCH {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, RECORD_BYTES as i64);
        body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, RECORD_BYTES));
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut batch = Vec::with_capacity(61 + records.len());
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset (assigned by the log)
    batch.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&[0; 4]); // crc, filled below
    batch.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression
    batch.extend_from_slice(&((RECORDS_PER_BATCH - 1) as i32).to_be_bytes());
    batch.extend_from_slice(&now.to_be_bytes()); // base timestamp
    batch.extend_from_slice(&now.to_be_bytes()); // max timestamp
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&(RECORDS_PER_BATCH as i32).to_be_bytes());
    batch.extend_from_slice(&records);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Zig-zag varint, as Kafka records encode lengths and deltas.
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
