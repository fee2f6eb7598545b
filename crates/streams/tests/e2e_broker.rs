//! End to end against `strom serve`: count-per-key over six partitions, exactly-once
//! results read with read_committed, restore of the tail only, a wiped state directory
//! rebuilt from the changelog, and instances SIGKILLed and restarted under load.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_streams::prelude::*;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};
use support::*;

const INPUT: &str = "input";
const OUTPUT: &str = "counts";
const PARTITIONS: i32 = 6;
const KEYS: usize = 50;

/// Count and sum of values per key: equal counts *and* sums mean every input record
/// contributed exactly once.
fn count_topology() -> Topology {
    let b = StreamsBuilder::new();
    b.stream(INPUT, StringSerde, StringSerde)
        .map_values(|v| v.parse::<i64>().unwrap_or(0))
        .group_by_key(StringSerde, I64Serde)
        .aggregate(
            "count-sum",
            || (0i64, 0i64),
            |_, v, (c, s)| (c + 1, s + v),
            JsonSerde::<(i64, i64)>::new(),
        )
        .to(OUTPUT, StringSerde, JsonSerde::<(i64, i64)>::new());
    b.build().unwrap()
}

fn records(from: usize, to: usize) -> Vec<(String, String)> {
    (from..to)
        .map(|i| (format!("k{}", i % KEYS), i.to_string()))
        .collect()
}

fn expected(n: usize) -> BTreeMap<String, (i64, i64)> {
    let mut m: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (k, v) in records(0, n) {
        let e = m.entry(k).or_default();
        e.0 += 1;
        e.1 += v.parse::<i64>().unwrap();
    }
    m
}

fn config(
    app: &str,
    bootstrap: &str,
    state_dir: &Path,
    guarantee: ProcessingGuarantee,
    policy: &str,
) -> StreamsConfig {
    let mut c = StreamsConfig::new(app, bootstrap);
    c.processing_guarantee = guarantee;
    c.state_dir = state_dir.to_path_buf();
    c.num_stream_threads = 2;
    c.changelog_cleanup_policy = policy.to_string();
    c.transaction_timeout = Duration::from_secs(10);
    c.request_timeout = Duration::from_secs(15);
    c.client_config
        .insert("session.timeout.ms".into(), "6000".into());
    c.client_config
        .insert("heartbeat.interval.ms".into(), "500".into());
    c
}

fn total(counts: &BTreeMap<String, (i64, i64)>) -> i64 {
    counts.values().map(|v| v.0).sum()
}

#[test]
fn count_per_key_exactly_once_then_restore_tail_then_rebuild_from_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    // Changelogs are compacted, as the runtime creates them by default.
    let policy = "compact".to_string();
    create_topic(&bs, INPUT, PARTITIONS, &[]).unwrap();
    create_topic(&bs, OUTPUT, PARTITIONS, &[]).unwrap();
    let p = producer(&bs);
    produce(&p, INPUT, &records(0, 3000));

    let state = dir.path().join("state");
    let topology = count_topology();
    let cfg = config(
        "count-app",
        &bs,
        &state,
        ProcessingGuarantee::ExactlyOnce,
        &policy,
    );
    let app = KafkaStreams::start(&topology, cfg.clone()).unwrap();
    let counts = wait_for_counts(&bs, OUTPUT, Duration::from_secs(60), |c| total(c) >= 3000);
    assert_eq!(counts, expected(3000));
    let first = app.metrics();
    assert_eq!(first.records_processed, 3000);
    assert_eq!(first.restored_records, 0);
    // The same numbers on the Prometheus endpoint, with one store size per task.
    let addr = app.serve_metrics("127.0.0.1:0".parse().unwrap()).unwrap();
    let text = http_get(addr, "/metrics");
    assert!(
        text.contains("strom_streams_records_processed_total{application_id=\"count-app\"} 3000\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "strom_streams_process_latency_seconds_count{application_id=\"count-app\"} 3000\n"
        ),
        "{text}"
    );
    let stores = text
        .lines()
        .filter(|l| l.starts_with("strom_streams_store_keys{"))
        .count();
    assert_eq!(stores, PARTITIONS as usize, "{text}");
    app.close().unwrap();

    // A restart on the same state directory: the stores are a prefix of the committed
    // changelog and already hold all of it, so nothing is replayed.
    let app = KafkaStreams::start(&topology, cfg.clone()).unwrap();
    produce(&p, INPUT, &records(3000, 3600));
    let counts = wait_for_counts(&bs, OUTPUT, Duration::from_secs(60), |c| total(c) >= 3600);
    assert_eq!(counts, expected(3600));
    let second = app.metrics();
    assert_eq!(second.restored_records, 0);
    assert_eq!(second.records_processed, 600);
    app.close().unwrap();

    // A deleted state directory is rebuilt from the changelog: every committed
    // changelog record is replayed, and the counts continue exactly.
    std::fs::remove_dir_all(&state).unwrap();
    let changelog = read_committed(&bs, "count-app-count-sum-changelog");
    let app = KafkaStreams::start(&topology, cfg).unwrap();
    produce(&p, INPUT, &records(3600, 4000));
    let counts = wait_for_counts(&bs, OUTPUT, Duration::from_secs(60), |c| total(c) >= 4000);
    assert_eq!(counts, expected(4000));
    let third = app.metrics();
    assert_eq!(third.restored_records, changelog.len() as u64);
    assert_eq!(third.records_processed, 400);
    app.close().unwrap();
}

/// Entry point of the child processes of the SIGKILL test (a no-op in a normal run).
#[test]
fn child_instance() {
    let Ok(spec) = std::env::var("STROM_STREAMS_CHILD") else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let (bs, state, guarantee, policy) = (parts[0], PathBuf::from(parts[1]), parts[2], parts[3]);
    let guarantee = if guarantee == "eos" {
        ProcessingGuarantee::ExactlyOnce
    } else {
        ProcessingGuarantee::AtLeastOnce
    };
    init_logs();
    let mut cfg = config("kill-app", bs, &state, guarantee, policy);
    cfg.num_stream_threads = 1;
    let app = KafkaStreams::start(&count_topology(), cfg).unwrap();
    let stop = state.join("stop");
    while !stop.exists() && app.is_running() {
        std::thread::sleep(Duration::from_millis(50));
    }
    app.close().unwrap();
}

fn spawn_instance(bs: &str, state: &Path, guarantee: &str, policy: &str) -> Child {
    // STROM_STREAMS_CHILD_LOGS=dir keeps each child's log (RUST_LOG applies).
    let stderr = match std::env::var("STROM_STREAMS_CHILD_LOGS") {
        Ok(dir) => {
            let name = state.file_name().unwrap().to_string_lossy().to_string();
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(&dir).join(format!("{name}.log")))
                .unwrap();
            Stdio::from(file)
        }
        Err(_) => Stdio::null(),
    };
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_instance",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            "STROM_STREAMS_CHILD",
            format!("{bs}|{}|{guarantee}|{policy}", state.display()),
        )
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Three instances over six partitions; instances SIGKILLed and restarted while input
/// is produced. Exactly-once: the final read_committed counts and sums equal the input
/// exactly. At-least-once: nothing is lost (counts may exceed).
fn sigkill_run(guarantee: &str, default_kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    sigkill_run_on(&broker.bootstrap, dir.path(), guarantee, default_kills);
}

fn sigkill_run_on(bs: &str, dir: &Path, guarantee: &str, default_kills: usize) {
    let kills = env_usize("STROM_STREAMS_KILLS", default_kills);
    // With STROM_STREAMS_KILL_RECORDS set, exactly that many records are produced (the
    // kills happen meanwhile); otherwise input flows until the kills are over.
    let exact = std::env::var("STROM_STREAMS_KILL_RECORDS").is_ok();
    let records_max = env_usize("STROM_STREAMS_KILL_RECORDS", 100_000);
    let bs = bs.to_string();
    // Changelogs are compacted, as the runtime creates them by default.
    let policy = "compact".to_string();
    create_topic(&bs, INPUT, PARTITIONS, &[]).unwrap();
    create_topic(&bs, OUTPUT, PARTITIONS, &[]).unwrap();
    let states: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("instance-{i}"))).collect();
    let start = std::time::Instant::now();
    let mut children: Vec<Child> = states
        .iter()
        .map(|s| spawn_instance(&bs, s, guarantee, &policy))
        .collect();
    // Input arrives steadily until the kills are over, so that kills hit open
    // transactions, restores and rebalances.
    let stop = Arc::new(AtomicBool::new(false));
    let producing = {
        let (bs, stop) = (bs.clone(), stop.clone());
        std::thread::spawn(move || {
            let p = producer(&bs);
            let mut produced = 0;
            while (exact || !stop.load(Ordering::Relaxed)) && produced < records_max {
                let end = (produced + 100).min(records_max);
                produce(&p, INPUT, &records(produced, end));
                produced = end;
                std::thread::sleep(Duration::from_millis(20));
            }
            produced
        })
    };
    // A fixed-seed generator: which instance dies, and when, is random but reproducible.
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut seen = 0;
    for round in 0..kills {
        // Kill only once the group is processing again, at a random moment after.
        let progressed = wait_for_counts(&bs, OUTPUT, Duration::from_secs(90), |c| total(c) > seen);
        seen = total(&progressed);
        std::thread::sleep(Duration::from_millis(next() % 1500));
        let victim = (next() % 3) as usize;
        eprintln!(
            "round {round}: SIGKILL instance {victim} at {:?}, {seen} counted",
            start.elapsed()
        );
        children[victim].kill().unwrap(); // SIGKILL
        children[victim].wait().unwrap();
        children[victim] = spawn_instance(&bs, &states[victim], guarantee, &policy);
    }
    stop.store(true, Ordering::Relaxed);
    let records_total = producing.join().unwrap();
    let want = expected(records_total);
    let counts = wait_for_counts(&bs, OUTPUT, Duration::from_secs(180), |c| {
        c.len() == want.len()
            && want
                .iter()
                .all(|(k, v)| c.get(k).is_some_and(|got| got.0 >= v.0))
    });
    eprintln!(
        "{guarantee}: {records_total} records, {kills} kills, converged after {:?}",
        start.elapsed()
    );
    for s in &states {
        std::fs::write(s.join("stop"), b"").unwrap();
    }
    for c in &mut children {
        c.wait().unwrap();
    }
    if guarantee == "eos" {
        assert_eq!(
            counts, want,
            "exactly-once: counts and sums equal the input"
        );
    } else {
        for (k, (count, _)) in &want {
            let got = counts.get(k).map_or(0, |v| v.0);
            assert!(
                got >= *count,
                "at-least-once lost records of {k}: {got} < {count}"
            );
        }
    }
}

#[test]
fn exactly_once_survives_sigkill_of_instances() {
    sigkill_run("eos", 5);
}

#[test]
fn at_least_once_loses_nothing_under_sigkill() {
    sigkill_run("alos", 3);
}

#[test]
fn start_checks_sources_and_co_partitioning_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "left", 2, &[]).unwrap();
    create_topic(&bs, "right", 3, &[]).unwrap();
    let b = StreamsBuilder::new();
    let left = b.stream("left", StringSerde, StringSerde);
    let right = b.stream("right", StringSerde, StringSerde);
    left.merge(&right)
        .group_by_key(StringSerde, StringSerde)
        .count("merged-counts")
        .to("out", StringSerde, I64Serde);
    let topology = b.build().unwrap();
    let cfg = config(
        "copart-app",
        &bs,
        &dir.path().join("state"),
        ProcessingGuarantee::AtLeastOnce,
        "compact",
    );
    let err = KafkaStreams::start(&topology, cfg.clone()).err().unwrap();
    assert_eq!(
        err.to_string(),
        r#"topics ["left", "right"] must be co-partitioned (same partition count) but have [2, 3] partitions"#
    );

    let b = StreamsBuilder::new();
    b.stream("missing", StringSerde, StringSerde)
        .to("out", StringSerde, StringSerde);
    let err = KafkaStreams::start(&b.build().unwrap(), cfg).err().unwrap();
    assert_eq!(err.to_string(), "source topic missing does not exist");
}

/// Fails through a circuit breaker while the shared switch is off.
struct Flaky {
    up: Arc<AtomicBool>,
    breaker: CircuitBreaker,
}

impl Processor<String, String, String, String> for Flaky {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let up = self.up.load(Ordering::Relaxed);
        let v = self.breaker.call(ctx.wall_clock_ms(), || {
            if up {
                Ok(r.value.clone())
            } else {
                Err("down")
            }
        })?;
        ctx.forward(Record::new(r.key, v, r.timestamp_ms));
        Ok(())
    }
}

#[test]
fn an_open_circuit_breaker_pauses_partitions_without_losing_or_reordering_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "calls", 2, &[]).unwrap();
    create_topic(&bs, "called", 2, &[]).unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let b = StreamsBuilder::new();
    let u = up.clone();
    b.stream("calls", StringSerde, StringSerde)
        .process(
            move || Flaky {
                up: u.clone(),
                breaker: CircuitBreaker::new(BreakerConfig {
                    failure_rate_threshold: 0.5,
                    window: 4,
                    min_calls: 2,
                    cool_down_ms: 500,
                    retry_backoff_ms: 50,
                }),
            },
            &[],
        )
        .to("called", StringSerde, StringSerde);
    let cfg = config(
        "breaker-app",
        &bs,
        &dir.path().join("state"),
        ProcessingGuarantee::ExactlyOnce,
        "compact",
    );
    let app = KafkaStreams::start(&b.build().unwrap(), cfg).unwrap();
    let input: Vec<(String, String)> = (0..200)
        .map(|i| (format!("k{}", i % 4), format!("{i:03}")))
        .collect();
    produce(&producer(&bs), "calls", &input);
    // Down for a while: records wait in paused partitions, the instance stays in its group.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while app.metrics().retries < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let paused = app.metrics();
    assert!(paused.retries >= 10, "{paused:?}");
    assert_eq!(paused.records_processed, 0);
    up.store(true, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = read_committed(&bs, "called");
    while out.len() < input.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        out = read_committed(&bs, "called");
    }
    let after = app.metrics();
    assert_eq!(
        after.rebalances, paused.rebalances,
        "the pause must not cost a rebalance"
    );
    app.close().unwrap();
    // Every record exactly once, in order per key.
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, _, k, v) in out {
        got.entry(String::from_utf8(k.unwrap()).unwrap())
            .or_default()
            .push(String::from_utf8(v.unwrap()).unwrap());
    }
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in input {
        want.entry(k).or_default().push(v);
    }
    assert_eq!(got, want);
}

#[test]
fn word_count_through_a_repartition_topic_exactly_once_and_purged_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "lines", 3, &[]).unwrap();
    create_topic(&bs, "word-counts", 3, &[]).unwrap();
    let b = StreamsBuilder::new();
    b.stream("lines", Nullable(StringSerde), StringSerde)
        .flat_map_values(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w| w.clone(), StringSerde, StringSerde)
        .count("word-count-store")
        .to("word-counts", StringSerde, I64Serde);
    let topology = b.build().unwrap();
    let repartition = topology.repartition_topics("wc-app");
    assert_eq!(repartition.len(), 1);
    let cfg = config(
        "wc-app",
        &bs,
        &dir.path().join("state"),
        ProcessingGuarantee::ExactlyOnce,
        "compact",
    );
    let app = KafkaStreams::start(&topology, cfg).unwrap();
    let words = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let lines: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("line{i}"),
                format!("{} {}", words[i % 5], words[(i * 7) % 5]),
            )
        })
        .collect();
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for (_, l) in &lines {
        for w in l.split_whitespace() {
            *want.entry(w.to_string()).or_default() += 1;
        }
    }
    produce(&producer(&bs), "lines", &lines);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut got: BTreeMap<String, i64>;
    loop {
        got = BTreeMap::new();
        for (_, _, k, v) in read_committed(&bs, "word-counts") {
            let v: [u8; 8] = v.unwrap().try_into().unwrap();
            got.insert(
                String::from_utf8(k.unwrap()).unwrap(),
                i64::from_be_bytes(v),
            );
        }
        if got == want || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(got, want);
    // The repartition topic has the sources' partition count and is purged once its
    // records are committed.
    let c: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    use rdkafka::consumer::Consumer;
    let md = c
        .fetch_metadata(Some(&repartition[0]), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let purged = loop {
        let low: i64 = (0..3)
            .map(|p| {
                c.fetch_watermarks(&repartition[0], p, Duration::from_secs(10))
                    .unwrap()
                    .0
            })
            .sum();
        if low > 0 || std::time::Instant::now() > deadline {
            break low;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(purged > 0, "repartition topic never purged");
    app.close().unwrap();
}

#[test]
fn global_table_is_loaded_before_processing_and_needs_no_co_partitioning() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "customers", 2, &[]).unwrap();
    create_topic(&bs, "orders", 3, &[]).unwrap();
    create_topic(&bs, "enriched", 3, &[]).unwrap();
    let p = producer(&bs);
    let customers: Vec<(String, String)> = (0..20)
        .map(|i| (format!("c{i}"), format!("name{i}")))
        .collect();
    produce(&p, "customers", &customers);
    let orders: Vec<(String, String)> = (0..60)
        .map(|i| (format!("o{i}"), format!("c{}", i % 20)))
        .collect();
    produce(&p, "orders", &orders);
    let b = StreamsBuilder::new();
    let table = b.global_table("customers", StringSerde, StringSerde);
    b.stream("orders", StringSerde, StringSerde)
        .join_global(&table, |_, c| c.clone(), |c, name| format!("{c}:{name}"))
        .to("enriched", StringSerde, StringSerde);
    let cfg = config(
        "global-app",
        &bs,
        &dir.path().join("state"),
        ProcessingGuarantee::ExactlyOnce,
        "compact",
    );
    let app = KafkaStreams::start(&b.build().unwrap(), cfg).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = read_committed(&bs, "enriched");
    while out.len() < orders.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        out = read_committed(&bs, "enriched");
    }
    app.close().unwrap();
    let got: BTreeMap<String, String> = out
        .into_iter()
        .map(|(_, _, k, v)| {
            (
                String::from_utf8(k.unwrap()).unwrap(),
                String::from_utf8(v.unwrap()).unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = (0..60)
        .map(|i| (format!("o{i}"), format!("c{0}:name{0}", i % 20)))
        .collect();
    assert_eq!(got, want);
}

/// An app that labels each order with its customer's name from a global table (or
/// `?` when the table has no such customer).
fn labelled_orders_topology() -> Topology {
    let b = StreamsBuilder::new();
    let table = b.global_table("customers", StringSerde, StringSerde);
    b.stream("orders", StringSerde, StringSerde)
        .left_join_global(
            &table,
            |_, c| c.clone(),
            |c, name: Option<&String>| format!("{c}:{}", name.map_or("?", String::as_str)),
        )
        .to("labelled", StringSerde, StringSerde);
    b.build().unwrap()
}

/// Produces one order per customer id and waits until all of them (and the `before`
/// earlier ones) are labelled; returns the labels of these orders.
fn label_orders(
    app: &KafkaStreams,
    bs: &str,
    customers: std::ops::Range<usize>,
    before: usize,
    tag: &str,
) -> BTreeMap<String, String> {
    let orders: Vec<(String, String)> = customers
        .clone()
        .map(|i| (format!("o-{tag}-{i}"), format!("c{i}")))
        .collect();
    produce(&producer(bs), "orders", &orders);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = read_committed(bs, "labelled");
        if out.len() >= before + orders.len() || std::time::Instant::now() > deadline {
            assert!(app.metrics().records_processed >= orders.len() as u64);
            return out
                .into_iter()
                .map(|(_, _, k, v)| {
                    (
                        String::from_utf8(k.unwrap()).unwrap(),
                        String::from_utf8(v.unwrap()).unwrap(),
                    )
                })
                .filter(|(k, _)| k.starts_with(&format!("o-{tag}-")))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn customers(range: std::ops::Range<usize>, name: &str) -> Vec<(String, String)> {
    range
        .map(|i| (format!("c{i}"), format!("{name}{i}")))
        .collect()
}

#[test]
fn global_table_restarts_from_its_checkpoint_reading_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "customers", 2, &[]).unwrap();
    create_topic(&bs, "orders", 3, &[]).unwrap();
    create_topic(&bs, "labelled", 3, &[]).unwrap();
    produce(&producer(&bs), "customers", &customers(0..20, "name"));
    let state = dir.path().join("state");
    let start = |state: &Path| {
        let cfg = config(
            "checkpoint-app",
            &bs,
            state,
            ProcessingGuarantee::ExactlyOnce,
            "compact",
        );
        KafkaStreams::start(&labelled_orders_topology(), cfg).unwrap()
    };
    let want = |range: std::ops::Range<usize>, tag: &str, name: &str| -> BTreeMap<String, String> {
        range
            .map(|i| (format!("o-{tag}-{i}"), format!("c{i}:{name}{i}")))
            .collect()
    };

    // First start: the whole topic is read, then checkpointed.
    let app = start(&state);
    assert_eq!(app.metrics().global_records_read, 20);
    assert_eq!(
        label_orders(&app, &bs, 0..20, 0, "a"),
        want(0..20, "a", "name")
    );
    app.close().unwrap();

    // Restart on the same state directory: only the 5 new customers are read, and the
    // 20 old ones come from the checkpoint.
    produce(&producer(&bs), "customers", &customers(20..25, "name"));
    let app = start(&state);
    assert_eq!(app.metrics().global_records_read, 5);
    assert_eq!(
        label_orders(&app, &bs, 0..25, 20, "b"),
        want(0..25, "b", "name")
    );
    app.close().unwrap();

    // A fresh state directory reads everything again.
    let app = start(&dir.path().join("state-2"));
    assert_eq!(app.metrics().global_records_read, 25);
    app.close().unwrap();

    // The topic recreated with fewer records: the checkpoint no longer fits, so it is
    // dropped and the table read from the beginning (old customers are gone).
    delete_topic(&bs, "customers");
    create_topic(&bs, "customers", 2, &[]).unwrap();
    produce(&producer(&bs), "customers", &customers(0..3, "new"));
    let app = start(&state);
    assert_eq!(app.metrics().global_records_read, 3);
    let mut expected = want(0..3, "c", "new");
    expected.extend((3..25).map(|i| (format!("o-c-{i}"), format!("c{i}:?"))));
    assert_eq!(label_orders(&app, &bs, 0..25, 45, "c"), expected);
    app.close().unwrap();
}

/// The same exactly-once SIGKILL run against Apache Kafka 4.1 (single-node KRaft from
/// Maven Central's `org.apache.kafka:kafka_2.13`): the library is a Kafka client, not a
/// strom feature.
#[test]
fn exactly_once_survives_sigkill_of_instances_on_apache_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = spawn_kafka(&dir.path().join("kafka"));
    sigkill_run_on(&kafka.bootstrap, dir.path(), "eos", 4);
}

/// Two co-partitioned inputs merged into one count: partition n of both topics must be
/// one task on one instance, or two instances would each count half of a key.
#[test]
fn co_partitioned_inputs_land_in_one_task_across_two_instances() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    for t in ["left-in", "right-in", "merged-counts"] {
        create_topic(&bs, t, 4, &[]).unwrap();
    }
    let topology = || {
        let b = StreamsBuilder::new();
        let left = b.stream("left-in", StringSerde, StringSerde);
        let right = b.stream("right-in", StringSerde, StringSerde);
        left.merge(&right)
            .group_by_key(StringSerde, StringSerde)
            .count("merged")
            .to("merged-counts", StringSerde, I64Serde);
        b.build().unwrap()
    };
    let start = |i: usize| {
        let mut cfg = config(
            "copart-two",
            &bs,
            &dir.path().join(format!("state-{i}")),
            ProcessingGuarantee::ExactlyOnce,
            "compact",
        );
        cfg.num_stream_threads = 1;
        KafkaStreams::start(&topology(), cfg).unwrap()
    };
    let (a, b) = (start(0), start(1));
    let p = producer(&bs);
    let left: Vec<(String, String)> = (0..400)
        .map(|i| (format!("k{}", i % 40), "l".to_string()))
        .collect();
    let right: Vec<(String, String)> = (0..200)
        .map(|i| (format!("k{}", i % 40), "r".to_string()))
        .collect();
    produce(&p, "left-in", &left);
    produce(&p, "right-in", &right);
    let want: BTreeMap<String, i64> = (0..40).map(|k| (format!("k{k}"), 15)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut got: BTreeMap<String, i64>;
    loop {
        got = BTreeMap::new();
        for (_, _, k, v) in read_committed(&bs, "merged-counts") {
            let v: [u8; 8] = v.unwrap().try_into().unwrap();
            got.insert(
                String::from_utf8(k.unwrap()).unwrap(),
                i64::from_be_bytes(v),
            );
        }
        if got == want || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ma, mb) = (a.metrics(), b.metrics());
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(got, want);
    // Both instances worked.
    assert!(
        ma.records_processed > 0 && mb.records_processed > 0,
        "{ma:?} {mb:?}"
    );
}

/// Scale out and back: tasks move to a second instance (their state follows through the
/// changelog) and come back; the first instance then replays exactly the changelog
/// records the second one committed — the delta, not the whole changelog.
#[test]
fn tasks_moving_back_restore_only_the_delta() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, INPUT, PARTITIONS, &[]).unwrap();
    create_topic(&bs, OUTPUT, PARTITIONS, &[]).unwrap();
    let start = |i: usize| {
        let mut cfg = config(
            "delta-app",
            &bs,
            &dir.path().join(format!("state-{i}")),
            ProcessingGuarantee::ExactlyOnce,
            "compact",
        );
        cfg.num_stream_threads = 1;
        KafkaStreams::start(&count_topology(), cfg).unwrap()
    };
    let p = producer(&bs);
    let a = start(0);
    produce(&p, INPUT, &records(0, 2000));
    assert_eq!(
        wait_for_counts(&bs, OUTPUT, Duration::from_secs(60), |c| total(c) >= 2000),
        expected(2000)
    );
    let b = start(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while b.metrics().rebalances == 0 || a.metrics().rebalances < 2 {
        assert!(std::time::Instant::now() < deadline, "no rebalance");
        std::thread::sleep(Duration::from_millis(100));
    }
    produce(&p, INPUT, &records(2000, 4000));
    assert_eq!(
        wait_for_counts(&bs, OUTPUT, Duration::from_secs(60), |c| total(c) >= 4000),
        expected(4000)
    );
    let (a_mid, b_end) = (a.metrics(), b.metrics());
    assert!(
        b_end.records_processed > 0,
        "the second instance got no task: {b_end:?}"
    );
    assert!(
        b_end.restored_records > 0,
        "its tasks' state did not follow: {b_end:?}"
    );
    b.close().unwrap();
    produce(&p, INPUT, &records(4000, 5000));
    assert_eq!(
        wait_for_counts(&bs, OUTPUT, Duration::from_secs(60), |c| total(c) >= 5000),
        expected(5000)
    );
    let a_end = a.metrics();
    a.close().unwrap();
    assert_eq!(
        a_end.restored_records - a_mid.restored_records,
        b_end.changelog_records
    );
}

/// Passes every record but two: `hold` fails until every other passable record went
/// through (so it can only pass if the input kept flowing while it waited in the retry
/// topics), `poison` fails on every attempt.
struct Charge {
    passed: Arc<std::sync::atomic::AtomicUsize>,
    others: usize,
}

impl Processor<String, String, String, String> for Charge {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), ProcessError> {
        if r.value == "poison" {
            return Err(ProcessError::user("card declined"));
        }
        if r.value == "hold" {
            if self.passed.load(Ordering::SeqCst) < self.others {
                return Err(ProcessError::user("gateway busy"));
            }
        } else {
            self.passed.fetch_add(1, Ordering::SeqCst);
        }
        let value = format!("{}@{}", r.value, ctx.attempt());
        ctx.forward(Record { value, ..r });
        Ok(())
    }
}

#[test]
fn retry_topics_let_the_input_flow_exactly_once_and_dead_letter_after_the_last_tier() {
    const RECORDS: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    create_topic(&bs, "payments", 3, &[]).unwrap();
    create_topic(&bs, "charged", 3, &[]).unwrap();
    create_topic(&bs, "payments-dlq", 1, &[]).unwrap();
    let input: Vec<(String, String)> = (0..RECORDS)
        .map(|i| {
            let value = match i {
                0 => s("hold"),
                1 => s("poison"),
                _ => format!("v{i}"),
            };
            (format!("k{}", i % 12), value)
        })
        .collect();
    produce(&producer(&bs), "payments", &input);
    let passed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = StreamsBuilder::new();
    let p = passed.clone();
    // 7.75 s of backoff in all: ample time for the other records to pass.
    let retry = RetryTopics::new("charge").backoff_ms([250, 500, 1_000, 2_000, 4_000]);
    b.stream("payments", StringSerde, StringSerde)
        .process_with_retry_topics(
            move || Charge {
                passed: p.clone(),
                others: RECORDS - 2,
            },
            &[],
            retry.clone(),
            StringSerde,
            StringSerde,
        )
        .to("charged", StringSerde, StringSerde);
    let mut cfg = config(
        "retry-app",
        &bs,
        &dir.path().join("state"),
        ProcessingGuarantee::ExactlyOnce,
        "compact",
    );
    cfg.processing_errors = ErrorHandler::DeadLetter {
        topic: s("payments-dlq"),
    };
    let app = KafkaStreams::start(&b.build().unwrap(), cfg).unwrap();
    for t in retry.topics("retry-app") {
        assert_eq!(partition_count(&bs, &t), Some(3), "{t}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let (mut out, mut dlq) = (Vec::new(), Vec::new());
    while std::time::Instant::now() < deadline {
        out = read_committed_records(&bs, "charged");
        dlq = read_committed_records(&bs, "payments-dlq");
        if out.len() >= RECORDS - 1 && !dlq.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let metrics = app.metrics();
    app.close().unwrap();
    // Every record but the poisoned one exactly once; the held one after a retry.
    let text = |b: &Option<Vec<u8>>| String::from_utf8(b.clone().unwrap()).unwrap();
    let mut got: Vec<(String, String)> =
        out.iter().map(|r| (text(&r.key), text(&r.value))).collect();
    got.sort();
    let mut want: Vec<(String, String)> = input
        .iter()
        .filter(|(_, v)| v != "poison")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    want.sort();
    let attempts: Vec<String> = got.iter().map(|(_, v)| v.clone()).collect();
    let held: Vec<&String> = attempts.iter().filter(|v| v.starts_with("hold@")).collect();
    assert_eq!(held.len(), 1, "{attempts:?}");
    assert_ne!(held[0], "hold@1", "the held record passed on a retry");
    let mut got: Vec<(String, String)> = got
        .into_iter()
        .map(|(k, v)| (k, v.split('@').next().unwrap().to_string()))
        .collect();
    got.sort();
    assert_eq!(got, want);
    // The held record comes out behind records of its partition read after it.
    let held_out = out
        .iter()
        .find(|r| text(&r.value).starts_with("hold@"))
        .unwrap();
    assert!(out
        .iter()
        .any(|r| r.partition == held_out.partition && r.offset < held_out.offset));
    // The poisoned record in the dead-letter topic after the last tier, naming its origin.
    let source = read_committed_records(&bs, "payments");
    let poison = source.iter().find(|r| text(&r.value) == "poison").unwrap();
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!((text(&d.key), text(&d.value)), (s("k1"), s("poison")));
    assert_eq!(d.header("strom.error.kind").as_deref(), Some("processing"));
    assert_eq!(d.header("strom.error").as_deref(), Some("card declined"));
    assert_eq!(
        d.header("strom.original.topic").as_deref(),
        Some("payments")
    );
    assert_eq!(
        d.header("strom.original.partition"),
        Some(poison.partition.to_string())
    );
    assert_eq!(
        d.header("strom.original.offset"),
        Some(poison.offset.to_string())
    );
    assert_eq!(d.header("strom.retry.attempts").as_deref(), Some("6"));
    assert_eq!(d.header("strom.retry.due.ms"), None);
    assert!(metrics.retry_topic_records >= 6, "{metrics:?}");
}

fn s(x: &str) -> String {
    x.to_string()
}
