//! Co-partitioned inputs while the group changes: a stream–stream join of two
//! 6-partition topics, exactly-once, three instances joining and then leaving one at a
//! time while input flows. The join needs partition *n* of both topics in one task on
//! one member: a pair whose two records were read by different members would never be
//! joined (or be joined twice after the task moved).
//!
//! Asserted, against `strom serve` and Apache Kafka 4.1:
//! - the application chose the new consumer group protocol (KIP-848) with the broker's
//!   `range` assignor (the cluster speaks it);
//! - every observed assignment keeps partition *n* of both topics on one member, and no
//!   rebalance callback left a task split (`split_task_assignments`);
//! - the rebalances were incremental: at each change a member that stays gives up
//!   exactly the partitions that move away from it (an eager rebalance revokes all it
//!   holds), and a joining member gives up nothing;
//! - every pair is joined exactly once (read_committed).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_streams::prelude::*;
use strom_streams::runtime::{GroupProtocol, KafkaStreams, ProcessingGuarantee, StreamsConfig};
use support::*;

const ORDERS: &str = "orders";
const PAYMENTS: &str = "payments";
const PAID: &str = "paid-orders";
const PARTITIONS: i32 = 6;

fn join_topology() -> Topology {
    let b = StreamsBuilder::new();
    let orders = b.stream(ORDERS, StringSerde, StringSerde);
    let payments = b.stream(PAYMENTS, StringSerde, StringSerde);
    orders
        .join(
            &payments,
            |o, p| format!("{o}+{p}"),
            // Both records of a pair are produced together: an hour is ample.
            JoinWindows::of_time_difference(3_600_000),
            StreamJoined::with("paid", StringSerde, StringSerde, StringSerde),
        )
        .to(PAID, StringSerde, StringSerde);
    b.build().unwrap()
}

fn start(bootstrap: &str, state: &Path) -> KafkaStreams {
    let mut c = StreamsConfig::new("paid-orders-app", bootstrap);
    c.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    c.state_dir = state.to_path_buf();
    c.num_stream_threads = 1;
    c.transaction_timeout = Duration::from_secs(10);
    c.request_timeout = Duration::from_secs(15);
    // Classic settings the new protocol leaves to the broker: the runtime drops them.
    c.client_config
        .insert("session.timeout.ms".into(), "6000".into());
    let app = KafkaStreams::start(&join_topology(), c).unwrap();
    let membership = app.membership();
    assert_eq!(
        (membership.protocol, membership.assignor),
        (GroupProtocol::Consumer, "range"),
        "a co-partitioned application on a KIP-848 cluster"
    );
    app
}

/// Produces pairs (`o{i}` → `L{i}` on orders, `R{i}` on payments) in small batches
/// until stopped; returns how many.
fn produce_pairs(bootstrap: String, stop: Arc<AtomicBool>, produced: Arc<AtomicUsize>) {
    let p = producer(&bootstrap);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let batch = i..i + 20;
        let orders: Vec<(String, String)> = batch
            .clone()
            .map(|i| (format!("o{i}"), format!("L{i}")))
            .collect();
        let payments: Vec<(String, String)> =
            batch.map(|i| (format!("o{i}"), format!("R{i}"))).collect();
        produce(&p, ORDERS, &orders);
        produce(&p, PAYMENTS, &payments);
        i += 20;
        produced.store(i, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Input partitions (topic, partition) of one instance.
type Assignment = BTreeSet<(String, i32)>;

/// Partition numbers of each input topic an instance holds.
fn by_topic(assignment: &Assignment) -> BTreeMap<&str, BTreeSet<i32>> {
    let mut out: BTreeMap<&str, BTreeSet<i32>> =
        [(ORDERS, BTreeSet::new()), (PAYMENTS, BTreeSet::new())].into();
    for (topic, p) in assignment {
        let topic = if topic == ORDERS { ORDERS } else { PAYMENTS };
        out.entry(topic).or_default().insert(*p);
    }
    out
}

/// Polls the instances' assignments until the group is converged (every partition on
/// exactly one of them, each holding its share of the 6 slots); every assignment seen
/// on the way must keep partition *n* of both topics together. Returns the final
/// assignments.
fn wait_converged(apps: &[(&str, &KafkaStreams)]) -> Vec<Assignment> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let seen: Vec<Assignment> = apps.iter().map(|(_, app)| app.assignment()).collect();
        for ((name, _), a) in apps.iter().zip(&seen) {
            let t = by_topic(a);
            assert_eq!(
                t[ORDERS], t[PAYMENTS],
                "{name} holds partition n of one input without the other"
            );
        }
        let k = apps.len();
        let owned: usize = seen.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<&(String, i32)> = seen.iter().flatten().collect();
        let balanced = seen.iter().all(|a| {
            let slots = a.len() / 2;
            slots == PARTITIONS as usize / k || slots == PARTITIONS as usize / k + 1
        });
        if owned == 2 * PARTITIONS as usize && union.len() == owned && balanced {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "the group did not converge: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One membership change: `change` starts or closes an instance; then every instance
/// that was there before and is still there must have revoked exactly the partitions
/// it no longer holds.
fn step(
    apps: &mut Vec<(&'static str, KafkaStreams)>,
    change: impl FnOnce(&mut Vec<(&'static str, KafkaStreams)>),
) {
    let before: BTreeMap<&str, (Assignment, u64)> = apps
        .iter()
        .map(|(n, a)| (*n, (a.assignment(), a.metrics().partitions_revoked)))
        .collect();
    change(apps);
    let view: Vec<(&str, &KafkaStreams)> = apps.iter().map(|(n, a)| (*n, a)).collect();
    let after = wait_converged(&view);
    for ((name, app), now) in apps.iter().zip(&after) {
        let revoked = app.metrics().partitions_revoked;
        match before.get(name) {
            Some((was, revoked_before)) => assert_eq!(
                revoked - revoked_before,
                was.difference(now).count() as u64,
                "{name} revoked more than what moved away from it ({was:?} → {now:?})"
            ),
            None => assert_eq!(revoked, 0, "{name} revoked partitions while joining"),
        }
    }
}

fn three_instances_join_and_leave_with_every_pair_joined_once(bootstrap: &str, dir: &Path) {
    for t in [ORDERS, PAYMENTS, PAID] {
        create_topic(bootstrap, t, PARTITIONS, &[]).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicUsize::new(0));
    let producing = {
        let (bs, stop, produced) = (bootstrap.to_string(), stop.clone(), produced.clone());
        std::thread::spawn(move || produce_pairs(bs, stop, produced))
    };
    let state = |name: &str| dir.join(format!("state-{name}"));
    let mut apps: Vec<(&'static str, KafkaStreams)> = Vec::new();
    for name in ["a", "b", "c"] {
        step(&mut apps, |apps| {
            apps.push((name, start(bootstrap, &state(name))))
        });
    }
    let mut metrics = Vec::new();
    for _ in 0..2 {
        step(&mut apps, |apps| {
            let (name, app) = apps.remove(0);
            metrics.push((name, app.metrics()));
            app.close().unwrap();
        });
    }
    stop.store(true, Ordering::Relaxed);
    producing.join().unwrap();
    let pairs = produced.load(Ordering::Relaxed);
    let want: BTreeMap<String, Vec<String>> = (0..pairs)
        .map(|i| (format!("o{i}"), vec![format!("L{i}+R{i}")]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let got = loop {
        let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (_, _, k, v) in read_committed(bootstrap, PAID) {
            got.entry(String::from_utf8(k.unwrap()).unwrap())
                .or_default()
                .push(String::from_utf8(v.unwrap()).unwrap());
        }
        if got.values().map(Vec::len).sum::<usize>() >= pairs || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    for (name, app) in apps {
        metrics.push((name, app.metrics()));
        app.close().unwrap();
    }
    for (name, m) in &metrics {
        assert_eq!(m.split_task_assignments, 0, "{name}: {m:?}");
        assert!(m.records_processed > 0, "{name} processed nothing: {m:?}");
    }
    assert_eq!(got.len(), want.len(), "pairs joined");
    assert_eq!(got, want, "every pair joined exactly once");
}

#[test]
fn co_partitioned_join_rebalances_incrementally_and_joins_every_pair_once_on_strom() {
    let dir = tempfile::tempdir().unwrap();
    let broker = spawn_broker(&dir.path().join("broker"));
    three_instances_join_and_leave_with_every_pair_joined_once(&broker.bootstrap, dir.path());
}

#[test]
fn co_partitioned_join_rebalances_incrementally_and_joins_every_pair_once_on_apache_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = spawn_kafka(&dir.path().join("kafka"));
    three_instances_join_and_leave_with_every_pair_joined_once(&kafka.bootstrap, dir.path());
}
