//! Shared by the benchmark examples: run an application until it processed `n` records.

use std::time::{Duration, Instant};

use strom_streams::prelude::Topology;
use strom_streams::runtime::{KafkaStreams, StreamsConfig};

/// Starts `topology` with `config`, waits until it processed `n` records, closes it;
/// returns records per second from the first processed record (group join excluded).
pub fn processing_rate(topology: &Topology, config: StreamsConfig, n: u64) -> f64 {
    let streams = KafkaStreams::start(topology, config).expect("start");
    let mut start = None;
    loop {
        let m = streams.metrics();
        if m.records_processed > 0 {
            start.get_or_insert_with(Instant::now);
        }
        if m.records_processed >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let rate = n as f64 / start.map_or(1.0, |s: Instant| s.elapsed().as_secs_f64());
    streams.close().expect("close");
    rate
}
