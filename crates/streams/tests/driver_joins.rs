//! Golden tests of joins and deduplication through the test driver: every join kind
//! with records arriving on either side in either order, table updates and tombstones,
//! dedup across the horizon.
#![allow(clippy::unwrap_used)]

use strom_streams::prelude::*;

const DLQ: &str = "dlq";

fn driver(b: &StreamsBuilder) -> TopologyTestDriver {
    let config = DriverConfig {
        processing_errors: ErrorHandler::DeadLetter { topic: DLQ.into() },
        ..DriverConfig::default()
    };
    TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap()
}

fn pipe(d: &mut TopologyTestDriver, topic: &str, key: &str, value: &str, ts: i64) {
    d.pipe(
        topic,
        &StringSerde,
        &StringSerde,
        &key.to_string(),
        &value.to_string(),
        ts,
    )
    .unwrap();
}

fn tomb(d: &mut TopologyTestDriver, topic: &str, key: &str, ts: i64) {
    d.pipe(
        topic,
        &StringSerde,
        &Nullable(StringSerde),
        &key.to_string(),
        &None::<String>,
        ts,
    )
    .unwrap();
}

fn read(d: &mut TopologyTestDriver) -> Vec<(String, String, i64)> {
    d.read_output("out", &StringSerde, &StringSerde)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp_ms))
        .collect()
}

fn row(k: &str, v: &str, ts: i64) -> (String, String, i64) {
    (k.to_string(), v.to_string(), ts)
}

fn opt(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "null".into())
}

fn stream_join(kind: &str, windows: JoinWindows) -> StreamsBuilder {
    let b = StreamsBuilder::new();
    let left = b.stream("left", StringSerde, StringSerde);
    let right = b.stream("right", StringSerde, StringSerde);
    let joined = StreamJoined::with("j", StringSerde, StringSerde, StringSerde);
    let out = match kind {
        "inner" => left.join(&right, |a, b| format!("{a}+{b}"), windows, joined),
        "left" => left.left_join(&right, |a, b| format!("{a}+{}", opt(b)), windows, joined),
        _ => left.outer_join(
            &right,
            |a, b| format!("{}+{}", opt(a), opt(b)),
            windows,
            joined,
        ),
    };
    out.to("out", StringSerde, StringSerde);
    b
}

#[test]
fn inner_join_matches_either_order_within_the_window() {
    let mut d = driver(&stream_join("inner", JoinWindows::of_time_difference(10)));
    pipe(&mut d, "left", "k", "a1", 100);
    pipe(&mut d, "right", "k", "b1", 105); // right after left
    pipe(&mut d, "right", "k", "b2", 120); // too far from a1
    pipe(&mut d, "left", "k", "a2", 115); // left after right: meets b1 and b2
    pipe(&mut d, "left", "x", "a3", 116); // other key: nothing
    assert_eq!(
        read(&mut d),
        vec![
            row("k", "a1+b1", 105),
            row("k", "a2+b1", 115),
            row("k", "a2+b2", 120)
        ]
    );
}

#[test]
fn asymmetric_windows_bound_each_side() {
    // Right records may be up to 5 before and 0 after a left record.
    let mut d = driver(&stream_join(
        "inner",
        JoinWindows::of_time_difference(0).before(5).grace(100),
    ));
    pipe(&mut d, "left", "k", "a", 100);
    pipe(&mut d, "right", "k", "early", 96);
    pipe(&mut d, "right", "k", "late", 101);
    assert_eq!(read(&mut d), vec![row("k", "a+early", 100)]);
}

#[test]
fn left_join_emits_partnerless_records_only_when_no_partner_can_come() {
    let mut d = driver(&stream_join("left", JoinWindows::of_time_difference(10)));
    pipe(&mut d, "left", "k", "a1", 100);
    pipe(&mut d, "left", "m", "a2", 100);
    pipe(&mut d, "right", "k", "b1", 108);
    // Stream time 115: a2's window closed, but a right record at 105..110 could still
    // arrive and match it, so no (a2, null) yet.
    pipe(&mut d, "right", "z", "b9", 115);
    assert_eq!(read(&mut d), vec![row("k", "a1+b1", 108)]);
    pipe(&mut d, "right", "m", "b2", 106); // arrives late for nobody: joins a2
    assert_eq!(read(&mut d), vec![row("m", "a2+b2", 106)]);
    pipe(&mut d, "left", "q", "a3", 200);
    pipe(&mut d, "right", "z", "b10", 300);
    // a3 had no partner: emitted once it left the store (200 + 10 + 10 < 300).
    assert_eq!(read(&mut d), vec![row("q", "a3+null", 200)]);
}

#[test]
fn outer_join_emits_both_sides_partnerless_records_and_late_ones_go_to_the_dlq() {
    let mut d = driver(&stream_join("outer", JoinWindows::of_time_difference(5)));
    pipe(&mut d, "left", "k", "a", 10);
    pipe(&mut d, "right", "m", "b", 12);
    pipe(&mut d, "left", "z", "tick", 50);
    assert_eq!(
        read(&mut d),
        vec![row("k", "a+null", 10), row("m", "null+b", 12)]
    );
    pipe(&mut d, "left", "k", "old", 20); // 20 + 5 < 50: its window closed
    let dlq = d.read_raw(DLQ);
    assert_eq!(dlq.len(), 1);
    let kind = dlq[0]
        .headers
        .iter()
        .find(|(k, _)| k == "strom.error.kind")
        .unwrap();
    assert_eq!(kind.1.as_deref(), Some(&b"late"[..]));
}

fn tables() -> (
    StreamsBuilder,
    KTable<String, String>,
    KTable<String, String>,
) {
    let b = StreamsBuilder::new();
    let l = b.table("lt", StringSerde, StringSerde);
    let r = b.table("rt", StringSerde, StringSerde);
    (b, l, r)
}

fn read_table(d: &mut TopologyTestDriver) -> Vec<(String, Option<String>)> {
    d.read_output("out", &StringSerde, &Nullable(StringSerde))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

fn some(k: &str, v: &str) -> (String, Option<String>) {
    (k.to_string(), Some(v.to_string()))
}

fn none(k: &str) -> (String, Option<String>) {
    (k.to_string(), None)
}

#[test]
fn stream_table_joins_see_the_table_as_of_each_record() {
    let b = StreamsBuilder::new();
    let profiles = b.table("profiles", StringSerde, StringSerde);
    let clicks = b.stream("clicks", StringSerde, StringSerde);
    clicks
        .join_table(&profiles, |c, p| format!("{c}@{p}"))
        .to("out", StringSerde, StringSerde);
    clicks
        .left_join_table(&profiles, |c, p| format!("{c}@{}", opt(p)))
        .to("left-out", StringSerde, StringSerde);
    let mut d = driver(&b);
    pipe(&mut d, "clicks", "u1", "c0", 1); // no profile yet
    pipe(&mut d, "profiles", "u1", "gold", 2);
    pipe(&mut d, "clicks", "u1", "c1", 3);
    tomb(&mut d, "profiles", "u1", 4);
    pipe(&mut d, "clicks", "u1", "c2", 5);
    assert_eq!(read(&mut d), vec![row("u1", "c1@gold", 3)]);
    let left: Vec<String> = d
        .read_output("left-out", &StringSerde, &StringSerde)
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(left, vec!["c0@null", "c1@gold", "c2@null"]);
}

#[test]
fn table_table_inner_join_follows_updates_and_tombstones_on_both_sides() {
    let (b, l, r) = tables();
    l.join(&r, |a, b| format!("{a}+{b}"))
        .to("out", StringSerde, StringSerde);
    let mut d = driver(&b);
    pipe(&mut d, "lt", "k", "a1", 1);
    pipe(&mut d, "rt", "k", "b1", 2);
    pipe(&mut d, "lt", "k", "a2", 3);
    tomb(&mut d, "rt", "k", 4);
    pipe(&mut d, "rt", "k", "b2", 5);
    assert_eq!(
        read_table(&mut d),
        vec![
            none("k"),
            some("k", "a1+b1"),
            some("k", "a2+b1"),
            none("k"),
            some("k", "a2+b2")
        ]
    );
}

#[test]
fn table_table_left_and_outer_joins() {
    let (b, l, r) = tables();
    l.left_join(&r, |a, b| format!("{a}+{}", opt(b)))
        .to("out", StringSerde, StringSerde);
    l.outer_join(&r, |a, b| format!("{}+{}", opt(a), opt(b)))
        .to("outer", StringSerde, StringSerde);
    let mut d = driver(&b);
    pipe(&mut d, "rt", "k", "b1", 1);
    pipe(&mut d, "lt", "k", "a1", 2);
    tomb(&mut d, "lt", "k", 3);
    assert_eq!(
        read_table(&mut d),
        vec![none("k"), some("k", "a1+b1"), none("k")]
    );
    let outer: Vec<(String, Option<String>)> = d
        .read_output("outer", &StringSerde, &Nullable(StringSerde))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        outer,
        vec![
            some("k", "null+b1"),
            some("k", "a1+b1"),
            some("k", "null+b1")
        ]
    );
}

#[test]
fn joining_a_derived_table_reads_through_its_filter() {
    let (b, l, r) = tables();
    let gold = r.filter(|_, v| v.starts_with("gold"));
    l.join(&gold, |a, b| format!("{a}+{b}"))
        .to("out", StringSerde, StringSerde);
    let mut d = driver(&b);
    pipe(&mut d, "rt", "k", "silver", 1);
    pipe(&mut d, "lt", "k", "a", 2);
    pipe(&mut d, "rt", "k", "gold!", 3);
    assert_eq!(
        read_table(&mut d),
        vec![none("k"), none("k"), some("k", "a+gold!")]
    );
}

#[test]
fn joining_a_windowed_table_is_a_build_error() {
    let b = StreamsBuilder::new();
    let counts = b
        .stream("in", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .windowed_by(TimeWindows::of_size(10))
        .count("c")
        .to_stream()
        .map(|w, n| (w.key, n))
        .repartition("counts", StringSerde, Nullable(I64Serde));
    let t = b.table("t", StringSerde, StringSerde);
    let _ = counts.join_table(&t, |n, v| format!("{n:?}{v}"));
    let windowed = b
        .stream("in2", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .windowed_by(TimeWindows::of_size(10))
        .count("c2");
    let _ = b
        .stream("s", WindowedSerde(StringSerde), StringSerde)
        .join_table(&windowed, |v, n| format!("{v}{n}"));
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("only materialised tables"), "{err}");
}

#[test]
fn dedup_keeps_the_first_record_per_id_within_the_horizon() {
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .dedupe_by(
            "seen",
            10,
            |_, v: &String| v.clone(),
            StringSerde,
            StringSerde,
            StringSerde,
        )
        .to("out", StringSerde, StringSerde);
    let mut d = driver(&b);
    pipe(&mut d, "in", "k", "e1", 100);
    pipe(&mut d, "in", "k", "e1", 105); // duplicate
    pipe(&mut d, "in", "k", "e2", 106);
    pipe(&mut d, "in", "k", "e1", 110); // 10 after the first: a new occurrence
    pipe(&mut d, "in", "k", "e2", 104); // out of order, within 10 of e2's first: duplicate
    pipe(&mut d, "in", "k", "e3", 130);
    pipe(&mut d, "in", "k", "e1", 115); // more than the horizon behind stream time: DLQ
    assert_eq!(
        read(&mut d),
        vec![
            row("k", "e1", 100),
            row("k", "e2", 106),
            row("k", "e1", 110),
            row("k", "e3", 130)
        ]
    );
    assert_eq!(d.read_raw(DLQ).len(), 1);
}

fn fk_tables(left_join: bool) -> StreamsBuilder {
    let b = StreamsBuilder::new();
    // orders: order id → "customer|item"; customers: customer id → name.
    let orders = b.table("orders", StringSerde, StringSerde);
    let customers = b.table("customers", StringSerde, StringSerde);
    let fk = |o: &String| o.split('|').next().unwrap_or_default().to_string();
    let joined = FkJoined::with(
        "order-customer",
        StringSerde,
        StringSerde,
        StringSerde,
        StringSerde,
    );
    let result = if left_join {
        orders.left_join_on_foreign_key(&customers, fk, |o, c| format!("{o}:{}", opt(c)), joined)
    } else {
        orders.join_on_foreign_key(&customers, fk, |o, c| format!("{o}:{c}"), joined)
    };
    result.to("out", StringSerde, StringSerde);
    b
}

#[test]
fn foreign_key_join_follows_both_tables_and_drops_stale_answers() {
    let mut d = driver(&fk_tables(false));
    pipe(&mut d, "orders", "o1", "c1|book", 1); // no customer c1 yet
    pipe(&mut d, "customers", "c1", "Ann", 2);
    pipe(&mut d, "customers", "c2", "Bob", 3);
    pipe(&mut d, "orders", "o2", "c1|pen", 4);
    pipe(&mut d, "customers", "c1", "Anna", 5); // both orders of c1 see the new name
    pipe(&mut d, "orders", "o1", "c2|book", 6); // moves to c2 …
    pipe(&mut d, "customers", "c1", "Annie", 7); // … so only o2 follows c1 now
    tomb(&mut d, "customers", "c2", 8); // o1 loses its row
    tomb(&mut d, "orders", "o2", 9); // o2 deleted
    assert_eq!(
        read_table(&mut d),
        vec![
            none("o1"),
            some("o1", "c1|book:Ann"),
            some("o2", "c1|pen:Ann"),
            some("o1", "c1|book:Anna"),
            some("o2", "c1|pen:Anna"),
            some("o1", "c2|book:Bob"),
            some("o2", "c1|pen:Annie"),
            none("o1"),
            none("o2"),
        ]
    );
}

#[test]
fn foreign_key_left_join_keeps_rows_without_a_match() {
    let mut d = driver(&fk_tables(true));
    pipe(&mut d, "orders", "o1", "c9|mug", 1);
    pipe(&mut d, "customers", "c9", "Cy", 2);
    assert_eq!(
        read_table(&mut d),
        vec![some("o1", "c9|mug:null"), some("o1", "c9|mug:Cy")]
    );
}

#[test]
fn a_stale_answer_is_dropped_when_the_row_changed_before_it_came_back() {
    // Without auto-commit the subscription and the change meet before the answer does.
    let b = fk_tables(false);
    let config = DriverConfig {
        auto_commit: false,
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&b.build().unwrap(), config).unwrap();
    pipe(&mut d, "customers", "c1", "Ann", 1);
    pipe(&mut d, "customers", "c2", "Bob", 1);
    pipe(&mut d, "orders", "o1", "c1|a", 2);
    pipe(&mut d, "orders", "o1", "c2|b", 3);
    // Subscriptions, then answers, then resolved results: one commit each.
    for _ in 0..3 {
        d.commit().unwrap();
    }
    // The answer for "c1|a" arrives after o1 became "c2|b": only the current one counts.
    assert_eq!(read_table(&mut d), vec![some("o1", "c2|b:Bob")]);
}
