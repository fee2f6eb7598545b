//! `strom bench produce`: records sent as fast as allowed; latency from send to
//! acknowledgement. With `--spread`, record n goes to the topic's partition n mod P,
//! so that every partition of a many-partition topic is written at once.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::producer::{BaseRecord, Producer};

use super::report::{Latency, Report};
use super::{Pacer, Workload};
use crate::client::{partitions_of, Connection};
use crate::producer::{self, ProducerSettings};

/// Records sent when neither --count nor --duration is given.
const COUNT_DEFAULT: u64 = 100_000;

/// Runs the benchmark and reports what was acknowledged.
pub fn run(
    connection: &Connection,
    workload: &Workload,
    settings: &ProducerSettings,
    spread: bool,
) -> anyhow::Result<Report> {
    let topic = workload.ensure_topic(connection)?;
    let producer = producer::create(connection, settings, 5)?;
    // With --spread, record n goes to partitions[n mod len]; otherwise librdkafka
    // picks (sticky for keyless records).
    let partitions = if spread {
        let metadata = producer
            .client()
            .fetch_metadata(Some(&topic), connection.timeout())
            .with_context(|| format!("cannot fetch metadata from {}", connection.brokers))?;
        let ids = partitions_of(&metadata, &topic);
        if ids.is_empty() {
            bail!("topic {topic} has no partitions");
        }
        ids
    } else {
        Vec::new()
    };
    let value = workload.value();
    let limit = workload.limit(COUNT_DEFAULT);
    let bar = limit.progress();
    let pacer = Pacer::new(workload.rate.unwrap_or(0));
    let start = Instant::now();
    let mut sent: u64 = 0;
    while limit.allows(sent, start) {
        pacer.wait(sent, &producer);
        let opaque = producer.context().elapsed_us();
        let mut record = BaseRecord::with_opaque_to(&topic, opaque).payload(value.as_slice());
        if let Some(partition) = spread_to(&partitions, sent) {
            record = record.partition(partition);
        }
        producer::send(&producer, record)?;
        sent += 1;
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
            bar.set_position(producer.context().state().acked);
        }
    }
    producer::flush(&producer, connection)?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    producer.context().check()?;
    let state = producer.context().state();
    Ok(Report::new(
        "produce",
        topic,
        state.acked,
        state.acked * value.len() as u64,
        elapsed,
        Latency::of(&state.latency_us),
    ))
}

/// The partition of record `n` spread over `partitions` in turn; `None` (librdkafka
/// chooses) when there are none.
fn spread_to(partitions: &[i32], n: u64) -> Option<i32> {
    let len = u64::try_from(partitions.len())
        .ok()
        .filter(|&len| len > 0)?;
    partitions.get(usize::try_from(n % len).ok()?).copied()
}

#[cfg(test)]
mod tests {
    use super::spread_to;

    #[test]
    fn spread_visits_every_partition_in_turn() {
        let partitions: Vec<i32> = (0..1000).collect();
        let mut counts = vec![0u32; 1000];
        for n in 0..5000 {
            counts[spread_to(&partitions, n).expect("a partition") as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c == 5));
        assert_eq!(spread_to(&[3, 7], 3), Some(7));
        assert_eq!(spread_to(&[], 3), None);
    }
}
