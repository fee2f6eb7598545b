//! Golden tests: every operator through the topology test driver, exact outputs.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use strom_streams::prelude::*;

fn s(x: &str) -> String {
    x.to_string()
}

fn kv<K: Clone, V: Clone>(records: &[Record<K, V>]) -> Vec<(K, V)> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect()
}

fn pipe_str(d: &mut TopologyTestDriver, topic: &str, k: &str, v: &str, ts: i64) {
    d.pipe(topic, &StringSerde, &StringSerde, &s(k), &s(v), ts)
        .unwrap();
}

fn read_str(d: &mut TopologyTestDriver, topic: &str) -> Vec<(String, String)> {
    kv(&d.read_output(topic, &StringSerde, &StringSerde).unwrap())
}

#[test]
fn filter_and_filter_not_route_premium_users() {
    let b = StreamsBuilder::new();
    let events = b.stream("user-events", StringSerde, StringSerde);
    events
        .filter(|_, v| v == "PREMIUM")
        .to("premium", StringSerde, StringSerde);
    events
        .filter_not(|_, v| v == "PREMIUM")
        .to("other", StringSerde, StringSerde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    pipe_str(&mut d, "user-events", "u1", "PREMIUM", 1);
    pipe_str(&mut d, "user-events", "u2", "BASIC", 2);
    pipe_str(&mut d, "user-events", "u3", "PREMIUM", 3);
    assert_eq!(
        read_str(&mut d, "premium"),
        vec![(s("u1"), s("PREMIUM")), (s("u3"), s("PREMIUM"))]
    );
    assert_eq!(read_str(&mut d, "other"), vec![(s("u2"), s("BASIC"))]);
}

#[test]
fn map_map_values_select_key_keep_timestamps_and_headers() {
    let b = StreamsBuilder::new();
    let src = b.stream("in", StringSerde, I64Serde);
    src.map(|k, v| (v, k)).to("swapped", I64Serde, StringSerde);
    src.map_values(|v| v * 10)
        .to("times10", StringSerde, I64Serde);
    src.select_key(|k, v| format!("{k}-{v}"))
        .to("rekeyed", StringSerde, I64Serde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    d.pipe_raw(
        "in",
        Some(b"a".to_vec()),
        Some(7i64.to_be_bytes().to_vec()),
        42,
        vec![(s("h"), Some(b"1".to_vec()))],
    )
    .unwrap();
    let swapped = d.read_output("swapped", &I64Serde, &StringSerde).unwrap();
    assert_eq!(kv(&swapped), vec![(7, s("a"))]);
    assert_eq!(swapped[0].timestamp_ms, 42);
    assert_eq!(swapped[0].headers, vec![(s("h"), Some(b"1".to_vec()))]);
    assert_eq!(
        kv(&d.read_output("times10", &StringSerde, &I64Serde).unwrap()),
        vec![(s("a"), 70)]
    );
    assert_eq!(
        kv(&d.read_output("rekeyed", &StringSerde, &I64Serde).unwrap()),
        vec![(s("a-7"), 7)]
    );
}

#[test]
fn flat_map_and_flat_map_values_emit_in_order() {
    let b = StreamsBuilder::new();
    let src = b.stream("in", StringSerde, StringSerde);
    src.flat_map_values(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .to("values", StringSerde, StringSerde);
    src.flat_map(|k, v| {
        v.split(',')
            .map(|p| (p.to_string(), k.clone()))
            .collect::<Vec<_>>()
    })
    .to("pairs", StringSerde, StringSerde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    pipe_str(&mut d, "in", "k", "x,y,z", 1);
    pipe_str(&mut d, "in", "j", "", 2);
    assert_eq!(
        read_str(&mut d, "values"),
        vec![
            (s("k"), s("x")),
            (s("k"), s("y")),
            (s("k"), s("z")),
            (s("j"), s(""))
        ]
    );
    assert_eq!(
        read_str(&mut d, "pairs"),
        vec![
            (s("x"), s("k")),
            (s("y"), s("k")),
            (s("z"), s("k")),
            (s(""), s("j"))
        ]
    );
}

#[test]
fn branch_sends_each_record_to_the_first_match_only() {
    let b = StreamsBuilder::new();
    let branches = b.stream("in", StringSerde, I64Serde).branch(vec![
        Box::new(|_, v: &i64| *v < 0),
        Box::new(|_, v: &i64| *v % 2 == 0),
        Box::new(|_, _: &i64| true),
    ]);
    branches[0].to("negative", StringSerde, I64Serde);
    branches[1].to("even", StringSerde, I64Serde);
    branches[2].to("rest", StringSerde, I64Serde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    for (i, v) in [-2i64, 4, 5, -3, 6].iter().enumerate() {
        d.pipe("in", &StringSerde, &I64Serde, &s("k"), v, i as i64)
            .unwrap();
    }
    let vals = |d: &mut TopologyTestDriver, t: &str| -> Vec<i64> {
        d.read_output(t, &StringSerde, &I64Serde)
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(vals(&mut d, "negative"), vec![-2, -3]);
    assert_eq!(vals(&mut d, "even"), vec![4, 6]);
    assert_eq!(vals(&mut d, "rest"), vec![5]);
}

#[test]
fn merge_peek_foreach_and_topic_per_record() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let peeked = Arc::new(Mutex::new(Vec::new()));
    let b = StreamsBuilder::new();
    let a = b.stream("a", StringSerde, StringSerde);
    let c = b.stream("c", StringSerde, StringSerde);
    let p = peeked.clone();
    let merged = a
        .merge(&c)
        .peek(move |k, _| p.lock().unwrap().push(k.clone()));
    let f = seen.clone();
    merged.foreach(move |k, v| f.lock().unwrap().push(format!("{k}={v}")));
    merged.to_dynamic(|_, v| format!("out-{v}"), StringSerde, StringSerde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    pipe_str(&mut d, "a", "1", "x", 1);
    pipe_str(&mut d, "c", "2", "y", 2);
    pipe_str(&mut d, "a", "3", "x", 3);
    assert_eq!(*peeked.lock().unwrap(), vec![s("1"), s("2"), s("3")]);
    assert_eq!(*seen.lock().unwrap(), vec![s("1=x"), s("2=y"), s("3=x")]);
    assert_eq!(
        read_str(&mut d, "out-x"),
        vec![(s("1"), s("x")), (s("3"), s("x"))]
    );
    assert_eq!(read_str(&mut d, "out-y"), vec![(s("2"), s("y"))]);
}

#[test]
fn word_count_emits_every_update_and_repartitions_after_a_key_change() {
    let b = StreamsBuilder::new();
    b.stream("text", UnitSerde, StringSerde)
        .flat_map_values(|l| {
            l.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w| w.clone(), StringSerde, StringSerde)
        .count("counts")
        .to("word-counts", StringSerde, I64Serde);
    let topology = b.build().unwrap();
    assert_eq!(
        topology.source_topics("app"),
        vec![
            s("text"),
            s("app-KSTREAM-REPARTITION-0000000003-repartition")
        ]
    );
    let mut d = TopologyTestDriver::new(&topology).unwrap();
    d.pipe("text", &UnitSerde, &StringSerde, &(), &s("the cat the"), 1)
        .unwrap();
    d.pipe("text", &UnitSerde, &StringSerde, &(), &s("The end"), 2)
        .unwrap();
    let out = d
        .read_output("word-counts", &StringSerde, &Nullable(I64Serde))
        .unwrap();
    assert_eq!(
        kv(&out),
        vec![
            (s("the"), Some(1)),
            (s("cat"), Some(1)),
            (s("the"), Some(2)),
            (s("the"), Some(3)),
            (s("end"), Some(1)),
        ]
    );
    let counts = StoreHandle::new("counts", StringSerde, I64Serde);
    assert_eq!(
        d.store_all(&counts).unwrap(),
        vec![(s("cat"), 1), (s("end"), 1), (s("the"), 3)]
    );
    // The overlay folds updates: one changelog record per key per commit
    // ({the: 2, cat: 1} then {the: 3, end: 1}).
    assert_eq!(d.topic_log("test-app-counts-changelog").len(), 4);
}

/// Numbers each key's records in a store and forwards `n:value` under another key,
/// which `process_values` must not let through.
struct Numbered {
    store: StoreHandle<String, i64>,
}

impl Processor<String, String, String, String> for Numbered {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let n = {
            let mut store = ctx.store(&self.store)?;
            let n = store.get(&r.key)?.unwrap_or(0) + 1;
            store.put(&r.key, &n)?;
            n
        };
        ctx.forward(Record::new(
            s("other"),
            format!("{n}:{}", r.value),
            r.timestamp_ms,
        ));
        Ok(())
    }
}

#[test]
fn process_values_keeps_each_key_so_grouping_after_it_needs_no_repartition() {
    let build = |keep_keys: bool| {
        let b = StreamsBuilder::new();
        let store = StoreHandle::new("numbers", StringSerde, I64Serde);
        b.add_store(&store);
        let supplier = move || Numbered {
            store: store.clone(),
        };
        let input = b.stream("in", StringSerde, StringSerde);
        let numbered: KStream<String, String> = if keep_keys {
            input.process_values(supplier, &["numbers"])
        } else {
            input.process(supplier, &["numbers"])
        };
        numbered.to("numbered", StringSerde, StringSerde);
        numbered
            .group_by_key(StringSerde, StringSerde)
            .count("counts")
            .to("counts", StringSerde, I64Serde);
        b.build().unwrap()
    };
    // `process` may change keys: grouping after it goes through a repartition topic.
    assert_eq!(build(false).source_topics("app").len(), 2);
    let topology = build(true);
    assert_eq!(topology.source_topics("app"), vec![s("in")]);
    let mut d = TopologyTestDriver::new(&topology).unwrap();
    for (k, v) in [("a", "x"), ("b", "y"), ("a", "z")] {
        pipe_str(&mut d, "in", k, v, 1);
    }
    assert_eq!(
        read_str(&mut d, "numbered"),
        vec![(s("a"), s("1:x")), (s("b"), s("1:y")), (s("a"), s("2:z"))]
    );
    let counts = kv(&d
        .read_output("counts", &StringSerde, &Nullable(I64Serde))
        .unwrap());
    assert_eq!(
        counts,
        vec![(s("a"), Some(1)), (s("b"), Some(1)), (s("a"), Some(2))]
    );
}

#[test]
fn reduce_and_aggregate_by_key_without_repartition() {
    let b = StreamsBuilder::new();
    let g = b
        .stream("amounts", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde);
    g.reduce("max", |a, v| a.max(v))
        .to("max-out", StringSerde, I64Serde);
    g.aggregate(
        "sum-count",
        || (0i64, 0i64),
        |_, v, (sum, n)| (sum + v, n + 1),
        JsonSerde::<(i64, i64)>::new(),
    )
    .map_values(|(sum, n)| sum / n)
    .to("avg-out", StringSerde, I64Serde);
    let topology = b.build().unwrap();
    assert_eq!(topology.source_topics("app"), vec![s("amounts")]);
    let mut d = TopologyTestDriver::new(&topology).unwrap();
    for (k, v) in [("a", 3i64), ("b", 10), ("a", 1), ("a", 8)] {
        d.pipe("amounts", &StringSerde, &I64Serde, &s(k), &v, 0)
            .unwrap();
    }
    let max: Vec<(String, Option<i64>)> = kv(&d
        .read_output("max-out", &StringSerde, &Nullable(I64Serde))
        .unwrap());
    assert_eq!(
        max,
        vec![
            (s("a"), Some(3)),
            (s("b"), Some(10)),
            (s("a"), Some(3)),
            (s("a"), Some(8))
        ]
    );
    let avg: Vec<(String, Option<i64>)> = kv(&d
        .read_output("avg-out", &StringSerde, &Nullable(I64Serde))
        .unwrap());
    assert_eq!(
        avg,
        vec![
            (s("a"), Some(3)),
            (s("b"), Some(10)),
            (s("a"), Some(2)),
            (s("a"), Some(4))
        ]
    );
}

#[test]
fn table_filter_map_values_and_to_stream_with_tombstones() {
    let b = StreamsBuilder::new();
    let users = b.table("users", StringSerde, I64Serde);
    users
        .filter(|_, age| *age >= 18)
        .map_values(|age| format!("adult:{age}"))
        .to_stream()
        .to("adults", StringSerde, Nullable(StringSerde));
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    d.pipe("users", &StringSerde, &I64Serde, &s("ann"), &30, 1)
        .unwrap();
    d.pipe("users", &StringSerde, &I64Serde, &s("bob"), &12, 2)
        .unwrap();
    d.pipe("users", &StringSerde, &I64Serde, &s("ann"), &31, 3)
        .unwrap();
    d.pipe_raw("users", Some(b"ann".to_vec()), None, 4, Vec::new())
        .unwrap();
    let out: Vec<(String, Option<String>)> = kv(&d
        .read_output("adults", &StringSerde, &Nullable(StringSerde))
        .unwrap());
    assert_eq!(
        out,
        vec![
            (s("ann"), Some(s("adult:30"))),
            (s("bob"), None),
            (s("ann"), Some(s("adult:31"))),
            (s("ann"), None),
        ]
    );
    let store = StoreHandle::new("users-table", StringSerde, I64Serde);
    assert_eq!(d.store_all(&store).unwrap(), vec![(s("bob"), 12)]);
}

/// Keeps the last value per key, emits a summary on stream-time and wall-clock punctuation.
struct Summary {
    store: StoreHandle<String, i64>,
}

impl Processor<String, i64, String, String> for Summary {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
    ) -> Result<(), ProcessError> {
        ctx.schedule(10, PunctuationType::StreamTime);
        ctx.schedule(1000, PunctuationType::WallClock);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, i64>,
    ) -> Result<(), ProcessError> {
        if r.value < 0 {
            return Err(ProcessError::user("negative"));
        }
        let mut store = ctx.store(&self.store)?;
        store.put(&r.key, &r.value)?;
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        schedule: ScheduleId,
        time_ms: i64,
    ) -> Result<(), ProcessError> {
        let store = ctx.store(&self.store)?;
        let between: Vec<String> = store
            .range(s("b")..=s("c"))
            .unwrap()
            .into_iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let all = store.all()?.len();
        let kind = if schedule.0 == 0 { "stream" } else { "wall" };
        ctx.forward(Record::new(
            s(kind),
            format!("t={time_ms} n={all} b..=c {}", between.join(",")),
            time_ms,
        ));
        Ok(())
    }
}

fn summary_topology() -> Topology {
    let b = StreamsBuilder::new();
    let store = StoreHandle::new("last", StringSerde, I64Serde);
    b.add_store(&store);
    let st = store.clone();
    b.stream("in", StringSerde, I64Serde)
        .process(move || Summary { store: st.clone() }, &["last"])
        .to("summary", StringSerde, StringSerde);
    b.build().unwrap()
}

#[test]
fn punctuators_fire_on_stream_time_and_wall_clock_with_range_scans() {
    let mut d = TopologyTestDriver::new(&summary_topology()).unwrap();
    let put = |d: &mut TopologyTestDriver, k: &str, v: i64, ts: i64| {
        d.pipe("in", &StringSerde, &I64Serde, &s(k), &v, ts)
            .unwrap();
    };
    put(&mut d, "a", 1, 5); // stream time 5: schedule aligned to 10
    put(&mut d, "b", 2, 9);
    put(&mut d, "c", 3, 10); // fires at 10
    put(&mut d, "d", 4, 12);
    put(&mut d, "b", 5, 25); // fires at 25 (next multiple was 20)
    put(&mut d, "a", 6, 7); // late record: stream time stays 25
    d.advance_wall_clock(999).unwrap();
    d.advance_wall_clock(1).unwrap(); // fires at 1000
    assert_eq!(
        read_str(&mut d, "summary"),
        vec![
            (s("stream"), s("t=10 n=3 b..=c b:2,c:3")),
            (s("stream"), s("t=25 n=4 b..=c b:5,c:3")),
            (s("wall"), s("t=1000 n=4 b..=c b:5,c:3")),
        ]
    );
}

#[test]
fn errors_go_to_the_dead_letter_topic_with_headers_and_leave_no_trace() {
    let config = DriverConfig {
        deserialization_errors: ErrorHandler::DeadLetter { topic: s("dlq") },
        processing_errors: ErrorHandler::DeadLetter { topic: s("dlq") },
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&summary_topology(), config).unwrap();
    d.pipe_raw(
        "in",
        Some(b"a".to_vec()),
        Some(b"xx".to_vec()),
        3,
        Vec::new(),
    )
    .unwrap();
    d.pipe("in", &StringSerde, &I64Serde, &s("neg"), &-1, 4)
        .unwrap();
    d.pipe("in", &StringSerde, &I64Serde, &s("ok"), &1, 5)
        .unwrap();
    let dlq = d.read_raw("dlq");
    assert_eq!(dlq.len(), 2);
    let header = |i: usize, name: &str| -> String {
        let v = dlq[i]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .unwrap();
        String::from_utf8(v).unwrap()
    };
    assert_eq!(header(0, "strom.error.kind"), "deserialization");
    assert_eq!(header(0, "strom.error"), "expected 8 bytes, got 2");
    assert_eq!(header(0, "strom.original.topic"), "in");
    assert_eq!(header(0, "strom.original.partition"), "0");
    assert_eq!(header(0, "strom.original.offset"), "0");
    assert_eq!(header(0, "strom.original.timestamp"), "3");
    assert_eq!(dlq[0].value, Some(b"xx".to_vec()));
    assert_eq!(header(1, "strom.error.kind"), "processing");
    assert_eq!(header(1, "strom.error"), "negative");
    assert_eq!(header(1, "strom.original.offset"), "1");
    let store = StoreHandle::new("last", StringSerde, I64Serde);
    assert_eq!(d.store_all(&store).unwrap(), vec![(s("ok"), 1)]);
}

#[test]
fn fail_handler_stops_with_the_record_coordinates() {
    let mut d = TopologyTestDriver::new(&summary_topology()).unwrap();
    d.pipe("in", &StringSerde, &I64Serde, &s("a"), &1, 1)
        .unwrap();
    let err = d
        .pipe("in", &StringSerde, &I64Serde, &s("neg"), &-1, 4)
        .unwrap_err();
    assert_eq!(err.to_string(), "processing failed on in-0@1: negative");
    let err = d
        .pipe_raw("in", Some(b"a".to_vec()), None, 5, Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, StreamsError::Deserialization { offset: 2, .. }),
        "{err}"
    );
}

fn counting_topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .count("counts")
        .to("counts-out", StringSerde, I64Serde);
    b.build().unwrap()
}

#[test]
fn abort_drops_uncommitted_work_and_replays_identically() {
    let config = DriverConfig {
        auto_commit: false,
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&counting_topology(), config).unwrap();
    pipe_str(&mut d, "in", "a", "x", 1);
    d.commit().unwrap();
    pipe_str(&mut d, "in", "a", "x", 2);
    pipe_str(&mut d, "in", "b", "x", 3);
    // Nothing of the open transaction is visible.
    let counts = StoreHandle::new("counts", StringSerde, I64Serde);
    assert_eq!(
        d.read_output("counts-out", &StringSerde, &Nullable(I64Serde))
            .unwrap()
            .len(),
        1
    );
    d.abort().unwrap();
    d.commit().unwrap();
    let out: Vec<(String, Option<i64>)> = kv(&d
        .read_output("counts-out", &StringSerde, &Nullable(I64Serde))
        .unwrap());
    assert_eq!(out, vec![(s("a"), Some(2)), (s("b"), Some(1))]);
    assert_eq!(
        d.store_all(&counts).unwrap(),
        vec![(s("a"), 2), (s("b"), 1)]
    );
}

#[test]
fn restart_restores_only_the_changelog_tail_and_wipe_rebuilds_everything() {
    let config = DriverConfig {
        auto_commit: false,
        ..DriverConfig::default()
    };
    let mut d = TopologyTestDriver::with_config(&counting_topology(), config).unwrap();
    let counts = StoreHandle::new("counts", StringSerde, I64Serde);
    for k in ["a", "b", "c"] {
        pipe_str(&mut d, "in", k, "x", 1);
    }
    d.commit().unwrap();
    // A crash before anything else: the store already has everything.
    let report = d.restart(false).unwrap();
    assert_eq!(report.records_restored.get("counts"), Some(&0));
    pipe_str(&mut d, "in", "a", "x", 2);
    d.commit().unwrap();
    pipe_str(&mut d, "in", "d", "x", 3); // uncommitted: lost, then reprocessed
    let report = d.restart(false).unwrap();
    assert_eq!(report.records_restored.get("counts"), Some(&0));
    assert_eq!(
        d.store_all(&counts).unwrap(),
        vec![(s("a"), 2), (s("b"), 1), (s("c"), 1), (s("d"), 1)]
    );
    d.commit().unwrap();
    let report = d.restart(true).unwrap();
    // Rebuilt from the whole changelog: 3 + 1 + 1 records.
    assert_eq!(report.records_restored.get("counts"), Some(&5));
    assert_eq!(
        d.store_all(&counts).unwrap(),
        vec![(s("a"), 2), (s("b"), 1), (s("c"), 1), (s("d"), 1)]
    );
}

/// Calls an external service through a circuit breaker; the service is a shared switch.
struct Enrich {
    up: Arc<Mutex<bool>>,
    calls: Arc<Mutex<Vec<String>>>,
    breaker: CircuitBreaker,
}

impl Processor<String, String, String, String> for Enrich {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let now = ctx.wall_clock_ms();
        let (up, calls) = (self.up.clone(), self.calls.clone());
        let value = r.value.clone();
        let enriched = self.breaker.call(now, move || {
            calls.lock().unwrap().push(format!("{value}@{now}"));
            if *up.lock().unwrap() {
                Ok(format!("{value}+profile"))
            } else {
                Err("service down")
            }
        })?;
        ctx.forward(Record::new(r.key, enriched, r.timestamp_ms));
        Ok(())
    }
}

#[test]
fn circuit_breaker_pauses_the_partition_and_keeps_order_until_the_service_recovers() {
    let up = Arc::new(Mutex::new(false));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let b = StreamsBuilder::new();
    let (u, c) = (up.clone(), calls.clone());
    b.stream("in", StringSerde, StringSerde)
        .process(
            move || Enrich {
                up: u.clone(),
                calls: c.clone(),
                breaker: CircuitBreaker::new(BreakerConfig {
                    failure_rate_threshold: 1.0,
                    window: 2,
                    min_calls: 2,
                    cool_down_ms: 1000,
                    retry_backoff_ms: 100,
                }),
            },
            &[],
        )
        .to("out", StringSerde, StringSerde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    pipe_str(&mut d, "in", "k", "a", 1); // fails: partition paused 100 ms
    pipe_str(&mut d, "in", "k", "b", 2); // queued behind "a"
    assert_eq!(d.paused_records(), 2);
    d.advance_wall_clock(100).unwrap(); // "a" fails again: 2 of 2 failed, the breaker opens
    d.advance_wall_clock(500).unwrap(); // still open: nothing is called
    *up.lock().unwrap() = true;
    d.advance_wall_clock(500).unwrap(); // t=1100: half-open probe succeeds, closes
    assert_eq!(d.paused_records(), 0);
    assert_eq!(
        read_str(&mut d, "out"),
        vec![(s("k"), s("a+profile")), (s("k"), s("b+profile"))]
    );
    assert_eq!(
        *calls.lock().unwrap(),
        vec![s("a@0"), s("a@100"), s("a@1100"), s("b@1100")]
    );
}

#[test]
fn global_table_lookups_inner_and_left_join() {
    let b = StreamsBuilder::new();
    let customers = b.global_table("customers", StringSerde, StringSerde);
    let orders = b.stream("orders", StringSerde, StringSerde); // key: order id, value: customer id
    orders
        .join_global(
            &customers,
            |_, cust| cust.clone(),
            |cust, name| format!("{cust}:{name}"),
        )
        .to("enriched", StringSerde, StringSerde);
    orders
        .left_join_global(
            &customers,
            |_, cust| cust.clone(),
            |cust, name| format!("{cust}:{}", name.map_or("?", String::as_str)),
        )
        .to("enriched-left", StringSerde, StringSerde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    pipe_str(&mut d, "customers", "c1", "Ann", 1);
    pipe_str(&mut d, "orders", "o1", "c1", 2);
    pipe_str(&mut d, "orders", "o2", "c2", 3);
    pipe_str(&mut d, "customers", "c2", "Bob", 4);
    d.pipe_raw("customers", Some(b"c1".to_vec()), None, 5, Vec::new())
        .unwrap(); // deleted
    pipe_str(&mut d, "orders", "o3", "c2", 6);
    pipe_str(&mut d, "orders", "o4", "c1", 7);
    assert_eq!(
        read_str(&mut d, "enriched"),
        vec![(s("o1"), s("c1:Ann")), (s("o3"), s("c2:Bob"))]
    );
    assert_eq!(
        read_str(&mut d, "enriched-left"),
        vec![
            (s("o1"), s("c1:Ann")),
            (s("o2"), s("c2:?")),
            (s("o3"), s("c2:Bob")),
            (s("o4"), s("c1:?"))
        ]
    );
}

#[test]
fn a_w3c_traceparent_header_travels_through_repartition_and_aggregation() {
    let b = StreamsBuilder::new();
    b.stream("text", UnitSerde, StringSerde)
        .flat_map_values(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w| w.clone(), StringSerde, StringSerde)
        .count("counts")
        .to("out", StringSerde, I64Serde);
    let mut d = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
    let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec();
    d.pipe_raw(
        "text",
        None,
        Some(b"x y".to_vec()),
        1,
        vec![(s("traceparent"), Some(tp.clone()))],
    )
    .unwrap();
    let out = d.read_raw("out");
    assert_eq!(out.len(), 2);
    for r in out {
        assert_eq!(r.headers, vec![(s("traceparent"), Some(tp.clone()))]);
    }
}
