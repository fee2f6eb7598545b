//! A query on generated events in this process, for profiling without the CLI:
//! `cargo run --release -p strom-nexmark --example inprocess -- QUERY EVENTS THREADS [standard|flink-bids]`.
//! `strom bench nexmark` is the full benchmark (JSON, memory, the broker mode).
#![allow(clippy::unwrap_used)]

use strom_nexmark::generator::{
    FlinkBidGenerator, FlinkBidsConfig, Generator, GeneratorConfig, NexmarkGenerator,
};
use strom_nexmark::queries::query;
use strom_nexmark::run::in_process;
use strom_streams::inprocess::InProcessConfig;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("q0", String::as_str);
    let events: u64 = args.get(2).map_or(1_000_000, |s| s.parse().unwrap());
    let threads: usize = args.get(3).map_or(1, |s| s.parse().unwrap());
    let generator = match args.get(4).map_or("flink-bids", String::as_str) {
        "standard" => Generator::Standard(NexmarkGenerator::new(GeneratorConfig::default())),
        _ => Generator::FlinkBids(FlinkBidGenerator::new(FlinkBidsConfig::default())),
    };
    let q = query(name).unwrap_or_else(|| panic!("no query {name}"));
    // Generation alone, for scale.
    let started = std::time::Instant::now();
    let mut bytes = 0usize;
    for e in generator.events(0..events.min(2_000_000)) {
        bytes += e.as_bid().map_or(0, |b| b.extra.len());
    }
    let gen_rate = events.min(2_000_000) as f64 / started.elapsed().as_secs_f64();
    let config = InProcessConfig {
        threads,
        ..InProcessConfig::default()
    };
    let report = in_process(q, &generator, events, config).unwrap();
    println!(
        "{name}: {events} events, {threads} threads: {:.0} events/s (generation alone {gen_rate:.0}/s, {bytes} extra bytes); outputs {}, internal {}, p99 batch {:?}",
        report.records_per_second(),
        report.output_records,
        report.internal_records,
        report.batch_latency_p99,
    );
}
