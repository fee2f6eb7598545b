//! Behaviour of the partition log and the log manager, scenario by scenario.

mod support;

use std::sync::Arc;

use strom_log::{
    BatchHeader, FlushPolicy, LogConfig, LogError, LogManager, PartitionLog, TimestampType,
    TopicPartition,
};
use support::{batch_of, encode, single, split_batches, values, TestRecord};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Incompressible bytes, deterministic per seed.
fn noise(seed: i64, len: usize) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn open(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).expect("open log")
}

#[test]
fn appends_get_consecutive_offsets_and_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let mut first = batch_of(3, 10, 1_000);
    let mut second = batch_of(2, 10, 2_000);
    let a = log.append(&mut first).expect("append");
    let b = log.append(&mut second).expect("append");
    assert_eq!((a.base_offset, a.last_offset, a.record_count), (0, 2, 3));
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    let read = log.read(0, 1 << 20, None).expect("read");
    assert_eq!(
        &read.records[..],
        &[first.clone(), second.clone()].concat()[..]
    );
    assert_eq!((read.log_start_offset, read.log_end_offset), (0, 5));
    // Reading from inside a batch returns the whole batch that holds the offset.
    let middle = log.read(4, 1 << 20, None).expect("read");
    assert_eq!(&middle.records[..], &second[..]);
}

#[test]
fn a_record_set_of_several_batches_is_appended_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let mut set = [batch_of(2, 5, 1), batch_of(4, 5, 2), single(b"x", 3)].concat();
    let info = log.append(&mut set).expect("append");
    assert_eq!(
        (info.base_offset, info.last_offset, info.batch_count),
        (0, 6, 3)
    );
    let offsets: Vec<i64> = values(&log.read(0, 1 << 20, None).expect("read").records)
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(offsets, (0..7).collect::<Vec<_>>());
}

#[test]
fn read_honours_the_byte_budget_but_always_returns_one_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    let big = batch_of(1, 5_000, 1);
    for _ in 0..4 {
        log.append(&mut big.clone()).expect("append");
    }
    let one = log.read(0, 10, None).expect("read");
    assert_eq!(one.records.len(), big.len(), "first batch returned whole");
    let two = log
        .read(0, big.len() * 2 + big.len() / 2, None)
        .expect("read");
    assert_eq!(split_batches(&two.records).len(), 2, "only whole batches");
    let bounded = log.read(0, 1 << 20, Some(2)).expect("read");
    assert_eq!(
        split_batches(&bounded.records).len(),
        2,
        "stops at the end offset"
    );
    assert!(log
        .read(4, 1 << 20, None)
        .expect("read at end")
        .records
        .is_empty());
}

#[test]
fn offsets_outside_the_log_are_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), LogConfig::default());
    log.append(&mut batch_of(5, 1, 1)).expect("append");
    log.delete_records_before(2).expect("delete records");
    for offset in [0, 1, 6, 100] {
        assert!(
            matches!(
                log.read(offset, 100, None),
                Err(LogError::OffsetOutOfRange { .. })
            ),
            "offset {offset}"
        );
    }
    assert!(log.read(2, 100, None).is_ok());
}

#[test]
fn corrupt_and_oversized_batches_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 2_000,
            ..LogConfig::default()
        },
    );
    let mut good = single(b"ok", 1);
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let mut set = [good.clone(), bad].concat();
    let error = log.append(&mut set).expect_err("corrupt");
    assert!(
        matches!(error, LogError::CorruptBatch { position, .. } if position == good.len()),
        "{error}"
    );
    let error = log
        .append(&mut batch_of(1, 3_000, 1))
        .expect_err("too large");
    assert!(
        matches!(error, LogError::RecordSetTooLarge { limit: 2_000, .. }),
        "{error}"
    );
    assert!(matches!(
        log.append(&mut Vec::new()),
        Err(LogError::CorruptBatch { .. })
    ));
    assert!(matches!(
        log.append(&mut good[..30].to_vec()),
        Err(LogError::CorruptBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    log.append(&mut good).expect("a good batch still appends");
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn segments_roll_at_the_size_limit_and_reads_cross_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), small_segments());
    let mut expected = Vec::new();
    for i in 0..40u8 {
        let mut batch = single(&[i; 300], i64::from(i));
        log.append(&mut batch).expect("append");
        expected.push((i64::from(i), vec![i; 300]));
    }
    assert!(log.segment_count() >= 4, "rolled: {}", log.segment_count());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.iter().all(|n| n.len() == 24));
    let mut got = Vec::new();
    let mut next = 0;
    while next < log.log_end_offset() {
        let read = log.read(next, 1000, None).expect("read");
        let batch = values(&read.records);
        next = batch.last().expect("progress").0 as u64 + 1;
        got.extend(batch);
    }
    assert_eq!(got, expected);
}

#[test]
fn the_tail_start_is_a_segment_boundary_near_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), small_segments());
    assert_eq!(log.tail_start_offset(1 << 20), 0, "empty log");
    for i in 0..40u8 {
        let mut batch = single(&[i; 300], i64::from(i));
        log.append(&mut batch).expect("append");
    }
    let segments = log.segment_count();
    assert!(segments >= 4);
    assert_eq!(log.tail_start_offset(u64::MAX), 0, "the whole log");
    let active_only = log.tail_start_offset(1);
    assert!(
        active_only > 0 && active_only < 40,
        "the active segment's base: {active_only}"
    );
    let two = log.tail_start_offset(4096 + 1);
    assert!(two < active_only, "one more segment: {two} < {active_only}");
    log.delete_records_before(39).expect("delete records");
    assert_eq!(
        log.tail_start_offset(u64::MAX),
        39,
        "never below the log start"
    );
}

#[test]
fn segments_roll_when_the_index_is_full_and_when_they_are_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(
        dir.path(),
        LogConfig {
            index_interval_bytes: 1,
            index_bytes_max: 48,
            segment_ms: 1_000,
            ..LogConfig::default()
        },
    );
    for i in 0..7 {
        log.append_at(&mut single(b"v", i), 0).expect("append");
    }
    assert!(log.segment_count() >= 2, "index full rolls");
    let before = log.segment_count();
    log.append_at(&mut single(b"v", 9), 5_000).expect("append");
    assert_eq!(log.segment_count(), before + 1, "age rolls");
}

#[test]
fn timestamp_lookup_finds_the_first_record_at_or_after_across_codecs_and_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), small_segments());
    // Batches of 4 records; timestamps 10 apart, record r of batch b at 1000 + 40b + 10r.
    let codecs = support::CODECS;
    for b in 0..30i64 {
        let records: Vec<TestRecord> = (0..4)
            .map(|r| TestRecord::value(&noise(b * 4 + r, 100), 1_000 + 40 * b + 10 * r))
            .collect();
        log.append(&mut encode(&records, codecs[b as usize % 5]))
            .expect("append");
    }
    assert!(log.segment_count() > 2);
    let cases = [
        (0, Some((0, 1_000))),
        (1_000, Some((0, 1_000))),
        (1_001, Some((1, 1_010))),
        (1_455, Some((46, 1_460))),
        (2_190, Some((119, 2_190))),
        (2_191, None),
    ];
    for (timestamp, expected) in cases {
        let found = log.offset_for_timestamp(timestamp).expect("lookup");
        assert_eq!(found, expected, "timestamp {timestamp}");
    }
    assert_eq!(log.max_timestamp().expect("max"), Some((119, 2_190)));
}

#[test]
fn timestamp_lookup_handles_out_of_order_timestamps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), small_segments());
    for ts in [500, 100, 900, 300, 700] {
        log.append(&mut single(&[0; 200], ts)).expect("append");
    }
    assert_eq!(
        log.offset_for_timestamp(200).expect("lookup"),
        Some((0, 500))
    );
    assert_eq!(
        log.offset_for_timestamp(600).expect("lookup"),
        Some((2, 900))
    );
    assert_eq!(log.max_timestamp().expect("max"), Some((2, 900)));
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(
        dir.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        },
    );
    let info = log.append_at(&mut batch_of(2, 3, 5), 777).expect("append");
    assert_eq!(info.log_append_time_ms, Some(777));
    let read = log.read(0, 1 << 20, None).expect("read");
    let header = BatchHeader::parse(&read.records).expect("valid after restamp");
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp, 777);
    assert_eq!(
        log.offset_for_timestamp(700).expect("lookup"),
        Some((0, 777))
    );
}

#[test]
fn retention_by_bytes_and_time_deletes_old_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: None,
        retention_bytes: Some(8_000),
        ..small_segments()
    };
    let log = open(dir.path(), config.clone());
    for i in 0..60 {
        log.append(&mut single(&[1; 300], i)).expect("append");
    }
    let before = log.size_bytes();
    let outcome = log.enforce_retention(0).expect("retention");
    assert!(outcome.segments_deleted > 0);
    assert_eq!(log.size_bytes(), before - outcome.bytes_deleted);
    assert!(log.size_bytes() <= 8_000 + 4_096);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(matches!(
        log.read(start - 1, 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(start, 100, None).is_ok());

    log.set_config(LogConfig {
        retention_ms: Some(1_000),
        retention_bytes: None,
        ..config
    })
    .expect("config");
    let outcome = log.enforce_retention(1_000_000).expect("retention");
    assert!(outcome.segments_deleted > 0);
    assert_eq!(log.segment_count(), 1, "only the active segment is left");
    assert!(log.log_end_offset() == 60 && log.log_start_offset() <= 60);
}

#[test]
fn delete_records_advances_the_log_start_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = open(dir.path(), small_segments());
        for i in 0..40 {
            log.append(&mut single(&[1; 300], i)).expect("append");
        }
        let segments = log.segment_count();
        assert_eq!(log.delete_records_before(25).expect("delete"), 25);
        assert!(
            log.segment_count() < segments,
            "whole segments below the start are deleted"
        );
        assert!(matches!(
            log.delete_records_before(41),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.delete_records_before(10).expect("no-op"), 25);
    }
    let log = open(dir.path(), small_segments());
    assert_eq!(log.log_start_offset(), 25);
    assert_eq!(
        values(&log.read(25, 400, None).expect("read").records)[0].0,
        25
    );
}

#[test]
fn truncation_cuts_at_a_batch_boundary_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = open(dir.path(), small_segments());
        for i in 0..30 {
            log.append(&mut batch_of(2, 200, i)).expect("append");
        }
        // Offset 21 is inside the batch [20, 21]: that batch goes too.
        assert_eq!(log.truncate_to(21).expect("truncate"), 20);
        assert_eq!(log.log_end_offset(), 20);
        let info = log
            .append(&mut batch_of(1, 10, 99))
            .expect("append after truncate");
        assert_eq!(info.base_offset, 20);
    }
    let log = open(dir.path(), small_segments());
    assert_eq!(log.log_end_offset(), 21);
    let all: Vec<i64> = {
        let mut out = Vec::new();
        let mut next = 0;
        while next < 21 {
            let got = values(&log.read(next, 1 << 20, None).expect("read").records);
            next = got.last().expect("progress").0 as u64 + 1;
            out.extend(got.into_iter().map(|(o, _)| o));
        }
        out
    };
    assert_eq!(all, (0..21).collect::<Vec<_>>());
    assert_eq!(log.truncate_to(0).expect("truncate all"), 0);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn a_closed_log_reopens_with_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = {
        let log = open(dir.path(), small_segments());
        for i in 0..50 {
            log.append(&mut single(&[i as u8; 250], i)).expect("append");
        }
        let state = (
            log.log_end_offset(),
            log.size_bytes(),
            log.segment_count(),
            log.max_timestamp().expect("max"),
            log.offset_for_timestamp(17).expect("lookup"),
        );
        log.close().expect("close");
        state
    };
    let log = open(dir.path(), small_segments());
    let state = (
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_count(),
        log.max_timestamp().expect("max"),
        log.offset_for_timestamp(17).expect("lookup"),
    );
    assert_eq!(state, expected);
    assert_eq!(log.flushed_offset(), 50);
    assert_eq!(
        log.append(&mut single(b"next", 1))
            .expect("append")
            .base_offset,
        50
    );
}

#[test]
fn concurrent_appenders_share_syncs_and_all_become_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(open(dir.path(), LogConfig::default()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut offsets = Vec::new();
                for i in 0..50 {
                    let info = log.append(&mut single(&[t; 64], i)).expect("append");
                    log.await_durability(&info).expect("durable");
                    assert!(log.flushed_offset() > info.last_offset);
                    offsets.push(info.base_offset);
                }
                offsets
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..400).collect::<Vec<_>>());
    assert_eq!(log.flushed_offset(), 400);
}

#[test]
fn interval_and_os_policies_do_not_wait_but_interval_flushes_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(
        dir.path(),
        LogConfig {
            flush_policy: FlushPolicy::Interval(std::time::Duration::from_millis(1)),
            ..LogConfig::default()
        },
    );
    let info = log.append(&mut single(b"a", 1)).expect("append");
    log.await_durability(&info).expect("no wait");
    assert_eq!(log.flushed_offset(), 0);
    std::thread::sleep(std::time::Duration::from_millis(2));
    log.flush_if_due(std::time::Instant::now()).expect("flush");
    assert_eq!(log.flushed_offset(), 1);
}

#[test]
fn the_manager_creates_lists_deletes_and_reopens_logs_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tp = |p| TopicPartition::new("orders-eu", p);
    {
        let manager = LogManager::open(dir.path(), |_| LogConfig::default()).expect("open");
        assert!(!manager.recovered_clean());
        for p in 0..3 {
            let log = manager
                .create(&tp(p), LogConfig::default())
                .expect("create");
            log.append(&mut batch_of(p as usize + 1, 10, 1))
                .expect("append");
        }
        assert!(matches!(
            manager.create(&tp(0), LogConfig::default()),
            Err(LogError::Partition { .. })
        ));
        assert!(manager
            .create(&TopicPartition::new("bad/name", 0), LogConfig::default())
            .is_err());
        manager.delete(&tp(2)).expect("delete");
        assert!(!dir.path().join("orders-eu-2").exists());
        manager.close().expect("close");
    }
    let manager = LogManager::open(dir.path(), |_| LogConfig::default()).expect("reopen");
    assert!(manager.recovered_clean());
    let logs = manager.logs();
    assert_eq!(
        logs.iter().map(|(tp, _)| tp.clone()).collect::<Vec<_>>(),
        vec![tp(0), tp(1)]
    );
    assert_eq!(manager.get(&tp(1)).expect("log").log_end_offset(), 2);
    drop(manager);
    let manager = LogManager::open(dir.path(), |_| LogConfig::default()).expect("reopen");
    assert!(!manager.recovered_clean(), "no close, no clean marker");
}

#[test]
fn background_maintenance_flushes_checkpoints_and_enforces_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manager = Arc::new(LogManager::open(dir.path(), |_| LogConfig::default()).expect("open"));
    let config = LogConfig {
        flush_policy: FlushPolicy::Interval(std::time::Duration::from_millis(5)),
        retention_ms: Some(1),
        ..small_segments()
    };
    let log = manager
        .create(&TopicPartition::new("t", 0), config)
        .expect("create");
    for i in 0..30 {
        log.append(&mut single(&[0; 300], i)).expect("append");
    }
    let maintenance = manager.spawn_maintenance(strom_log::MaintenanceConfig {
        tick: std::time::Duration::from_millis(1),
        checkpoint_interval: std::time::Duration::from_millis(1),
        retention_check_interval: std::time::Duration::from_millis(1),
    });
    // Wait (bounded) for the background thread to do its work; no timing assertion.
    for _ in 0..5_000 {
        if log.segment_count() == 1 && log.flushed_offset() == 30 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    maintenance.stop();
    assert_eq!(log.flushed_offset(), 30);
    assert_eq!(log.segment_count(), 1);
    assert!(log.log_start_offset() > 0);
}

#[test]
fn the_high_watermark_is_the_flushed_offset_under_always_and_the_log_end_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let always = PartitionLog::open(
        &dir.path().join("always"),
        LogConfig {
            flush_policy: FlushPolicy::Always,
            ..LogConfig::default()
        },
    )
    .expect("open");
    let info = always.append(&mut single(b"durable", 0)).expect("append");
    always.await_durability(&info).expect("flush");
    let info = always.append(&mut single(b"not yet", 0)).expect("append");
    assert_eq!(always.log_end_offset(), 2);
    assert_eq!(
        always.high_watermark(),
        1,
        "the unflushed record is not visible"
    );
    let visible = always
        .read(0, 1 << 20, Some(always.high_watermark()))
        .expect("read");
    assert_eq!(values(&visible.records), vec![(0, b"durable".to_vec())]);
    always.await_durability(&info).expect("flush");
    assert_eq!(always.high_watermark(), 2);

    let os = PartitionLog::open(
        &dir.path().join("os"),
        LogConfig {
            flush_policy: FlushPolicy::Os,
            ..LogConfig::default()
        },
    )
    .expect("open");
    os.append(&mut single(b"page cache", 0)).expect("append");
    assert_eq!(os.high_watermark(), 1, "as in Kafka: the log end");
}

/// Every record of a record set as kafka-protocol's decoder (not ours) reads it.
fn decoded_by_kafka_protocol(bytes: &[u8]) -> Vec<kafka_protocol::records::Record> {
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    let mut records = Vec::new();
    while !buf.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode_with_custom_compression(
            &mut buf,
            Some(|payload: &mut bytes::Bytes, codec| {
                Ok(bytes::Bytes::from(support::decompress(codec, payload)))
            }),
        )
        .expect("kafka-protocol decodes the stored batch");
        records.extend(set.records);
    }
    records
}

#[test]
fn a_compression_type_topic_stores_every_batch_in_its_codec_and_keeps_the_records() {
    use strom_log::{Compression, CompressionType};
    let records: Vec<TestRecord> = (0..20)
        .map(|i| TestRecord {
            key: (i % 3 != 0).then(|| format!("key-{i}").into_bytes()),
            value: (i % 7 != 0).then(|| format!("value {i} value {i} value {i}").into_bytes()),
            timestamp: 1_700_000_000_000 + i * 10 - (i % 4) * 25,
            headers: vec![(format!("h{i}"), (i % 2 == 0).then(|| vec![i as u8]))],
        })
        .collect();
    let topic_types = [
        CompressionType::Producer,
        CompressionType::Codec(Compression::None),
        CompressionType::Codec(Compression::Gzip),
        CompressionType::Codec(Compression::Snappy),
        CompressionType::Codec(Compression::Lz4),
        CompressionType::Codec(Compression::Zstd),
    ];
    for topic_type in topic_types {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(
            dir.path(),
            LogConfig {
                compression_type: topic_type,
                ..LogConfig::default()
            },
        );
        for producer_codec in support::CODECS {
            // Two batches in one record set: the log must convert each one.
            let mut sent = encode(&records[..8], producer_codec);
            sent.extend(encode(&records[8..], producer_codec));
            let expected = decoded_by_kafka_protocol(&sent);
            let converted = log.conform_compression(&sent).expect("conform");
            let sent_codec = BatchHeader::parse(&sent).expect("valid").compression();
            let stored_codec = match topic_type {
                CompressionType::Producer => sent_codec,
                CompressionType::Codec(codec) => codec,
            };
            assert_eq!(
                converted.is_none(),
                stored_codec == sent_codec,
                "{topic_type}: a matching batch is stored untouched, others converted"
            );
            let mut to_append = converted.unwrap_or_else(|| sent.clone());
            let info = log.append(&mut to_append).expect("append");
            let read = log
                .read(info.base_offset, 1 << 20, None)
                .expect("read back");
            let stored = &read.records[..];
            for batch in support::split_batches(stored) {
                let header = BatchHeader::parse(batch).expect("stored batch has a valid CRC");
                assert_eq!(header.compression(), stored_codec, "{topic_type}");
            }
            let got = decoded_by_kafka_protocol(stored);
            assert_eq!(got.len(), expected.len());
            for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(got.offset, info.base_offset as i64 + i as i64);
                assert_eq!(
                    (&got.key, &got.value, &got.headers, got.timestamp),
                    (&want.key, &want.value, &want.headers, want.timestamp),
                    "{topic_type} from {producer_codec:?}"
                );
            }
        }
    }
}

#[test]
fn create_time_records_outside_the_timestamp_bounds_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_700_000_000_000;
    let log = open(
        dir.path(),
        LogConfig {
            timestamp_before_max_ms: Some(60_000),
            timestamp_after_max_ms: Some(1_000),
            ..LogConfig::default()
        },
    );
    let at = |timestamps: &[i64]| {
        let records: Vec<TestRecord> = timestamps
            .iter()
            .map(|t| TestRecord::value(b"v", *t))
            .collect();
        encode(&records, kafka_protocol::records::Compression::Lz4)
    };
    assert!(log
        .append_at(&mut at(&[now - 60_000, now + 1_000]), now)
        .is_ok());
    for bad in [[now, now + 1_001], [now - 60_001, now]] {
        let refused = log.append_at(&mut at(&bad), now);
        assert!(
            matches!(refused, Err(LogError::TimestampOutOfRange { timestamp_ms, .. }) if bad.contains(&timestamp_ms) && timestamp_ms != now),
            "{refused:?}"
        );
    }
    assert_eq!(log.log_end_offset(), 2, "only the first batch was written");
    // LogAppendTime topics stamp their own clock: producers' timestamps do not matter.
    log.set_config(LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        timestamp_before_max_ms: Some(60_000),
        timestamp_after_max_ms: Some(1_000),
        ..LogConfig::default()
    })
    .expect("config");
    assert!(log.append_at(&mut at(&[0]), now).is_ok());
}
