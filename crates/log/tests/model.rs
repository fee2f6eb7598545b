//! Property test: the log against a model where a `Vec` of batches is the log.
//! Random appends (rolling small segments), reads by offset and by timestamp,
//! retention, DeleteRecords, truncation and reopening (clean or not) must agree.

mod support;

use proptest::prelude::*;
use strom_log::{BatchHeader, LogConfig, LogError, PartitionLog};
use support::{encode, split_batches, TestRecord, CODECS};

#[derive(Debug, Clone)]
enum Op {
    Append {
        timestamps: Vec<i64>,
        value_bytes: usize,
        codec: usize,
    },
    Read {
        at: u16,
        max_bytes: usize,
    },
    FindTimestamp {
        timestamp: i64,
    },
    RetainBytes {
        limit: u64,
    },
    DeleteRecords {
        at: u16,
    },
    Truncate {
        at: u16,
    },
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec(0i64..1_000, 1..6), 1usize..350, 0usize..5)
            .prop_map(|(timestamps, value_bytes, codec)| Op::Append { timestamps, value_bytes, codec }),
        3 => (any::<u16>(), 1usize..5_000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => (-10i64..1_100).prop_map(|timestamp| Op::FindTimestamp { timestamp }),
        1 => (0u64..20_000).prop_map(|limit| Op::RetainBytes { limit }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// One batch of the model: its offsets, record timestamps and stored bytes.
#[derive(Debug, Clone)]
struct ModelBatch {
    base: u64,
    timestamps: Vec<i64>,
    bytes: Vec<u8>,
}

impl ModelBatch {
    fn last(&self) -> u64 {
        self.base + self.timestamps.len() as u64 - 1
    }
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    start: u64,
    end: u64,
}

impl Model {
    /// Picks an offset in `[start - 1, end + 1]` from a random number.
    fn pick(&self, at: u16) -> u64 {
        let span = self.end - self.start + 3;
        (self.start + u64::from(at) % span).saturating_sub(1)
    }

    fn drop_below_start(&mut self) {
        let start = self.start;
        self.batches.retain(|b| b.last() >= start);
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 2_048,
        index_interval_bytes: 128,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn check_reads_everywhere(log: &PartitionLog, model: &Model) {
    for batch in &model.batches {
        for offset in [batch.base.max(model.start), batch.last()] {
            let read = log.read(offset, 1, None).expect("read in range");
            assert_eq!(read.records, batch.bytes, "read at {offset}");
        }
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Some(PartitionLog::open(dir.path(), config()).expect("open"));
    let mut model = Model::default();
    for op in ops {
        let current = log.as_ref().expect("open log");
        match op {
            Op::Append {
                timestamps,
                value_bytes,
                codec,
            } => {
                let records: Vec<TestRecord> = timestamps
                    .iter()
                    .map(|&ts| TestRecord::value(&vec![ts as u8; value_bytes], ts))
                    .collect();
                let mut bytes = encode(&records, CODECS[codec]);
                let info = current.append(&mut bytes).expect("append");
                assert_eq!(info.base_offset, model.end);
                assert_eq!(info.last_offset, model.end + timestamps.len() as u64 - 1);
                model.batches.push(ModelBatch {
                    base: model.end,
                    timestamps,
                    bytes,
                });
                model.end = info.last_offset + 1;
            }
            Op::Read { at, max_bytes } => {
                let offset = model.pick(at);
                let result = current.read(offset, max_bytes, None);
                if offset < model.start || offset > model.end {
                    assert!(
                        matches!(result, Err(LogError::OffsetOutOfRange { .. })),
                        "read {offset}"
                    );
                    continue;
                }
                let read = result.expect("read in range");
                assert_eq!(
                    (read.log_start_offset, read.log_end_offset),
                    (model.start, model.end)
                );
                let expected: Vec<&ModelBatch> = model
                    .batches
                    .iter()
                    .filter(|b| b.last() >= offset)
                    .collect();
                let got = split_batches(&read.records);
                assert_eq!(got.is_empty(), expected.is_empty(), "progress at {offset}");
                assert!(got.len() <= expected.len());
                for (got, want) in got.iter().zip(&expected) {
                    assert_eq!(*got, &want.bytes[..]);
                }
                if got.len() > 1 {
                    assert!(read.records.len() <= max_bytes, "budget");
                }
            }
            Op::FindTimestamp { timestamp } => {
                let expected = model
                    .batches
                    .iter()
                    .flat_map(|b| {
                        b.timestamps
                            .iter()
                            .enumerate()
                            .map(move |(i, &ts)| (b.base + i as u64, ts))
                    })
                    .find(|&(offset, ts)| offset >= model.start && ts >= timestamp);
                assert_eq!(
                    current.offset_for_timestamp(timestamp).expect("lookup"),
                    expected,
                    "ts {timestamp}"
                );
            }
            Op::RetainBytes { limit } => {
                let size = current.size_bytes();
                current
                    .set_config(LogConfig {
                        retention_bytes: Some(limit),
                        ..config()
                    })
                    .expect("config");
                let outcome = current.enforce_retention(0).expect("retention");
                assert_eq!(current.size_bytes(), size - outcome.bytes_deleted);
                current.set_config(config()).expect("config");
                let start = current.log_start_offset();
                assert!(start >= model.start && start <= model.end);
                assert!(
                    start == model.start
                        || model.batches.iter().any(|b| b.base == start)
                        || start == model.end,
                    "retention moves the start to a batch boundary"
                );
                model.start = start;
                model.drop_below_start();
            }
            Op::DeleteRecords { at } => {
                let offset = model.pick(at);
                let result = current.delete_records_before(offset);
                if offset > model.end {
                    assert!(result.is_err());
                } else {
                    model.start = model.start.max(offset);
                    assert_eq!(result.expect("delete records"), model.start);
                    model.drop_below_start();
                }
            }
            Op::Truncate { at } => {
                let offset = model.pick(at);
                let new_end = current.truncate_to(offset).expect("truncate");
                if offset < model.start {
                    model.batches.clear();
                    model.start = offset;
                    model.end = offset;
                } else if offset < model.end {
                    let cut = model
                        .batches
                        .iter()
                        .position(|b| b.last() >= offset)
                        .expect("batch");
                    // The whole batch holding the offset goes; the start never
                    // exceeds the end.
                    model.end = model.batches[cut].base;
                    model.batches.truncate(cut);
                }
                assert_eq!(new_end, model.end);
                model.start = model.start.min(model.end);
            }
            Op::Reopen { clean } => {
                let old = log.take().expect("open log");
                if clean {
                    old.close().expect("close");
                }
                drop(old);
                let reopened = PartitionLog::open(dir.path(), config()).expect("reopen");
                assert_eq!(reopened.log_end_offset(), model.end);
                // DeleteRecords inside the first segment is durable; retention's start
                // is the first segment's base, also recovered.
                assert_eq!(reopened.log_start_offset(), model.start);
                check_reads_everywhere(&reopened, &model);
                log = Some(reopened);
            }
        }
        let current = log.as_ref().expect("open log");
        assert_eq!(current.log_end_offset(), model.end);
        assert_eq!(current.log_start_offset(), model.start);
    }
    let current = log.as_ref().expect("open log");
    check_reads_everywhere(current, &model);
    // Headers read back agree with the model's offsets.
    for batch in &model.batches {
        let header = BatchHeader::parse(&batch.bytes).expect("valid");
        assert_eq!(header.base_offset as u64, batch.base);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_a_vec_of_batches(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
