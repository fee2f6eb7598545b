//! `strom generate nexmark`: the Nexmark event stream of strom-nexmark's generators,
//! produced with null keys, JSON values (`{"bid":{…}}`, `{"person":{…}}`,
//! `{"auction":{…}}`) and the event time as record timestamp — what the Nexmark queries
//! of strom-nexmark read.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::producer::{BaseRecord, Producer};
use strom_nexmark::generator::{
    FlinkBidGenerator, FlinkBidsConfig, Generator, GeneratorConfig, NexmarkGenerator,
};

use super::{GenerateArgs, NexmarkMode};
use crate::producer;

/// The generator the flags describe.
pub fn generator(
    mode: NexmarkMode,
    seed: u64,
    event_rate: Option<u64>,
    start_ms: Option<i64>,
) -> Generator {
    match mode {
        NexmarkMode::Standard => {
            let defaults = GeneratorConfig::default();
            Generator::Standard(NexmarkGenerator::new(GeneratorConfig {
                seed,
                events_per_second: event_rate.unwrap_or(defaults.events_per_second),
                base_time_ms: start_ms.unwrap_or(defaults.base_time_ms),
                ..defaults
            }))
        }
        NexmarkMode::FlinkBids => {
            let defaults = FlinkBidsConfig::default();
            Generator::FlinkBids(FlinkBidGenerator::new(FlinkBidsConfig {
                seed,
                events_per_second: event_rate.unwrap_or(defaults.events_per_second),
                base_time_ms: start_ms.unwrap_or(defaults.base_time_ms),
            }))
        }
    }
}

/// Runs `strom generate nexmark`.
pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be 0 or more"
    );
    let generator = generator(args.mode, args.seed, args.event_rate, args.start_ms);
    let topic = args.topic.as_deref().unwrap_or("nexmark-events");
    let events = generator.events(0..args.count);
    if args.stdout {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for e in events {
            let line = serde_json::json!({"topic": topic, "key": null,
                                          "value": e, "timestamp": e.date_time()});
            writeln!(out, "{line}").context("cannot write to stdout")?;
        }
        return out.flush().context("cannot write to stdout");
    }
    let connection = &args.connection;
    let producer = producer::create(connection, &args.settings, 5)?;
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut value = Vec::with_capacity(512);
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
        value.clear();
        serde_json::to_writer(&mut value, &e).context("cannot encode an event")?;
        let opaque = producer.context().elapsed_us();
        let record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, opaque)
            .payload(&value[..])
            .timestamp(e.date_time());
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
        "produced {sent} nexmark event(s) to {topic} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
