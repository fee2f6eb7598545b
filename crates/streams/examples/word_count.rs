//! Word count: lines from `text-input` → counts per word in `word-counts` (a table,
//! emitted on every update), exactly once.
//!
//! ```text
//! strom serve &                                    # or any Kafka cluster
//! strom topic create text-input --partitions 3
//! strom topic create word-counts --partitions 3
//! cargo run -p strom-streams --example word_count -- 127.0.0.1:9092
//! echo "the cat the end" | strom produce text-input
//! ```

use std::time::Duration;

use strom_streams::prelude::*;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};

fn main() -> Result<(), StreamsError> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    builder
        .stream("text-input", Nullable(StringSerde), StringSerde)
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone(), StringSerde, StringSerde)
        .count("word-counts-store")
        .to("word-counts", StringSerde, I64Serde);
    let topology = builder.build()?;
    println!("{}", topology.describe());

    let mut config = StreamsConfig::new("word-count", &bootstrap);
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    let app = KafkaStreams::start(&topology, config)?;
    println!("running; Ctrl-C to stop");
    loop {
        std::thread::sleep(Duration::from_secs(5));
        if !app.is_running() {
            return app.close();
        }
        println!("{:?}", app.metrics());
    }
}
