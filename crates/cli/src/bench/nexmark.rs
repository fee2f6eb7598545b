//! `strom bench nexmark`: a Nexmark query on generated events, in two modes.
//!
//! - **in-process** (default): generator → query → blackhole in this process, through
//!   strom-streams' in-process runner (typed records, no broker, no serialization at the
//!   edges) — what Flink's `datagen → query → blackhole` measures. Each thread owns one
//!   partition and generates its share of the events (`p, p + T, …`).
//! - **broker**: the real deployment. Events are produced (JSON, one partition per
//!   thread) to a topic of a running `strom serve` (`--brokers`, or one this command
//!   starts with `--start-broker`) while the query runs in the strom-streams runtime
//!   (`KafkaStreams`, one stream thread per partition) and a consumer reads its results.
//!
//! Reported: events per second (in-process: from the first event to the end of the last
//! commit; broker: from the first processed record to the last), latency percentiles,
//! and the peak resident memory (VmHWM) of this process (and of the broker it started).
//! Latency in-process is per input batch (from feeding its first event to the end of
//! its processing in its thread); through the broker it is from the produce call of an
//! event to the receipt of the result it caused, measured on results that carry the
//! event's headers (every stateless result; windowed results, emitted when stream time
//! closes their window, carry none, so they have no latency figure).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use strom_nexmark::generator::Generator;
use strom_nexmark::queries::{self, Query, QueryTopics};
use strom_nexmark::run::in_process;
use strom_streams::inprocess::{InProcessConfig, RunReport};
use strom_streams::prelude::StreamsBuilder;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StateBackendKind, StreamsConfig};

use crate::client::{admin_error, block_on, Connection};
use crate::generate::NexmarkMode;
use crate::producer::{self, ProducerSettings};

/// The header carrying an event's produce time (µs since the epoch) in broker mode.
const SENT_HEADER: &str = "strom-bench-sent-us";

/// Where the query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Generator → query → blackhole in this process.
    InProcess,
    /// Through topics of a `strom serve`, with the strom-streams runtime.
    Broker,
}

/// `strom bench nexmark` flags.
#[derive(Debug, Args, Clone)]
pub struct NexmarkArgs {
    /// The query: q0, q1, q2, tumble_count, … (`list` prints them all).
    #[arg(long, default_value = "q0")]
    query: String,
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Threads (in-process) or stream threads (broker); also the partitions.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// in-process or broker.
    #[arg(long, value_enum, default_value_t = Mode::InProcess)]
    mode: Mode,
    /// The events [default: flink-bids for queries over bids only (the data the Flink
    /// peer script generates), standard otherwise].
    #[arg(long, value_enum)]
    generator: Option<NexmarkMode>,
    /// Events per second of event time [default: 100000 for flink-bids (the Flink
    /// script's), 10000000 for standard (Nexmark's)].
    #[arg(long, value_name = "N")]
    event_rate: Option<u64>,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Broker mode: start a `strom serve` of this binary (temporary data directory,
    /// ephemeral port) instead of using --brokers.
    #[arg(long)]
    start_broker: bool,
    /// Broker mode: exactly-once instead of at-least-once.
    #[arg(long)]
    exactly_once: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct NexmarkReport {
    /// Always `nexmark`.
    pub bench: &'static str,
    /// The query.
    pub query: String,
    /// in-process or broker.
    pub mode: Mode,
    /// `standard` or `flink-bids`.
    pub generator: &'static str,
    /// Events per second of event time.
    pub event_rate: u64,
    /// Events fed.
    pub events: u64,
    /// Threads (and partitions).
    pub threads: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_second: f64,
    /// Results written to the output topic (counted in-process, consumed via the broker).
    pub outputs: u64,
    /// Records that went through repartition topics.
    pub internal_records: u64,
    /// Records too late for their windows.
    pub late_records: u64,
    /// Latency percentiles in ms, when measured.
    pub latency_ms: Option<LatencyMs>,
    /// What the latency measures.
    pub latency_kind: &'static str,
    /// Peak resident memory of this process (VmHWM), MB.
    pub peak_rss_mb: f64,
    /// Peak resident memory of the broker this command started, MB.
    pub broker_peak_rss_mb: Option<f64>,
    /// Broker mode: events produced per second.
    pub produced_per_second: Option<f64>,
}

/// Latency percentiles, ms.
#[derive(Debug, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl NexmarkReport {
    fn to_text(&self) -> String {
        let mode = match self.mode {
            Mode::InProcess => "in-process",
            Mode::Broker => "through the broker",
        };
        let mut out = format!(
            "nexmark {} ({mode}, {} thread(s), {} events of {} at {}/s of event time)\n",
            self.query, self.threads, self.events, self.generator, self.event_rate
        );
        let mut row = |name: &str, value: String| out.push_str(&format!("  {name:<18} {value}\n"));
        row("events/s", format!("{:.0}", self.events_per_second));
        row("seconds", format!("{:.3}", self.seconds));
        row(
            "outputs",
            format!(
                "{} (through repartition topics {}, late {})",
                self.outputs, self.internal_records, self.late_records
            ),
        );
        match &self.latency_ms {
            Some(l) => row(
                "latency p50/p99",
                format!(
                    "{:.3} / {:.3} ms, max {:.3} ({})",
                    l.p50, l.p99, l.max, self.latency_kind
                ),
            ),
            None => row("latency", format!("none ({})", self.latency_kind)),
        }
        row("peak RSS", format!("{:.1} MB", self.peak_rss_mb));
        if let Some(b) = self.broker_peak_rss_mb {
            row("broker peak RSS", format!("{b:.1} MB"));
        }
        if let Some(p) = self.produced_per_second {
            row("produced/s", format!("{p:.0}"));
        }
        out
    }
}

/// Runs `strom bench nexmark`.
pub fn run(connection: &Connection, args: &NexmarkArgs) -> anyhow::Result<()> {
    if args.query == "list" {
        for q in queries::QUERIES {
            println!("{:<14} {}", q.name, q.about);
        }
        return Ok(());
    }
    let Some(query) = queries::query(&args.query) else {
        bail!(
            "no query {:?}: the queries are {}",
            args.query,
            queries::names().join(", ")
        );
    };
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    let mode = args.generator.unwrap_or(if query.bids_only {
        NexmarkMode::FlinkBids
    } else {
        NexmarkMode::Standard
    });
    let generator = crate::generate::nexmark::generator(mode, args.seed, args.event_rate, None);
    let report = match args.mode {
        Mode::InProcess => run_in_process(query, &generator, mode, args)?,
        Mode::Broker => run_broker(connection, query, &generator, mode, args)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn mode_name(mode: NexmarkMode) -> &'static str {
    match mode {
        NexmarkMode::Standard => "standard",
        NexmarkMode::FlinkBids => "flink-bids",
    }
}

fn event_rate(generator: &Generator) -> u64 {
    match generator {
        Generator::Standard(g) => g.config().events_per_second,
        Generator::FlinkBids(g) => g.config().events_per_second,
    }
}

fn run_in_process(
    query: &Query,
    generator: &Generator,
    mode: NexmarkMode,
    args: &NexmarkArgs,
) -> anyhow::Result<NexmarkReport> {
    let config = InProcessConfig {
        threads: args.threads,
        partitions: Some(args.threads),
        ..InProcessConfig::default()
    };
    let r: RunReport = in_process(query, generator, args.events, config)
        .with_context(|| format!("query {} failed", query.name))?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(NexmarkReport {
        bench: "nexmark",
        query: query.name.to_string(),
        mode: Mode::InProcess,
        generator: mode_name(mode),
        event_rate: event_rate(generator),
        events: r.input_records,
        threads: args.threads,
        seconds: r.elapsed.as_secs_f64(),
        events_per_second: r.records_per_second(),
        outputs: r.output_records,
        internal_records: r.internal_records,
        late_records: r.late_records,
        latency_ms: Some(LatencyMs {
            p50: ms(r.batch_latency_p50),
            p99: ms(r.batch_latency_p99),
            max: ms(r.batch_latency_max),
        }),
        latency_kind: "per input batch of 256 events, through its thread",
        peak_rss_mb: peak_rss_mb(std::process::id()).unwrap_or(0.0),
        broker_peak_rss_mb: None,
        produced_per_second: None,
    })
}

/// A `strom serve` this command started, killed (and its data removed) when dropped.
struct OwnBroker {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl OwnBroker {
    fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "strom-bench-nexmark-{}-{}",
            std::process::id(),
            now_us()
        ));
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--kafka-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .args(["--schema-registry-addr", "127.0.0.1:0"])
            .args(["--group-initial-rebalance-delay-ms", "0"])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start strom serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                bail!("strom serve exited before it was serving");
            };
            let line = line.context("cannot read strom serve's log")?;
            if let Some((_, rest)) = line.split_once("kafka_addr=") {
                if let Some(addr) = rest.split_whitespace().next() {
                    break addr.to_string();
                }
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(OwnBroker { child, dir, addr })
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn create_topics(connection: &Connection, names: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin = connection.admin()?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = block_on(admin.create_topics(&topics, &connection.admin_options()))?
        .context("cannot create the benchmark's topics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(admin_error("cannot create topic", &topic, code)),
        }
    }
    Ok(())
}

fn run_broker(
    connection: &Connection,
    query: &Query,
    generator: &Generator,
    mode: NexmarkMode,
    args: &NexmarkArgs,
) -> anyhow::Result<NexmarkReport> {
    let own = if args.start_broker {
        Some(OwnBroker::start()?)
    } else {
        None
    };
    let mut connection = connection.clone();
    if let Some(b) = &own {
        connection.brokers = b.addr.clone();
    }
    let partitions = args.threads;
    // The in-process run of the same events over the same partitions says how many
    // records the tasks will process (inputs and repartitioned records) and how many
    // results to wait for.
    let expected = in_process(
        query,
        generator,
        args.events,
        InProcessConfig {
            partitions: Some(partitions),
            ..InProcessConfig::default()
        },
    )?;
    let expected_processed = expected.input_records + expected.internal_records;

    let app = format!(
        "nexmark-{}-{}",
        query.name.replace('_', "-"),
        now_us() / 1000
    );
    let topics = QueryTopics {
        input: format!("{app}-events"),
        output: format!("{app}-results"),
    };
    create_topics(
        &connection,
        &[&topics.input, &topics.output],
        partitions as i32,
    )?;
    let builder = StreamsBuilder::new();
    (query.build)(&builder, &topics)?;
    let topology = builder.build()?;
    let mut config = StreamsConfig::new(&app, &connection.brokers);
    config.num_stream_threads = args.threads;
    config.state_backend = StateBackendKind::Memory;
    config.state_dir = std::env::temp_dir().join("strom-bench-nexmark").join(&app);
    if args.exactly_once {
        config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    }
    let streams = KafkaStreams::start(&topology, config)?;
    // Produce only once every stream thread has its partitions: a backlog waiting for
    // the group to form would count as latency.
    let joined = Instant::now();
    while streams.metrics().rebalances < args.threads as u64
        && joined.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }

    // The results' reader: counts them and records latencies from their headers.
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).context("histogram")?,
    ));
    let consumer: BaseConsumer = connection.consumer(None, &[("enable.auto.commit", "false")])?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment
            .add_partition_offset(&topics.output, p, Offset::Beginning)
            .context("cannot assign the results topic")?;
    }
    consumer
        .assign(&assignment)
        .context("cannot assign the results topic")?;
    let reader = {
        let (stop, received, latencies) = (stop.clone(), received.clone(), latencies.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                received.fetch_add(1, Ordering::Relaxed);
                let sent = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == SENT_HEADER)
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                });
                if let Some(sent) = sent {
                    let us = now_us().saturating_sub(sent).max(1);
                    if let Ok(mut h) = latencies.lock() {
                        let _ = h.record(us.min(3_600_000_000));
                    }
                }
            }
        })
    };

    // Produce: event n to partition n % partitions (as the in-process split).
    let settings = ProducerSettings {
        acks: "1".into(),
        compression: "none".into(),
        linger_ms: Some(5),
        batch_bytes: 1_000_000,
    };
    let producer = producer::create(&connection, &settings, 5)?;
    let produce_started = Instant::now();
    let mut value = Vec::with_capacity(512);
    let mut first_processed: Option<Instant> = None;
    for n in 0..args.events {
        let e = generator.event(n);
        value.clear();
        serde_json::to_writer(&mut value, &e)?;
        let sent = now_us().to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: SENT_HEADER,
            value: Some(sent.as_bytes()),
        });
        let record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&topics.input, 0)
            .partition((n % partitions as u64) as i32)
            .payload(&value[..])
            .timestamp(e.date_time())
            .headers(headers);
        producer::send(&producer, record)?;
        if n % 1024 == 0 {
            producer.poll(Duration::ZERO);
            producer.context().check()?;
            if first_processed.is_none() && streams.metrics().records_processed > 0 {
                first_processed = Some(Instant::now());
            }
        }
    }
    producer::flush(&producer, &connection)?;
    producer.context().check()?;
    let produced_seconds = produce_started.elapsed().as_secs_f64();

    // Wait until the tasks processed every record (or stalled for a minute).
    let mut last = (0u64, Instant::now());
    let done = loop {
        let processed = streams.metrics().records_processed;
        if processed > 0 && first_processed.is_none() {
            first_processed = Some(Instant::now());
        }
        if processed >= expected_processed {
            break Instant::now();
        }
        if processed != last.0 {
            last = (processed, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            stop.store(true, Ordering::Relaxed);
            bail!("the query stalled at {processed} of {expected_processed} records");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Then for its results (they follow within a commit interval).
    let waited = Instant::now();
    while received.load(Ordering::Relaxed) < expected.output_records
        && waited.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let metrics = streams.metrics();
    streams.close()?;
    let seconds = first_processed.map_or(0.0, |f| done.duration_since(f).as_secs_f64());
    let latency = latencies
        .lock()
        .ok()
        .filter(|h| !h.is_empty())
        .map(|h| LatencyMs {
            p50: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99: h.value_at_quantile(0.99) as f64 / 1000.0,
            max: h.max() as f64 / 1000.0,
        });
    let broker_rss = own.as_ref().and_then(|b| peak_rss_mb(b.child.id()));
    Ok(NexmarkReport {
        bench: "nexmark",
        query: query.name.to_string(),
        mode: Mode::Broker,
        generator: mode_name(mode),
        event_rate: event_rate(generator),
        events: args.events,
        threads: args.threads,
        seconds,
        events_per_second: args.events as f64 / seconds.max(1e-9),
        outputs: received.load(Ordering::Relaxed),
        internal_records: expected.internal_records,
        late_records: metrics.late_records,
        latency_kind: if latency.is_some() {
            "produce of an event to receipt of its result"
        } else {
            "none: windowed results carry no event's headers"
        },
        latency_ms: latency,
        peak_rss_mb: peak_rss_mb(std::process::id()).unwrap_or(0.0),
        broker_peak_rss_mb: broker_rss,
        produced_per_second: Some(args.events as f64 / produced_seconds.max(1e-9)),
    })
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The peak resident set size (VmHWM) of a process, MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
