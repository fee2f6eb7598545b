//! Crash injection through the test driver: random inputs, commits, aborts and crashes
//! (before a commit, between the transaction's commit and the stores' apply, in the
//! middle of a restore, with the state wiped) against a model replayed from the input.
//! Every input must count exactly once in the stores, and each key's committed output
//! must be the sequence 1, 2, …, n with no gap and no repeat.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use strom_streams::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Pipe(u8),
    Commit,
    Abort,
    Crash(CrashPoint),
    Wipe,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..6).prop_map(Op::Pipe),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Crash(CrashPoint::BeforeCommit)),
        2 => Just(Op::Crash(CrashPoint::AfterCommitBeforeApply)),
        2 => (0usize..6).prop_map(|records| Op::Crash(CrashPoint::DuringRestore { records })),
        1 => Just(Op::Wipe),
    ]
}

/// Counts per key, through a repartition topic (the key is the value's first word).
fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .group_by(|_, v| v.clone(), StringSerde, StringSerde)
        .count("counts")
        .to("out", StringSerde, I64Serde);
    b.build().unwrap()
}

fn run(ops: &[Op]) {
    let config = DriverConfig {
        auto_commit: false,
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&topology(), config).unwrap();
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    let mut outputs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Pipe(k) => {
                let key = format!("k{k}");
                d.pipe(
                    "in",
                    &StringSerde,
                    &StringSerde,
                    &format!("in{i}"),
                    &key,
                    i as i64,
                )
                .unwrap();
                *model.entry(key).or_default() += 1;
            }
            Op::Commit => d.commit().unwrap(),
            Op::Abort => d.abort().unwrap(),
            Op::Crash(at) => {
                d.crash(*at).unwrap();
            }
            Op::Wipe => {
                d.restart(true).unwrap();
            }
        }
        for r in d.read_output("out", &StringSerde, &I64Serde).unwrap() {
            outputs.entry(r.key).or_default().push(r.value);
        }
    }
    // Drain: commit until the repartition topic is consumed.
    for _ in 0..3 {
        d.commit().unwrap();
    }
    for r in d.read_output("out", &StringSerde, &I64Serde).unwrap() {
        outputs.entry(r.key).or_default().push(r.value);
    }
    let store = StoreHandle::new("counts", StringSerde, I64Serde);
    let got: BTreeMap<String, i64> = d.store_all(&store).unwrap().into_iter().collect();
    assert_eq!(got, model, "store vs model");
    for (k, n) in &model {
        let want: Vec<i64> = (1..=*n).collect();
        assert_eq!(outputs.get(k), Some(&want), "committed outputs of {k}");
    }
    assert_eq!(outputs.len(), model.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_input_counts_exactly_once_across_crashes(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}

#[test]
fn a_crash_between_commit_and_apply_restores_exactly_the_last_commit() {
    let config = DriverConfig {
        auto_commit: false,
        ..DriverConfig::default()
    };
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .count("counts")
        .to("out", StringSerde, I64Serde);
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap();
    for k in ["a", "b", "a"] {
        d.pipe(
            "in",
            &StringSerde,
            &StringSerde,
            &k.to_string(),
            &"x".to_string(),
            1,
        )
        .unwrap();
    }
    d.commit().unwrap(); // changelog: a=2, b=1
    for k in ["c", "a", "d"] {
        d.pipe(
            "in",
            &StringSerde,
            &StringSerde,
            &k.to_string(),
            &"x".to_string(),
            2,
        )
        .unwrap();
    }
    // The transaction commits (changelog: c=1, a=3, d=1) but the store never applies it.
    let report = d.crash(CrashPoint::AfterCommitBeforeApply).unwrap();
    assert_eq!(report.records_restored.get("counts"), Some(&3));
    // Again, and this time the restore itself crashes after 1 of 3 records: the next
    // restore resumes at the second.
    for k in ["e", "f", "a"] {
        d.pipe(
            "in",
            &StringSerde,
            &StringSerde,
            &k.to_string(),
            &"x".to_string(),
            3,
        )
        .unwrap();
    }
    let report = d.crash(CrashPoint::DuringRestore { records: 1 }).unwrap();
    assert_eq!(report.records_restored.get("counts"), Some(&2));
    let store = StoreHandle::new("counts", StringSerde, I64Serde);
    let want: Vec<(String, i64)> = [("a", 4), ("b", 1), ("c", 1), ("d", 1), ("e", 1), ("f", 1)]
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
    assert_eq!(d.store_all(&store).unwrap(), want);
}
