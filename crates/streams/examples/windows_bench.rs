//! Throughput of windowed aggregations and a stream–stream join: through the in-memory
//! test driver (one core, no broker) and end to end through a broker, exactly-once.
//!
//! ```text
//! strom serve --data-dir /tmp/bench &
//! cargo run --release -p strom-streams --example windows_bench -- 127.0.0.1:9092 200000
//! ```
//! Without a bootstrap address (`-- - 200000`) only the driver cases run. Events: one
//! every millisecond of event time (so windows close as time moves), 8-byte values;
//! 1,000 keys for the windows, and for the join each left event has one partner. Rates are records per second; end to end from the first processed
//! record to the last.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use rdkafka::producer::Producer;
use strom_streams::prelude::*;
use strom_streams::runtime::{ProcessingGuarantee, StateBackendKind, StreamsConfig};

/// Keys of the windowed cases; the join pairs event 2j with 2j + 1 (one partner each).
const KEYS: u64 = 1_000;
const JOIN_KEYS: u64 = 100_000;
const PARTITIONS: i32 = 6;
const MINUTE: i64 = 60_000;

fn key(i: u64, keys: u64) -> String {
    format!("key-{}", (i / 2) % keys)
}

/// The cases: (name, topology over `<prefix>in` (and `<prefix>in2`) writing
/// `<prefix>out`).
fn cases(prefix: &str) -> Vec<(&'static str, Topology, u64)> {
    let (input, input2, out) = (
        format!("{prefix}in"),
        format!("{prefix}in2"),
        format!("{prefix}out"),
    );
    let windowed = |f: &dyn Fn(KGroupedStream<String, i64>) -> KTable<Windowed<String>, i64>| {
        let b = StreamsBuilder::new();
        let g = b
            .stream(&input, StringSerde, I64Serde)
            .group_by_key(StringSerde, I64Serde);
        f(g).to_stream()
            .map(|w: Windowed<String>, n: Option<i64>| (w.key, n.unwrap_or(0)))
            .to(&out, StringSerde, I64Serde);
        b.build().expect("topology")
    };
    let join = {
        let b = StreamsBuilder::new();
        let left = b.stream(&input, StringSerde, I64Serde);
        let right = b.stream(&input2, StringSerde, I64Serde);
        left.join(
            &right,
            |a, b| a + b,
            JoinWindows::of_time_difference(MINUTE),
            StreamJoined::with("j", StringSerde, I64Serde, I64Serde),
        )
        .to(&out, StringSerde, I64Serde);
        b.build().expect("topology")
    };
    vec![
        (
            "tumbling 5 min count",
            windowed(&|g| g.windowed_by(TimeWindows::of_size(5 * MINUTE)).count("w")),
            KEYS,
        ),
        (
            "hopping 10 min / 1 min count",
            windowed(&|g| {
                g.windowed_by(TimeWindows::of_size(10 * MINUTE).advance_by(MINUTE))
                    .count("w")
            }),
            KEYS,
        ),
        (
            "session 30 min gap count",
            windowed(&|g| {
                g.windowed_by_session(SessionWindows::with_inactivity_gap(30 * MINUTE))
                    .count("w")
            }),
            KEYS,
        ),
        ("stream-stream join 1 min", join, JOIN_KEYS),
    ]
}

fn driver_rate(topology: &Topology, keys: u64, n: u64) -> f64 {
    let mut d = TopologyTestDriver::with_config(
        topology,
        DriverConfig {
            auto_commit: false,
            ..DriverConfig::default()
        },
    )
    .expect("driver");
    let inputs = topology.source_topics("test-app");
    let start = Instant::now();
    for i in 0..n {
        let topic = &inputs[(i as usize) % inputs.len()];
        d.pipe(
            topic,
            &StringSerde,
            &I64Serde,
            &key(i, keys),
            &(i as i64),
            i as i64,
        )
        .expect("pipe");
        if i % 10_000 == 0 {
            d.commit().expect("commit");
            d.read_raw("out");
        }
    }
    d.commit().expect("commit");
    n as f64 / start.elapsed().as_secs_f64()
}

fn produce(bootstrap: &str, topics: &[String], keys: u64, n: u64) {
    for t in topics {
        common::admin_create(bootstrap, t, PARTITIONS);
    }
    let p = common::producer(bootstrap);
    for i in 0..n {
        let topic = &topics[(i as usize) % topics.len()];
        let (k, v) = (key(i, keys), (i as i64).to_be_bytes());
        common::send(&p, topic, k.as_bytes(), &v, Some(i as i64 + 1));
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

fn broker_rate(bootstrap: &str, app: &str, topology: &Topology, keys: u64, n: u64) -> f64 {
    produce(bootstrap, &topology.source_topics(app), keys, n);
    let mut config = StreamsConfig::new(app, bootstrap);
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.num_stream_threads = 1;
    config.state_backend = StateBackendKind::Fjall;
    config.state_dir = std::env::temp_dir().join("strom-windows-bench").join(app);
    common::processing_rate(topology, config, n)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bootstrap = args.get(1).cloned().unwrap_or_else(|| "-".into());
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let run = std::process::id();
    let driver_cases = cases("");
    for (i, (name, topology, keys)) in driver_cases.iter().enumerate() {
        let d = driver_rate(topology, *keys, n);
        let line = if bootstrap == "-" {
            format!("{name:<30} driver {d:>10.0} records/s")
        } else {
            // Every case reads fresh topics named after the run and the case.
            let prefix = format!("wb-{run}-{i}-");
            let (_, topology, _) = cases(&prefix).swap_remove(i);
            let b = broker_rate(&bootstrap, &format!("{prefix}app"), &topology, *keys, n);
            format!("{name:<30} driver {d:>10.0} records/s   strom serve, exactly-once {b:>9.0} records/s")
        };
        println!("{line}");
    }
}
