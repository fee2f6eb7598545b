//! Golden tests of windowed aggregations through the test driver: every window kind,
//! both emission modes, grace, out-of-order and late input, session merges.
#![allow(clippy::unwrap_used)]

use strom_streams::prelude::*;
use strom_streams::window::aggregations;

const DLQ: &str = "dlq";

fn driver(b: &StreamsBuilder) -> TopologyTestDriver {
    let config = DriverConfig {
        processing_errors: ErrorHandler::DeadLetter { topic: DLQ.into() },
        ..DriverConfig::default()
    };
    TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap()
}

fn pipe(d: &mut TopologyTestDriver, key: &str, value: i64, ts: i64) {
    d.pipe("in", &StringSerde, &I64Serde, &key.to_string(), &value, ts)
        .unwrap();
}

/// (key, start, end, value) of each windowed output; `None` is a retraction.
type Out<V> = Vec<(String, i64, i64, Option<V>)>;

fn read<V: 'static>(d: &mut TopologyTestDriver, serde: impl Serde<V>) -> Out<V> {
    d.read_output("out", &WindowedSerde(StringSerde), &Nullable(serde))
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.key.key,
                r.key.window.start_ms,
                r.key.window.end_ms,
                r.value,
            )
        })
        .collect()
}

fn header(r: &OutputRecord, name: &str) -> String {
    let v = r.headers.iter().find(|(k, _)| k == name).unwrap();
    String::from_utf8(v.1.clone().unwrap()).unwrap()
}

fn counts(
    windows: impl FnOnce(KGroupedStream<String, i64>) -> KTable<Windowed<String>, i64>,
) -> StreamsBuilder {
    let b = StreamsBuilder::new();
    let grouped = b
        .stream("in", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde);
    windows(grouped).to("out", WindowedSerde(StringSerde), I64Serde);
    b
}

fn some(k: &str, s: i64, e: i64, v: i64) -> (String, i64, i64, Option<i64>) {
    (k.to_string(), s, e, Some(v))
}

#[test]
fn tumbling_count_emits_once_when_the_window_closes_and_sends_late_records_to_the_dlq() {
    let b = counts(|g| g.windowed_by(TimeWindows::of_size(10)).count("c"));
    let mut d = driver(&b);
    pipe(&mut d, "a", 0, 1);
    pipe(&mut d, "a", 0, 7);
    pipe(&mut d, "b", 0, 3);
    assert_eq!(read(&mut d, I64Serde), vec![]);
    // Stream time 10 closes [0, 10): one final result per key, in key order.
    pipe(&mut d, "a", 0, 10);
    assert_eq!(
        read(&mut d, I64Serde),
        vec![some("a", 0, 10, 2), some("b", 0, 10, 1)]
    );
    // Too late for [0, 10), which is closed: to the DLQ with the window and lateness.
    pipe(&mut d, "b", 42, 9);
    assert_eq!(read(&mut d, I64Serde), vec![]);
    let dlq = d.read_raw(DLQ);
    assert_eq!(dlq.len(), 1);
    assert_eq!(header(&dlq[0], "strom.error.kind"), "late");
    assert_eq!(header(&dlq[0], "strom.window.start"), "0");
    assert_eq!(header(&dlq[0], "strom.window.end"), "10");
    assert_eq!(header(&dlq[0], "strom.stream.time"), "10");
    assert_eq!(header(&dlq[0], "strom.lateness.ms"), "0");
    assert_eq!(header(&dlq[0], "strom.original.topic"), "in");
    assert_eq!(dlq[0].value, Some(42i64.to_be_bytes().to_vec()));
    pipe(&mut d, "a", 0, 25);
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 10, 20, 1)]);
}

#[test]
fn grace_keeps_a_window_open_for_out_of_order_records() {
    let b = counts(|g| g.windowed_by(TimeWindows::of_size(10).grace(5)).count("c"));
    let mut d = driver(&b);
    pipe(&mut d, "a", 0, 2);
    pipe(&mut d, "a", 0, 12);
    pipe(&mut d, "a", 0, 8); // out of order, within grace
    pipe(&mut d, "a", 0, 14);
    assert_eq!(read(&mut d, I64Serde), vec![]);
    pipe(&mut d, "a", 0, 15); // closes [0, 10) at 10 + 5
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 10, 2)]);
    pipe(&mut d, "a", 0, 9); // now late
    assert_eq!(d.read_raw(DLQ).len(), 1);
}

#[test]
fn hopping_windows_count_each_record_in_every_window_that_holds_it() {
    let b = counts(|g| {
        g.windowed_by(TimeWindows::of_size(10).advance_by(5))
            .count("c")
    });
    let mut d = driver(&b);
    pipe(&mut d, "a", 0, 3);
    pipe(&mut d, "a", 0, 7);
    pipe(&mut d, "a", 0, 12);
    pipe(&mut d, "a", 0, 30);
    assert_eq!(
        read(&mut d, I64Serde),
        vec![
            some("a", -5, 5, 1),
            some("a", 0, 10, 2),
            some("a", 5, 15, 2),
            some("a", 10, 20, 1),
        ]
    );
}

#[test]
fn on_update_emits_every_change_and_nothing_at_close() {
    let b = counts(|g| {
        g.windowed_by(TimeWindows::of_size(10))
            .emit(Emit::OnUpdate)
            .count("c")
    });
    let mut d = driver(&b);
    pipe(&mut d, "a", 0, 1);
    pipe(&mut d, "a", 0, 2);
    pipe(&mut d, "a", 0, 11);
    pipe(&mut d, "a", 0, 25);
    assert_eq!(
        read(&mut d, I64Serde),
        vec![
            some("a", 0, 10, 1),
            some("a", 0, 10, 2),
            some("a", 10, 20, 1),
            some("a", 20, 30, 1),
        ]
    );
}

#[test]
fn sliding_windows_are_defined_by_the_records() {
    // Kafka Streams' example shape: difference 10.
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde)
        .windowed_by_sliding(SlidingWindows::with_time_difference(10))
        .aggregate_with("s", aggregations::collect())
        .to(
            "out",
            WindowedSerde(StringSerde),
            JsonSerde::<Vec<i64>>::new(),
        );
    let mut d = driver(&b);
    pipe(&mut d, "a", 1, 8);
    pipe(&mut d, "a", 2, 14);
    pipe(&mut d, "a", 3, 25);
    pipe(&mut d, "a", 4, 100);
    let out = read(&mut d, JsonSerde::<Vec<i64>>::new());
    let w = |s: i64, e: i64, v: Vec<i64>| ("a".to_string(), s, e, Some(v));
    // Left windows [t-10, t] of each record, right windows [t+1, t+11] that hold records.
    assert_eq!(
        out,
        vec![
            w(-2, 9, vec![1]),
            w(4, 15, vec![1, 2]),
            w(9, 20, vec![2]),
            w(15, 26, vec![3]),
        ]
    );
}

#[test]
fn sliding_windows_take_out_of_order_records_within_grace() {
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde)
        .windowed_by_sliding(SlidingWindows::with_time_difference(5).grace(20))
        .aggregate_with("s", aggregations::collect())
        .to(
            "out",
            WindowedSerde(StringSerde),
            JsonSerde::<Vec<i64>>::new(),
        );
    let mut d = driver(&b);
    pipe(&mut d, "a", 1, 10);
    pipe(&mut d, "a", 2, 7); // out of order: joins [5, 10], starts [2, 7] and [8, 13]
    pipe(&mut d, "a", 3, 100);
    let mut out = read(&mut d, JsonSerde::<Vec<i64>>::new());
    out.sort_by_key(|o| (o.1, o.2));
    let w = |s: i64, e: i64, v: Vec<i64>| ("a".to_string(), s, e, Some(v));
    assert_eq!(
        out,
        vec![w(2, 8, vec![2]), w(5, 11, vec![1, 2]), w(8, 14, vec![1])]
    );
}

#[test]
fn sessions_merge_when_a_record_bridges_them_and_retract_the_replaced_ones() {
    let b = counts(|g| {
        g.windowed_by_session(SessionWindows::with_inactivity_gap(5).grace(10))
            .emit(Emit::OnUpdate)
            .count("sess")
    });
    let mut d = driver(&b);
    pipe(&mut d, "a", 0, 0);
    pipe(&mut d, "a", 0, 10);
    pipe(&mut d, "a", 0, 5); // within 5 of both (and of stream time - grace): one session
    let none = |s: i64, e: i64| ("a".to_string(), s, e, None);
    assert_eq!(
        read(&mut d, I64Serde),
        vec![
            some("a", 0, 1, 1),
            some("a", 10, 11, 1),
            none(0, 1),
            none(10, 11),
            some("a", 0, 11, 3),
        ]
    );
}

#[test]
fn sessions_emit_final_results_after_gap_and_grace() {
    let b = counts(|g| {
        g.windowed_by_session(SessionWindows::with_inactivity_gap(5).grace(2))
            .count("sess")
    });
    let mut d = driver(&b);
    for t in [0, 3, 6] {
        pipe(&mut d, "a", 0, t);
    }
    pipe(&mut d, "b", 0, 13); // [0, 7) closes at 7 + 5 + 2 = 14
    assert_eq!(read(&mut d, I64Serde), vec![]);
    pipe(&mut d, "b", 0, 14);
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 7, 3)]);
    pipe(&mut d, "a", 0, 11); // older than stream time - grace: late
    assert_eq!(d.read_raw(DLQ).len(), 1);
    pipe(&mut d, "b", 0, 40);
    assert_eq!(read(&mut d, I64Serde), vec![some("b", 13, 15, 2)]);
}

#[test]
fn session_aggregates_use_the_merge_function() {
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde)
        .windowed_by_session(SessionWindows::with_inactivity_gap(5).grace(5))
        .aggregate("sum", || 0i64, |a, v| a + v, |a, b| a + b, I64Serde)
        .to("out", WindowedSerde(StringSerde), I64Serde);
    let mut d = driver(&b);
    pipe(&mut d, "a", 1, 0);
    pipe(&mut d, "a", 10, 10);
    pipe(&mut d, "a", 100, 5);
    pipe(&mut d, "a", 0, 100);
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 11, 111)]);
}

#[test]
fn ready_made_aggregations_over_tumbling_windows() {
    let b = StreamsBuilder::new();
    let w = b
        .stream("in", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde)
        .windowed_by(TimeWindows::of_size(10));
    let ws = || WindowedSerde(StringSerde);
    w.aggregate_with("sum", aggregations::sum(|v: &i64| *v as f64))
        .to("sum", ws(), F64Serde);
    w.aggregate_with("min", aggregations::min(|v: &i64| *v as f64))
        .to("min", ws(), F64Serde);
    w.aggregate_with("max", aggregations::max(|v: &i64| *v as f64))
        .to("max", ws(), F64Serde);
    w.aggregate_with("avg", aggregations::average(|v: &i64| *v as f64))
        .to("avg", ws(), F64Serde);
    w.aggregate_with("top", aggregations::top_n(2, |v: &i64| *v as f64))
        .to("top", ws(), JsonSerde::<Vec<i64>>::new());
    w.reduce("red", |a, b| a * b).to("red", ws(), I64Serde);
    let mut d = driver(&b);
    for (v, t) in [(4, 1), (1, 2), (7, 3)] {
        pipe(&mut d, "a", v, t);
    }
    pipe(&mut d, "z", 0, 10);
    let one = |d: &mut TopologyTestDriver, topic: &str| -> f64 {
        let out = d
            .read_output(topic, &WindowedSerde(StringSerde), &F64Serde)
            .unwrap();
        assert_eq!(out.len(), 1, "{topic}");
        out[0].value
    };
    assert_eq!(one(&mut d, "sum"), 12.0);
    assert_eq!(one(&mut d, "min"), 1.0);
    assert_eq!(one(&mut d, "max"), 7.0);
    assert_eq!(one(&mut d, "avg"), 4.0);
    let top = d
        .read_output(
            "top",
            &WindowedSerde(StringSerde),
            &JsonSerde::<Vec<i64>>::new(),
        )
        .unwrap();
    assert_eq!(top[0].value, vec![7, 4]);
    let red = d
        .read_output("red", &WindowedSerde(StringSerde), &I64Serde)
        .unwrap();
    assert_eq!(red[0].value, 28);
}

#[test]
fn records_without_a_usable_timestamp_go_to_the_dlq() {
    let b = counts(|g| g.windowed_by(TimeWindows::of_size(10)).count("c"));
    let config = DriverConfig {
        deserialization_errors: ErrorHandler::DeadLetter { topic: DLQ.into() },
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap();
    pipe(&mut d, "a", 0, -1);
    let dlq = d.read_raw(DLQ);
    assert_eq!(dlq.len(), 1);
    assert_eq!(header(&dlq[0], "strom.error.kind"), "timestamp");
}

#[test]
fn a_restart_replays_to_the_same_final_windows() {
    let b = counts(|g| g.windowed_by(TimeWindows::of_size(10).grace(3)).count("c"));
    let topology = b.build().unwrap();
    let mut d = TopologyTestDriver::new(&topology).unwrap();
    for t in [1, 4, 12] {
        pipe(&mut d, "a", 0, t);
    }
    d.restart(false).unwrap();
    pipe(&mut d, "a", 0, 13); // closes [0, 10) right after the restart
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 10, 2)]);
}

#[test]
fn an_extractor_takes_event_time_from_the_value_and_refuses_records_without_one() {
    let b = StreamsBuilder::new();
    b.stream_with_timestamps("in", StringSerde, I64Serde, |_, v: &i64, _| {
        (*v >= 0).then_some(*v)
    })
    .group_by_key(StringSerde, I64Serde)
    .windowed_by(TimeWindows::of_size(10))
    .count("c")
    .to("out", WindowedSerde(StringSerde), I64Serde);
    let config = DriverConfig {
        deserialization_errors: ErrorHandler::DeadLetter { topic: DLQ.into() },
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap();
    // Record timestamps are ignored: the value is the event time.
    pipe(&mut d, "a", 3, 1_000);
    pipe(&mut d, "a", 5, 0);
    pipe(&mut d, "a", -7, 0);
    pipe(&mut d, "a", 12, 0);
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 10, 2)]);
    let dlq = d.read_raw(DLQ);
    assert_eq!(dlq.len(), 1);
    assert_eq!(header(&dlq[0], "strom.error.kind"), "timestamp");
}

#[test]
fn processing_time_windows_follow_the_wall_clock() {
    let b = StreamsBuilder::new();
    b.stream_processing_time("in", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde)
        .windowed_by(TimeWindows::of_size(100))
        .count("c")
        .to("out", WindowedSerde(StringSerde), I64Serde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    pipe(&mut d, "a", 0, 999_999); // event time is ignored
    d.advance_wall_clock(50).unwrap();
    pipe(&mut d, "a", 0, 1);
    d.advance_wall_clock(100).unwrap();
    pipe(&mut d, "a", 0, 1); // at wall clock 150: closes [0, 100)
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 100, 2)]);
}

#[test]
fn opt_in_wall_clock_stream_time_closes_windows_of_quiet_partitions() {
    let b = counts(|g| g.windowed_by(TimeWindows::of_size(10)).count("c"));
    let config = DriverConfig {
        stream_time_wall_clock_lag_ms: Some(5),
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap();
    pipe(&mut d, "a", 0, 3);
    d.advance_wall_clock(14).unwrap(); // stream time 14 - 5 = 9: still open
    assert_eq!(read(&mut d, I64Serde), vec![]);
    d.advance_wall_clock(1).unwrap(); // 15 - 5 = 10: closed without a new record
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 10, 1)]);
}

#[test]
fn rate_limited_updates_wait_for_the_interval_and_flush_at_close() {
    let b = counts(|g| {
        g.windowed_by(TimeWindows::of_size(100))
            .emit(Emit::OnUpdateEvery { interval_ms: 10 })
            .count("c")
    });
    let mut d = driver(&b);
    pipe(&mut d, "a", 0, 1); // first update: out at once
    pipe(&mut d, "a", 0, 2); // within 10: waits
    pipe(&mut d, "a", 0, 3); // still waits (the aggregate grows)
    assert_eq!(read(&mut d, I64Serde), vec![some("a", 0, 100, 1)]);
    pipe(&mut d, "b", 0, 12); // stream time 12: a's wait is over
    assert_eq!(
        read(&mut d, I64Serde),
        vec![some("b", 0, 100, 1), some("a", 0, 100, 3)]
    );

    let b = counts(|g| {
        g.windowed_by(TimeWindows::of_size(100))
            .emit(Emit::OnUpdateEvery { interval_ms: 1_000 })
            .count("c")
    });
    let mut d = driver(&b);
    pipe(&mut d, "a", 0, 1);
    pipe(&mut d, "a", 0, 5); // waits for 1001, but the window closes first
    pipe(&mut d, "z", 0, 100);
    assert_eq!(
        read(&mut d, I64Serde),
        // z's own update first, then stream time 100 closes a's window with its waiting one.
        vec![
            some("a", 0, 100, 1),
            some("z", 100, 200, 1),
            some("a", 0, 100, 2)
        ]
    );
}

#[test]
fn timestamps_at_the_end_of_time_do_not_overflow_any_operator() {
    let b = StreamsBuilder::new();
    let s = b.stream("in", StringSerde, I64Serde);
    let g = s.group_by_key(StringSerde, I64Serde);
    g.windowed_by(TimeWindows::of_size(10).advance_by(3).grace(5))
        .count("hop")
        .to("hop", WindowedSerde(StringSerde), I64Serde);
    g.windowed_by_sliding(SlidingWindows::with_time_difference(10).grace(5))
        .count("slide")
        .to("slide", WindowedSerde(StringSerde), I64Serde);
    g.windowed_by_session(SessionWindows::with_inactivity_gap(10).grace(5))
        .count("sess")
        .to("sess", WindowedSerde(StringSerde), I64Serde);
    let right = b.stream("in2", StringSerde, I64Serde);
    s.outer_join(
        &right,
        |a, b| a.copied().unwrap_or(0) + b.copied().unwrap_or(0),
        JoinWindows::of_time_difference(10).grace(5),
        StreamJoined::with("j", StringSerde, I64Serde, I64Serde),
    )
    .to("joined", StringSerde, I64Serde);
    s.dedupe_by("seen", 10, |_, v: &i64| *v, I64Serde, StringSerde, I64Serde)
        .to("unique", StringSerde, I64Serde);
    let mut d = driver(&b);
    for ts in [i64::MAX - 20, i64::MAX - 1, i64::MAX] {
        pipe(&mut d, "a", 1, ts);
        d.pipe("in2", &StringSerde, &I64Serde, &"a".to_string(), &2, ts)
            .unwrap();
    }
    // Nothing failed: what a saturated window cannot take is reported as late.
    for r in d.read_raw(DLQ) {
        assert_eq!(header(&r, "strom.error.kind"), "late");
    }
    assert!(!d.read_raw("joined").is_empty());
    assert_eq!(
        d.read_raw("unique").len(),
        2,
        "MAX - 20 and MAX - 1 are 19 apart; MAX repeats"
    );
}
