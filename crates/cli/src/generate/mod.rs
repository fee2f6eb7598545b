//! `strom generate DATASET`: realistic, reproducible events for the seeds' systems,
//! produced with keys and event-time timestamps (or printed as JSON lines).

mod datasets;
pub(crate) mod nexmark;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rdkafka::producer::{BaseRecord, Producer};

use crate::client::Connection;
use crate::producer::{self, ProducerSettings};
use datasets::{Dataset, Generator, Options};

/// `strom generate`: flags.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom generate views --count 100000
  strom generate driver-locations --rate 500 --keys 2000 --invalid-fraction 0.01
  strom generate messages --count 20 --stdout
  strom generate payments --seed 7 --topic payments-test --late-fraction 0.05
  strom generate nexmark --count 1000000 --mode flink-bids --event-rate 100000")]
pub struct GenerateArgs {
    /// What to generate.
    #[arg(value_enum)]
    dataset: Dataset,
    /// Events to generate.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Events per second of wall-clock time; 0 produces as fast as the broker takes
    /// them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Distinct keys (users, drivers, chats, accounts; titles for content-metadata)
    /// [default: per dataset].
    #[arg(long)]
    keys: Option<usize>,
    /// Seed: the same seed and flags give the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of events 1–10 minutes late in event time.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    late_fraction: f64,
    /// Share of events invalid for their dataset (bad coordinates or GPS jumps, missing
    /// ids, negative amounts, unknown types).
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    invalid_fraction: f64,
    /// Event time of the first event, ms since the epoch [default: now with --rate;
    /// else now minus the span the events cover].
    #[arg(long, value_name = "MS")]
    start_ms: Option<i64>,
    /// Event time between events, ms [default: 1000 / rate, or 100].
    #[arg(long, value_name = "MS")]
    event_interval_ms: Option<f64>,
    /// Write the dataset's main events to this topic instead of its own.
    #[arg(long)]
    topic: Option<String>,
    /// Print JSON lines (`{"topic", "key", "value", "timestamp"}`) instead of producing.
    #[arg(long)]
    stdout: bool,
    /// nexmark: the standard Nexmark model (people, auctions, bids) or the bid stream of
    /// the Flink peer script (`bench-peers/flink/nexmark_flink.py`).
    #[arg(long, value_enum, default_value_t = NexmarkMode::Standard)]
    mode: NexmarkMode,
    /// nexmark: events per second of event time [default: 10000000 for standard
    /// (Nexmark's), 100000 for flink-bids (the Flink script's)].
    #[arg(long, value_name = "N")]
    event_rate: Option<u64>,
    #[command(flatten)]
    settings: ProducerSettings,
    #[command(flatten)]
    connection: Connection,
}

/// Which Nexmark stream `strom generate nexmark` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NexmarkMode {
    /// People, auctions and bids, 1 : 3 : 46, as the Nexmark generator.
    Standard,
    /// Bids only, by the Flink peer script's formulas.
    FlinkBids,
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{text:?} is not a fraction from 0 to 1")),
    }
}

/// Runs `strom generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    if args.dataset == Dataset::Nexmark {
        return nexmark::run(&args);
    }
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be 0 or more"
    );
    let interval_ms = args.event_interval_ms.unwrap_or(if args.rate > 0.0 {
        1000.0 / args.rate
    } else {
        100.0
    });
    anyhow::ensure!(
        interval_ms >= 0.0 && interval_ms.is_finite(),
        "--event-interval-ms must be 0 or more"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let start_ms = args.start_ms.unwrap_or(if args.rate > 0.0 {
        now_ms
    } else {
        now_ms - (args.count as f64 * interval_ms) as i64
    });
    let options = Options {
        seed: args.seed,
        keys: args.keys.unwrap_or(args.dataset.default_keys()).max(1),
        start_ms,
        interval_ms,
        late_fraction: args.late_fraction,
        invalid_fraction: args.invalid_fraction,
    };
    let main_topic = args.dataset.topic();
    let topic_of = |t: &'static str| -> &str {
        match &args.topic {
            Some(custom) if t == main_topic => custom,
            _ => t,
        }
    };
    let events = Generator::new(args.dataset, options).take(args.count as usize);
    if args.stdout {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for e in events {
            let line = serde_json::json!({"topic": topic_of(e.topic), "key": e.key,
                                          "value": e.value, "timestamp": e.timestamp_ms});
            writeln!(out, "{line}").context("cannot write to stdout")?;
        }
        return out.flush().context("cannot write to stdout");
    }
    let connection = &args.connection;
    let producer = producer::create(connection, &args.settings, 5)?;
    let started = Instant::now();
    let mut sent: u64 = 0;
    for e in events {
        if args.rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / args.rate);
            while Instant::now() < due {
                producer.poll(
                    due.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100)),
                );
            }
        }
        let value = e.value.to_string();
        let opaque = producer.context().elapsed_us();
        let record = BaseRecord::with_opaque_to(topic_of(e.topic), opaque)
            .key(e.key.as_bytes())
            .payload(value.as_bytes())
            .timestamp(e.timestamp_ms);
        producer::send(&producer, record)?;
        sent += 1;
        if sent.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
            producer.context().check()?;
        }
    }
    producer::flush(&producer, connection)?;
    producer.context().check()?;
    eprintln!(
        "produced {sent} {} event(s) in {:.1} s",
        main_topic,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
