//! Exactly-once windows and joins against `strom serve` while instances are SIGKILLed:
//! a tumbling-window count with late records, and a stream–stream join. Every final
//! window is emitted exactly once with exact contents, every late record reaches the
//! dead-letter topic exactly once, every join pair appears exactly once.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use strom_streams::prelude::*;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};
use support::*;

const PARTITIONS: i32 = 3;
const KEYS: usize = 30;
const BASE: i64 = 1_700_000_000_000;
const SIZE: i64 = 1_000;
const GRACE: i64 = 200;
const RECORDS: usize = 3_000;

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("events", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde)
        .windowed_by(TimeWindows::of_size(SIZE).grace(GRACE))
        .aggregate(
            "count-sum",
            || (0i64, 0i64),
            |(c, s), v| (c + 1, s + v),
            JsonSerde::<(i64, i64)>::new(),
        )
        .to_stream()
        .map(|w: Windowed<String>, v: Option<(i64, i64)>| {
            (
                format!("{}@{}", w.key, w.window.start_ms),
                v.unwrap_or_default(),
            )
        })
        .to("window-counts", StringSerde, JsonSerde::<(i64, i64)>::new());
    let orders = b.stream("orders", StringSerde, StringSerde);
    let payments = b.stream("payments", StringSerde, StringSerde);
    orders
        .join(
            &payments,
            |o, p| format!("{o}+{p}"),
            JoinWindows::of_time_difference(100).grace(3_600_000),
            StreamJoined::with("order-payment", StringSerde, StringSerde, StringSerde),
        )
        .to("order-payments", StringSerde, StringSerde);
    b.build().unwrap()
}

fn key(i: usize) -> String {
    format!("k{}", i % KEYS)
}

fn partition(i: usize) -> i32 {
    ((i % KEYS) % PARTITIONS as usize) as i32
}

/// Every 37th event is 5 s older than its neighbours: too late for its window.
fn event_ts(i: usize) -> i64 {
    let ts = BASE + i as i64 * 10;
    if i % 37 == 36 {
        ts - 5_000
    } else {
        ts
    }
}

/// The windows each partition's task emits, and the late events, from the documented
/// semantics (stream time per partition, a window open while stream time < end + grace).
fn model() -> (BTreeMap<String, (i64, i64)>, Vec<i64>) {
    let mut st = [i64::MIN; PARTITIONS as usize];
    let mut windows: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut late = Vec::new();
    for i in 0..RECORDS {
        let (p, ts) = (partition(i) as usize, event_ts(i));
        st[p] = st[p].max(ts);
        let start = ts - ts.rem_euclid(SIZE);
        if st[p] < start + SIZE + GRACE {
            let e = windows.entry(format!("{}@{start}", key(i))).or_default();
            e.0 += 1;
            e.1 += i as i64;
        } else {
            late.push(i as i64);
        }
    }
    (windows, late)
}

fn send(p: &BaseProducer, topic: &str, partition: i32, key: &str, value: &[u8], ts: i64) {
    let mut rec = BaseRecord::to(topic)
        .partition(partition)
        .key(key.as_bytes())
        .payload(value)
        .timestamp(ts);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(_), r)) => {
                rec = r;
                p.poll(Duration::from_millis(20));
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
}

fn produce_range(p: &BaseProducer, from: usize, to: usize) {
    for i in from..to {
        let (part, k) = (partition(i), key(i));
        send(
            p,
            "events",
            part,
            &k,
            &(i as i64).to_be_bytes(),
            event_ts(i),
        );
        let ts = BASE + i as i64 * 10;
        send(p, "orders", part, &k, format!("o{i}").as_bytes(), ts);
        send(p, "payments", part, &k, format!("p{i}").as_bytes(), ts + 5);
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Entry point of the child processes (a no-op in a normal run).
#[test]
fn window_child_instance() {
    let Ok(spec) = std::env::var("STROM_WINDOWS_CHILD") else {
        return;
    };
    let (bs, state) = spec.split_once('|').unwrap();
    init_logs();
    let mut c = StreamsConfig::new("windows-app", bs);
    c.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    c.state_dir = PathBuf::from(state);
    c.processing_errors = ErrorHandler::DeadLetter {
        topic: "late-events".into(),
    };
    c.transaction_timeout = Duration::from_secs(10);
    c.request_timeout = Duration::from_secs(15);
    c.client_config
        .insert("session.timeout.ms".into(), "6000".into());
    c.client_config
        .insert("heartbeat.interval.ms".into(), "500".into());
    let app = KafkaStreams::start(&topology(), c).unwrap();
    let stop = Path::new(state).join("stop");
    while !stop.exists() && app.is_running() {
        std::thread::sleep(Duration::from_millis(50));
    }
    app.close().unwrap();
}

fn spawn_instance(bs: &str, state: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "window_child_instance",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("STROM_WINDOWS_CHILD", format!("{bs}|{}", state.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn strings(topic: &str, bs: &str) -> Vec<(String, Vec<u8>)> {
    read_committed(bs, topic)
        .into_iter()
        .map(|(_, _, k, v)| (String::from_utf8(k.unwrap()).unwrap(), v.unwrap()))
        .collect()
}

fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn windows_and_joins_are_exact_after_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    for t in [
        "events",
        "orders",
        "payments",
        "window-counts",
        "order-payments",
        "late-events",
    ] {
        create_topic(&bs, t, PARTITIONS, &[]).unwrap();
    }
    let states: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("instance-{i}")))
        .collect();
    let mut children: Vec<Child> = states.iter().map(|s| spawn_instance(&bs, s)).collect();
    let p = producer(&bs);
    let batch = RECORDS / 6;
    let mut produced = 0;
    for round in 0..6 {
        produce_range(&p, produced, produced + batch);
        produced += batch;
        let want = produced / 2;
        wait_until("join progress", Duration::from_secs(120), || {
            strings("order-payments", &bs).len() >= want
        });
        if round < 4 {
            let victim = round % 2;
            children[victim].kill().unwrap(); // SIGKILL
            children[victim].wait().unwrap();
            children[victim] = spawn_instance(&bs, &states[victim]);
        }
    }
    // One record per partition far in the future closes every window.
    for part in 0..PARTITIONS {
        send(
            &p,
            "events",
            part,
            "tick",
            &0i64.to_be_bytes(),
            BASE + 10_000_000,
        );
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let (want_windows, want_late) = model();
    assert!(!want_late.is_empty() && want_windows.len() > KEYS);
    wait_until(
        "every window and join pair",
        Duration::from_secs(180),
        || {
            strings("window-counts", &bs).len() >= want_windows.len()
                && strings("order-payments", &bs).len() >= RECORDS
        },
    );
    for s in &states {
        std::fs::write(s.join("stop"), b"").unwrap();
    }
    for c in &mut children {
        c.wait().unwrap();
    }

    let mut windows = BTreeMap::new();
    for (k, v) in strings("window-counts", &bs) {
        let v: (i64, i64) = serde_json::from_slice(&v).unwrap();
        assert!(
            windows.insert(k.clone(), v).is_none(),
            "window {k} emitted twice"
        );
    }
    assert_eq!(windows, want_windows);
    let mut late: Vec<i64> = strings("late-events", &bs)
        .into_iter()
        .map(|(_, v)| i64::from_be_bytes(v.try_into().unwrap()))
        .collect();
    late.sort_unstable();
    assert_eq!(late, want_late, "every late event in the DLQ exactly once");
    let mut pairs: Vec<String> = strings("order-payments", &bs)
        .into_iter()
        .map(|(_, v)| String::from_utf8(v).unwrap())
        .collect();
    pairs.sort();
    let mut want_pairs: Vec<String> = (0..RECORDS).map(|i| format!("o{i}+p{i}")).collect();
    want_pairs.sort();
    assert_eq!(pairs, want_pairs, "every join pair exactly once");
}

/// A foreign-key join of tables with different partition counts (orders 4, customers 2)
/// through strom serve: the internal subscription and response topics get their
/// readers' partition counts and every order ends with its customer's current name.
#[test]
fn foreign_key_join_across_differently_partitioned_tables() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "fk-orders", 4, &[]).unwrap();
    create_topic(&bs, "fk-customers", 2, &[]).unwrap();
    create_topic(&bs, "fk-out", 4, &[]).unwrap();
    let b = StreamsBuilder::new();
    let orders = b.table("fk-orders", StringSerde, StringSerde);
    let customers = b.table("fk-customers", StringSerde, StringSerde);
    orders
        .join_on_foreign_key(
            &customers,
            |o: &String| o.split('|').next().unwrap_or_default().to_string(),
            |o, c| format!("{o}:{c}"),
            FkJoined::with("oc", StringSerde, StringSerde, StringSerde, StringSerde),
        )
        .to("fk-out", StringSerde, StringSerde);
    let mut c = StreamsConfig::new("fk-app", &bs);
    c.state_dir = dir.path().join("state");
    c.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    let app = KafkaStreams::start(&b.build().unwrap(), c).unwrap();
    let p = producer(&bs);
    let customers: Vec<(String, String)> = (0..10)
        .map(|i| (format!("c{i}"), format!("name{i}")))
        .collect();
    produce(&p, "fk-customers", &customers);
    let orders: Vec<(String, String)> = (0..50)
        .map(|i| (format!("o{i}"), format!("c{}|x", i % 10)))
        .collect();
    produce(&p, "fk-orders", &orders);
    // Renames after the orders: every order must end with the new name.
    let renamed: Vec<(String, String)> = (0..10)
        .map(|i| (format!("c{i}"), format!("new{i}")))
        .collect();
    produce(&p, "fk-customers", &renamed);
    let want: BTreeMap<String, String> = (0..50)
        .map(|i| (format!("o{i}"), format!("c{}|x:new{}", i % 10, i % 10)))
        .collect();
    // The latest row per order: the join deletes (tombstones) an order's row while its
    // customer is not known yet, then writes it.
    let mut got = BTreeMap::new();
    wait_until(
        "every order joined with the new name",
        Duration::from_secs(120),
        || {
            assert!(app.is_running(), "the application stopped");
            got.clear();
            for (_, _, k, v) in read_committed(&bs, "fk-out") {
                let k = String::from_utf8(k.unwrap()).unwrap();
                match v {
                    Some(v) => got.insert(k, String::from_utf8(v).unwrap()),
                    None => got.remove(&k),
                };
            }
            got == want
        },
    );
    app.close().unwrap();
}
