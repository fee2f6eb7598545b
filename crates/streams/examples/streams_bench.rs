//! Throughput of strom-streams against the raw consume+produce rate of the same broker,
//! in the same run: stateless topic→topic and count-per-key, at-least-once and
//! exactly-once; plus the in-memory test driver's rate for a map/filter chain.
//!
//! ```text
//! strom serve --data-dir /tmp/bench &
//! cargo run --release -p strom-streams --example streams_bench -- 127.0.0.1:9092 200000
//! ```
//! Prints one line per case and a JSON summary. Rates are records per second measured
//! from the first processed record (group join excluded) to the last. Experiments:
//! `BENCH_COMMIT_MS` (commit interval) and `BENCH_CLIENT="k=v,…"` (librdkafka settings).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::Message;
use strom_streams::prelude::*;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StateBackendKind, StreamsConfig};

const PARTITIONS: i32 = 6;

fn raw(bootstrap: &str, input: &str, n: u64, run: &str) -> f64 {
    let out = format!("raw-out-{run}");
    common::admin_create(bootstrap, &out, PARTITIONS);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("raw-{run}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()
        .expect("consumer");
    c.subscribe(&[input]).expect("subscribe");
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        // As the library's producers: idempotent (at most 5 requests in flight).
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let mut seen = 0u64;
    let mut start = None;
    while seen < n {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            start.get_or_insert_with(Instant::now);
            common::send(
                &p,
                &out,
                m.key().unwrap_or_default(),
                m.payload().unwrap_or_default(),
                None,
            );
            seen += 1;
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    n as f64 / start.map_or(1.0, |s| s.elapsed().as_secs_f64())
}

fn run_app(
    bootstrap: &str,
    topology: &Topology,
    app: &str,
    guarantee: ProcessingGuarantee,
    n: u64,
) -> f64 {
    let mut config = StreamsConfig::new(app, bootstrap);
    config.processing_guarantee = guarantee;
    // BENCH_COMMIT_MS sets the commit interval (default 100 ms, the library's default).
    if let Some(ms) = std::env::var("BENCH_COMMIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.commit_interval = Duration::from_millis(ms);
    }
    // BENCH_CLIENT="k=v,k=v" adds librdkafka settings (experiments).
    for kv in std::env::var("BENCH_CLIENT")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        if let Some((k, v)) = kv.split_once('=') {
            config.client_config.insert(k.to_string(), v.to_string());
        }
    }
    // One thread, as the raw loop and the Kafka Streams application: one member.
    config.num_stream_threads = 1;
    config.state_backend = StateBackendKind::Fjall;
    config.state_dir = std::env::temp_dir().join("strom-streams-bench").join(app);
    common::processing_rate(topology, config, n)
}

/// Restore speed: a store with one key per input record is built, the state directory
/// deleted, and the instance restarted; compared with a raw read_committed consumer
/// reading the same changelog topic.
fn restore_rates(bootstrap: &str, input: &str, n: u64, run: &str) -> (f64, f64) {
    let app = format!("bench-restore-{run}");
    let b = StreamsBuilder::new();
    b.stream(input, StringSerde, BytesSerde)
        .map(|k, v| (format!("{k}-{}", v.len()), v))
        .process(
            || Unique {
                store: StoreHandle::new("unique", StringSerde, I64Serde),
                n: 0,
            },
            &["unique"],
        )
        .foreach(|_, _| {});
    let store = StoreHandle::new("unique", StringSerde, I64Serde);
    b.add_store(&store);
    let topology = b.build().expect("topology");
    run_app(
        bootstrap,
        &topology,
        &app,
        ProcessingGuarantee::ExactlyOnce,
        n,
    );
    let state_dir = std::env::temp_dir().join("strom-streams-bench").join(&app);
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut config = StreamsConfig::new(&app, bootstrap);
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.state_dir = state_dir;
    let streams = KafkaStreams::start(&topology, config).expect("start");
    let (mut t0, mut r0) = (None, 0);
    let rate = loop {
        let m = streams.metrics();
        if m.restored_records > 0 && t0.is_none() {
            t0 = Some(Instant::now());
            r0 = m.restored_records;
        }
        if let Some(t) = t0 {
            if m.restore_remaining == 0 && m.restored_records > r0 {
                break (m.restored_records - r0) as f64 / t.elapsed().as_secs_f64();
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    streams.close().expect("close");
    // The same changelog, read by a plain consumer.
    let changelog = Topology::changelog_topic(&app, "unique");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("raw-read-{run}"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&changelog, p, rdkafka::Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let (mut eof, mut read, mut start) = (0, 0u64, None);
    while eof < PARTITIONS {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                start.get_or_insert_with(Instant::now);
                read += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            _ => {}
        }
    }
    (
        rate,
        read as f64 / start.map_or(1.0, |s: Instant| s.elapsed().as_secs_f64()),
    )
}

/// Stores every record under its own key.
struct Unique {
    store: StoreHandle<String, i64>,
    n: i64,
}

impl Processor<String, Vec<u8>, String, Vec<u8>> for Unique {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Vec<u8>>,
        r: Record<String, Vec<u8>>,
    ) -> Result<(), ProcessError> {
        self.n += 1;
        let key = format!("{}-{}", r.key, self.n);
        ctx.store(&self.store)?.put(&key, &self.n)?;
        Ok(())
    }
}

fn driver_rate(n: u64) -> f64 {
    let b = StreamsBuilder::new();
    b.stream("in", BytesSerde, BytesSerde)
        .map_values(|v| v.len() as i64)
        .filter(|_, n| *n % 2 == 0)
        .map_values(|n| n * 2)
        .to("out", BytesSerde, I64Serde);
    let mut d = TopologyTestDriver::with_config(
        &b.build().expect("topology"),
        DriverConfig {
            auto_commit: false,
            ..DriverConfig::default()
        },
    )
    .expect("driver");
    let start = Instant::now();
    for i in 0..n {
        d.pipe_raw(
            "in",
            Some(i.to_be_bytes().to_vec()),
            Some(vec![0; (i % 64) as usize]),
            i as i64,
            Vec::new(),
        )
        .expect("pipe");
        if i % 10_000 == 0 {
            d.commit().expect("commit");
            d.read_raw("out");
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// `count-app BOOTSTRAP INPUT OUTPUT N alos|eos`: only the count-per-key application in
/// this process (the side-by-side benchmark compares its rate and memory with Kafka
/// Streams').
fn count_app(args: &[String]) {
    let (bootstrap, input, output) = (&args[0], &args[1], &args[2]);
    let n: u64 = args[3].parse().expect("records");
    let guarantee = if args[4] == "eos" {
        ProcessingGuarantee::ExactlyOnce
    } else {
        ProcessingGuarantee::AtLeastOnce
    };
    let b = StreamsBuilder::new();
    b.stream(input, StringSerde, BytesSerde)
        .group_by_key(StringSerde, BytesSerde)
        .count("counts")
        .to(output, StringSerde, I64Serde);
    let app = format!("strom-count-{}-{}", args[4], std::process::id());
    let rate = run_app(bootstrap, &b.build().expect("topology"), &app, guarantee, n);
    println!(
        "{{\"records_per_s\": {rate:.0}, \"peak_rss_kb\": {}}}",
        peak_rss_kb()
    );
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    match all.first().map(String::as_str) {
        Some("count-app") => return count_app(&all[1..]),
        Some("produce") => {
            let (bootstrap, topic) = (&all[1], &all[2]);
            let n: u64 = all[3].parse().expect("records");
            common::admin_create(bootstrap, topic, PARTITIONS);
            let p = common::producer(bootstrap);
            let value = vec![b'x'; 100];
            for i in 0..n {
                common::send(&p, topic, format!("k{}", i % 1000).as_bytes(), &value, None);
            }
            p.flush(Duration::from_secs(60)).expect("flush");
            return;
        }
        _ => {}
    }
    let mut args = all.into_iter();
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let run = format!("{}", std::process::id());
    let input = format!("bench-in-{run}");
    common::admin_create(&bootstrap, &input, PARTITIONS);
    let p = common::producer(&bootstrap);
    let value = vec![b'x'; 100];
    for i in 0..n {
        common::send(
            &p,
            &input,
            format!("k{}", i % 1000).as_bytes(),
            &value,
            None,
        );
    }
    p.flush(Duration::from_secs(60)).expect("flush");

    let raw_rate = raw(&bootstrap, &input, n, &run);
    println!("raw consume+produce           {raw_rate:>10.0} records/s");
    let mut results = vec![("raw", raw_rate)];

    let stateless = {
        let b = StreamsBuilder::new();
        b.stream(&input, StringSerde, BytesSerde)
            .filter(|_, v| !v.is_empty())
            .to(&format!("stateless-out-{run}"), StringSerde, BytesSerde);
        b.build().expect("topology")
    };
    let counting = {
        let b = StreamsBuilder::new();
        b.stream(&input, StringSerde, BytesSerde)
            .group_by_key(StringSerde, BytesSerde)
            .count("bench-counts")
            .to(&format!("count-out-{run}"), StringSerde, I64Serde);
        b.build().expect("topology")
    };
    for (name, topology) in [("stateless", &stateless), ("count", &counting)] {
        for (g, guarantee) in [
            ("alos", ProcessingGuarantee::AtLeastOnce),
            ("eos", ProcessingGuarantee::ExactlyOnce),
        ] {
            let app = format!("bench-{name}-{g}-{run}");
            let rate = run_app(&bootstrap, topology, &app, guarantee, n);
            println!(
                "{name:<9} {g:<4}                {rate:>10.0} records/s  ({:.2}x raw)",
                rate / raw_rate
            );
            results.push((Box::leak(format!("{name}_{g}").into_boxed_str()), rate));
        }
    }
    let (restore, raw_read) = restore_rates(&bootstrap, &input, n, &run);
    println!(
        "restore (wiped state)         {restore:>10.0} records/s  ({:.2}x raw consume {raw_read:.0})",
        restore / raw_read
    );
    results.push(("restore", restore));
    results.push(("raw_consume_changelog", raw_read));
    let d = driver_rate(n.max(100_000));
    println!("test driver map/filter chain  {d:>10.0} records/s");
    results.push(("driver_map_filter", d));
    let json: Vec<String> = results
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v:.0}"))
        .collect();
    println!("{{\"records\": {n}, {}}}", json.join(", "));
}
