//! The in-process runner against the test driver: the same topology on the same input
//! gives the same outputs (in the same order with one thread and one partition; per key
//! with several), through repartition topics, windows and event-time extractors.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use strom_streams::inprocess::{InProcessConfig, InProcessRunner};
use strom_streams::prelude::*;

/// Values 0..n with keys `k0`..`k{keys-1}` and timestamps `base + i * step`.
fn input(n: i64, keys: i64) -> Vec<(String, i64)> {
    (0..n)
        .map(|i| (format!("k{}", (i * 7) % keys), i))
        .collect()
}

/// A word-count-like topology: re-keyed, counted (through a repartition topic), and a
/// stateless branch beside it.
fn count_topology() -> Topology {
    let b = StreamsBuilder::new();
    let s = b.stream("in", Nullable(StringSerde), I64Serde);
    s.filter(|_, v| v % 3 == 0)
        .map_values(|v| v * 10)
        .to("tens", Nullable(StringSerde), I64Serde);
    s.group_by(|_, v: &i64| format!("g{}", v % 5), StringSerde, I64Serde)
        .count("counts")
        .to("counts-out", StringSerde, I64Serde);
    b.build().unwrap()
}

/// The driver's outputs for `records` piped with null keys.
fn driver_outputs(topology: &Topology, records: &[(String, i64)]) -> Vec<OutputRecord> {
    let mut d = TopologyTestDriver::new(topology).unwrap();
    for (_, v) in records {
        d.pipe("in", &Nullable(StringSerde), &I64Serde, &None, v, *v)
            .unwrap();
    }
    let mut out = d.read_raw("tens");
    out.extend(d.read_raw("counts-out"));
    out
}

fn run(
    topology: &Topology,
    records: &[(String, i64)],
    threads: usize,
    partitions: usize,
) -> Vec<OutputRecord> {
    let config = InProcessConfig {
        threads,
        partitions: Some(partitions),
        capture_outputs: true,
        batch_records: 7,
        ..InProcessConfig::default()
    };
    let runner = InProcessRunner::new(topology, config).unwrap();
    let report = runner
        .run("in", |p| {
            records
                .iter()
                .enumerate()
                .filter(move |(i, _)| i % partitions == p)
                .map(|(_, (_, v))| Record::new(None::<String>, *v, *v))
        })
        .unwrap();
    assert_eq!(report.input_records, records.len() as u64);
    assert_eq!(report.output_records, report.outputs.len() as u64);
    report.outputs
}

/// Outputs grouped by topic and key, in their order within each key.
/// Values per (topic, key).
type PerKey = BTreeMap<(String, Option<Vec<u8>>), Vec<Vec<u8>>>;

fn per_key(outputs: &[OutputRecord]) -> PerKey {
    let mut m: BTreeMap<_, Vec<Vec<u8>>> = BTreeMap::new();
    for o in outputs {
        m.entry((o.topic.clone(), o.key.clone()))
            .or_default()
            .push(o.value.clone().unwrap_or_default());
    }
    m
}

#[test]
fn one_thread_one_partition_gives_the_drivers_outputs_per_topic_in_order() {
    let topology = count_topology();
    let records = input(500, 13);
    let want = driver_outputs(&topology, &records);
    let got = run(&topology, &records, 1, 1);
    let by_topic = |v: &[OutputRecord], t: &str| -> Vec<OutputRecord> {
        v.iter().filter(|o| o.topic == t).cloned().collect()
    };
    assert_eq!(by_topic(&got, "tens"), by_topic(&want, "tens"));
    assert_eq!(by_topic(&got, "counts-out"), by_topic(&want, "counts-out"));
    assert_eq!(got.len(), want.len());
}

#[test]
fn several_threads_and_partitions_give_every_keys_outputs_in_order() {
    let topology = count_topology();
    let records = input(2000, 13);
    let want = per_key(&driver_outputs(&topology, &records));
    for (threads, partitions) in [(2, 2), (2, 5), (3, 4)] {
        let got = run(&topology, &records, threads, partitions);
        let got = per_key(&got);
        // Counts per key are 1, 2, …, n whatever the interleaving: each key has one task.
        let counts = |m: &PerKey| {
            m.iter()
                .filter(|((t, _), _)| t == "counts-out")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&got), counts(&want), "{threads} threads");
        let tens = |m: &PerKey| {
            let mut v: Vec<Vec<u8>> = m
                .iter()
                .filter(|((t, _), _)| t == "tens")
                .flat_map(|(_, v)| v.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(tens(&got), tens(&want), "{threads} threads");
    }
}

#[test]
fn event_time_from_the_extractor_closes_windows_as_in_the_driver() {
    // The value carries its event time; the record timestamp given is unusable (-1), so
    // a run that skipped the extractor would fail.
    let b = StreamsBuilder::new();
    b.stream_with_timestamps("in", Nullable(StringSerde), I64Serde, |_, v: &i64, _| {
        Some(*v * 100)
    })
    .group_by(|_, v: &i64| v % 4, I64Serde, I64Serde)
    .windowed_by(TimeWindows::of_size(1_000))
    .count("windows")
    .to("out", WindowedSerde(I64Serde), I64Serde);
    let topology = b.build().unwrap();
    let values: Vec<i64> = (0..300).collect();

    let mut d = TopologyTestDriver::new(&topology).unwrap();
    for v in &values {
        d.pipe("in", &Nullable(StringSerde), &I64Serde, &None, v, -1)
            .unwrap();
    }
    let want = d.read_raw("out");
    assert!(!want.is_empty());

    let config = InProcessConfig {
        capture_outputs: true,
        ..InProcessConfig::default()
    };
    let report = InProcessRunner::new(&topology, config)
        .unwrap()
        .run("in", |_| {
            values.iter().map(|v| Record::new(None::<String>, *v, -1))
        })
        .unwrap();
    assert_eq!(report.outputs, want);
    assert!(report.internal_records >= values.len() as u64);
    assert!(report.commits >= 2, "one per task at the end at least");
}

#[test]
fn without_capture_outputs_are_counted_not_kept() {
    let topology = count_topology();
    let records = input(100, 3);
    let runner = InProcessRunner::new(&topology, InProcessConfig::default()).unwrap();
    let report = runner
        .run("in", |_| {
            records
                .iter()
                .map(|(_, v)| Record::new(None::<String>, *v, *v))
        })
        .unwrap();
    assert_eq!(
        report.output_records,
        driver_outputs(&topology, &records).len() as u64
    );
    assert!(report.outputs.is_empty());
    assert!(report.batch_latency_p99 <= report.batch_latency_max);
}

#[test]
fn a_wrongly_typed_input_fails_the_run_clearly() {
    let topology = count_topology();
    let err = InProcessRunner::new(&topology, InProcessConfig::default())
        .unwrap()
        .run("in", |_| {
            (0..3).map(|v: i32| Record::new(None::<String>, v, 0))
        })
        .unwrap_err();
    assert!(err.to_string().contains("unexpected type"), "{err}");
    let err = InProcessRunner::new(&topology, InProcessConfig::default())
        .unwrap()
        .run("nope", |_| {
            (0..3i64).map(|v| Record::new(None::<String>, v, 0))
        })
        .unwrap_err();
    assert!(err.to_string().contains("no source reads nope"), "{err}");
}
