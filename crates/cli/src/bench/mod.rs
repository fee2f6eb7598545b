//! `strom bench produce|consume|e2e`: throughput (msg/s, MB/s) and latency
//! percentiles (from an HDR histogram) against any Kafka-protocol broker, with a live
//! progress line and `--json` for scripts (`bench/run.sh` uses it); `strom bench
//! nexmark`: a Nexmark query in this process or through a broker.

mod consume;
mod e2e;
mod nexmark;
mod produce;
mod report;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use crate::client::{admin_error, block_on, Connection};
use crate::producer::{ProducerSettings, TrackedProducer};

/// `strom bench …`: measure a broker.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom bench produce --count 500000 --size 1024 --acks all
  strom bench consume --topic strom-bench-1 --json
  strom bench e2e --rate 1000 --duration 30
  strom bench produce --duration 60 --rate 20000 --compression lz4 --partitions 4
  strom bench produce --partitions 1000 --spread --count 1000000
  strom bench nexmark --query q1 --events 5000000 --threads 2 --json
  strom bench nexmark --query tumble_count --events 1000000 --mode broker --start-broker")]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Produce records as fast as possible (or at --rate); latency is send to
    /// acknowledgement.
    Produce {
        #[command(flatten)]
        workload: Workload,
        #[command(flatten)]
        settings: ProducerSettings,
        /// Send record n to partition n mod (partitions), every partition in turn,
        /// instead of leaving keyless records to librdkafka's sticky partitioner (one
        /// partition per batch window, so a short run touches few of many partitions).
        #[arg(long)]
        spread: bool,
    },
    /// Read a topic from the beginning as fast as possible (all it holds, or --count).
    Consume {
        /// Topic to read (e.g. one `bench produce` wrote; it prints its name).
        #[arg(long)]
        topic: String,
        /// Stop after this many records [default: all the topic holds].
        #[arg(long, short = 'n')]
        count: Option<u64>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Produce at a fixed rate while a consumer reads; latency is send to receipt.
    E2e {
        #[command(flatten)]
        workload: Workload,
        #[command(flatten)]
        settings: ProducerSettings,
    },
    /// A Nexmark query on generated events: in this process (generator → query →
    /// blackhole) or through a broker's topics with the strom-streams runtime.
    Nexmark(nexmark::NexmarkArgs),
}

/// What to send: how many, how large, how fast, where.
#[derive(Debug, Args, Clone)]
pub struct Workload {
    /// Topic [default: a new one, strom-bench-<time>]; created when missing.
    #[arg(long)]
    topic: Option<String>,
    /// Partitions of a topic the benchmark creates.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Value bytes per record.
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    size: usize,
    /// Records to send [default: 100000 for produce, 10000 for e2e; unbounded with
    /// --duration].
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Send for this many seconds instead of a count.
    #[arg(long, value_name = "SECS", conflicts_with = "count")]
    duration: Option<f64>,
    /// Records per second; 0 is as fast as possible [default: 0 for produce, 1000 for
    /// e2e].
    #[arg(long, value_name = "MSGS")]
    rate: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a `strom bench` command.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let (report, json) = match args.command {
        BenchCommand::Produce {
            workload,
            settings,
            spread,
        } => (
            produce::run(connection, &workload, &settings, spread)?,
            workload.json,
        ),
        BenchCommand::Consume { topic, count, json } => {
            (consume::run(connection, &topic, count)?, json)
        }
        BenchCommand::E2e { workload, settings } => {
            (e2e::run(connection, &workload, &settings)?, workload.json)
        }
        BenchCommand::Nexmark(args) => return nexmark::run(connection, &args),
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

impl Workload {
    /// The topic to use, created (with `--partitions`) if it does not exist.
    fn ensure_topic(&self, connection: &Connection) -> anyhow::Result<String> {
        let name = self.topic.clone().unwrap_or_else(|| {
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("strom-bench-{ms}")
        });
        let admin = connection.admin()?;
        let topic = NewTopic::new(&name, self.partitions, TopicReplication::Fixed(1));
        let results = block_on(admin.create_topics([&topic], &connection.admin_options()))?
            .with_context(|| format!("cannot create topic {name}"))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(admin_error("cannot create topic", &topic, code)),
            }
        }
        Ok(name)
    }

    /// When to stop sending.
    fn limit(&self, count_default: u64) -> Limit {
        match (self.count, self.duration) {
            (_, Some(secs)) => Limit::Duration(Duration::from_secs_f64(secs.max(0.0))),
            (Some(count), None) => Limit::Count(count),
            (None, None) => Limit::Count(count_default),
        }
    }

    /// A value of `--size` pseudo-random bytes (xorshift, the same in every run), so
    /// that compression does not flatter the figures.
    fn value(&self) -> Vec<u8> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..self.size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }
}

/// When a sending loop stops.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Count(u64),
    Duration(Duration),
}

impl Limit {
    /// Whether record number `sent` (0-based) should still be sent.
    fn allows(self, sent: u64, start: Instant) -> bool {
        match self {
            Limit::Count(count) => sent < count,
            Limit::Duration(duration) => start.elapsed() < duration,
        }
    }

    /// The progress bar for this limit.
    fn progress(self) -> indicatif::ProgressBar {
        match self {
            Limit::Count(count) => crate::progress::bar(count, false),
            Limit::Duration(_) => crate::progress::counter(),
        }
    }
}

/// Sends records at a fixed rate: record `n` is due `n / rate` seconds after the start.
#[derive(Debug, Clone, Copy)]
struct Pacer {
    start: Instant,
    interval: Option<Duration>,
}

impl Pacer {
    fn new(rate: u64) -> Self {
        Pacer {
            start: Instant::now(),
            interval: (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64)),
        }
    }

    /// Waits until record `n` is due, serving the producer's delivery reports
    /// meanwhile.
    fn wait(&self, n: u64, producer: &TrackedProducer) {
        let Some(interval) = self.interval else {
            return;
        };
        let due = self.start + interval.mul_f64(n as f64);
        loop {
            let now = Instant::now();
            if now >= due {
                return;
            }
            let left = due - now;
            if left > Duration::from_millis(2) {
                producer.poll(Duration::ZERO);
                std::thread::sleep(left - Duration::from_millis(1));
            } else {
                std::thread::sleep(left);
            }
        }
    }
}
