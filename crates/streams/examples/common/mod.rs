//! Shared by the benchmark examples: create topics, produce records, run an application
//! until it processed `n` records.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord};

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

/// Creates `topic` with `partitions` (an existing topic is left as it is).
pub fn admin_create(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let _ = rt.block_on(admin.create_topics(&[t], &AdminOptions::new()));
}

/// A producer partitioning keys as the Java client does (murmur2).
pub fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

/// Enqueues one record (with `timestamp_ms`, if given), waiting while the queue is full.
pub fn send(p: &BaseProducer, topic: &str, key: &[u8], value: &[u8], timestamp_ms: Option<i64>) {
    let mut rec = BaseRecord::to(topic).key(key).payload(value);
    if let Some(t) = timestamp_ms {
        rec = rec.timestamp(t);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                rec = r;
                p.poll(Duration::from_millis(5));
            }
        }
    }
}
