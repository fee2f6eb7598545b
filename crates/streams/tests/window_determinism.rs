//! Determinism: for a given input order, the committed outputs of windows, sessions, a
//! join and deduplication — dead-letter routing and window closing included — are
//! byte-identical whether or not the run was interrupted by aborts and crashes (and
//! replayed from the committed offsets and changelogs).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use strom_streams::prelude::*;

const TOPICS: [&str; 5] = ["hop", "sess", "joined", "unique", "dlq"];

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    let left = b.stream("in", StringSerde, I64Serde);
    let right = b.stream("in2", StringSerde, I64Serde);
    let g = left.group_by_key(StringSerde, I64Serde);
    g.windowed_by(TimeWindows::of_size(10).advance_by(5).grace(3))
        .retain_for_queries(7)
        .count("hop")
        .to("hop", WindowedSerde(StringSerde), I64Serde);
    g.windowed_by_session(SessionWindows::with_inactivity_gap(4).grace(2))
        .emit(Emit::OnUpdateEvery { interval_ms: 3 })
        .count("sess")
        .to("sess", WindowedSerde(StringSerde), I64Serde);
    left.left_join(
        &right,
        |a, b| a * 1000 + b.copied().unwrap_or(-1),
        JoinWindows::of_time_difference(3).grace(2),
        StreamJoined::with("j", StringSerde, I64Serde, I64Serde),
    )
    .to("joined", StringSerde, I64Serde);
    right
        .dedupe_by(
            "seen",
            6,
            |_, v: &i64| v % 5,
            I64Serde,
            StringSerde,
            I64Serde,
        )
        .to("unique", StringSerde, I64Serde);
    b.build().unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// (second input?, key, value, timestamp)
    Pipe(bool, u8, i64, i64),
    Commit,
    Abort,
    Crash(CrashPoint),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        10 => (any::<bool>(), 0u8..3, 0i64..20, 0i64..60).prop_map(|(r, k, v, t)| Op::Pipe(r, k, v, t)),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Crash(CrashPoint::BeforeCommit)),
        1 => Just(Op::Crash(CrashPoint::AfterCommitBeforeApply)),
        1 => (0usize..5).prop_map(|records| Op::Crash(CrashPoint::DuringRestore { records })),
    ];
    prop::collection::vec(op, 1..80)
}

/// Runs the inputs (with or without the interruptions) and returns the committed log of
/// every output topic.
fn committed(ops: &[Op], interrupt: bool) -> Vec<Vec<OutputRecord>> {
    let config = DriverConfig {
        auto_commit: false,
        processing_errors: ErrorHandler::DeadLetter {
            topic: "dlq".into(),
        },
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&topology(), config).unwrap();
    for op in ops {
        match op {
            Op::Pipe(right, k, v, t) => {
                let topic = if *right { "in2" } else { "in" };
                d.pipe(topic, &StringSerde, &I64Serde, &format!("k{k}"), v, *t)
                    .unwrap();
            }
            Op::Commit => d.commit().unwrap(),
            Op::Abort if interrupt => d.abort().unwrap(),
            Op::Crash(at) if interrupt => {
                d.crash(*at).unwrap();
            }
            Op::Abort | Op::Crash(_) => {}
        }
    }
    d.commit().unwrap();
    TOPICS.iter().map(|t| d.topic_log(t).to_vec()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn outputs_are_identical_after_aborts_and_crashes(ops in ops()) {
        prop_assert_eq!(committed(&ops, true), committed(&ops, false));
    }
}
