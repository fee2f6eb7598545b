//! End to end against `strom serve`: count-per-key over six partitions, exactly-once
//! results read with read_committed, restore of the tail only, a wiped state directory
//! rebuilt from the changelog, and instances SIGKILLed and restarted under load.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    let policy = changelog_policy(&bs);
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
        .stderr(Stdio::null())
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
fn sigkill_run(guarantee: &str) {
    let records_total = env_usize("STROM_STREAMS_KILL_RECORDS", 12_000);
    let kills = env_usize("STROM_STREAMS_KILLS", 4);
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    let bs = broker.bootstrap.clone();
    let policy = changelog_policy(&bs);
    create_topic(&bs, INPUT, PARTITIONS, &[]).unwrap();
    create_topic(&bs, OUTPUT, PARTITIONS, &[]).unwrap();
    let states: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("instance-{i}")))
        .collect();
    let mut children: Vec<Child> = states
        .iter()
        .map(|s| spawn_instance(&bs, s, guarantee, &policy))
        .collect();
    let p = producer(&bs);
    let chunk = records_total / (kills + 1);
    let mut produced = 0;
    // A fixed-seed generator: which instance dies is random but reproducible.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..=kills {
        let end = if round == kills {
            records_total
        } else {
            produced + chunk
        };
        produce(&p, INPUT, &records(produced, end));
        produced = end;
        if round == kills {
            break;
        }
        std::thread::sleep(Duration::from_millis(1500));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = (seed % 3) as usize;
        children[victim].kill().unwrap(); // SIGKILL
        children[victim].wait().unwrap();
        children[victim] = spawn_instance(&bs, &states[victim], guarantee, &policy);
    }
    let want = expected(records_total);
    let counts = wait_for_counts(&bs, OUTPUT, Duration::from_secs(180), |c| {
        c.len() == want.len()
            && want
                .iter()
                .all(|(k, v)| c.get(k).is_some_and(|got| got.0 >= v.0))
    });
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
    sigkill_run("eos");
}

#[test]
fn at_least_once_loses_nothing_under_sigkill() {
    sigkill_run("alos");
}
