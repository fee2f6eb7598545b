//! `strom bench consume`: a topic read from the beginning by one consumer that
//! assigns itself every partition.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::report::Report;
use crate::client::{partitions_of, Connection};

/// Runs the benchmark: reads `count` records (default: up to the high watermarks at
/// the start).
pub fn run(connection: &Connection, topic: &str, count: Option<u64>) -> anyhow::Result<Report> {
    let consumer = connection.consumer(None, &[])?;
    let metadata = connection.metadata(&consumer, Some(topic))?;
    let mut assignment = TopicPartitionList::new();
    let mut available: u64 = 0;
    for partition in partitions_of(&metadata, topic) {
        let (start, end) = consumer
            .fetch_watermarks(topic, partition, connection.timeout())
            .with_context(|| format!("cannot read the offsets of {topic}/{partition}"))?;
        available += u64::try_from(end - start).unwrap_or(0);
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    let want = count.unwrap_or(available);
    if want == 0 || want > available {
        bail!("topic {topic} holds {available} record(s), not enough to read {want}");
    }
    consumer
        .assign(&assignment)
        .context("cannot assign partitions")?;

    let bar = crate::progress::bar(want, false);
    let mut start = None;
    let mut last_record = Instant::now();
    let (mut messages, mut bytes) = (0u64, 0u64);
    while messages < want {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if last_record.elapsed() > connection.timeout() {
                    bail!(
                        "no record for {} s after {messages} of {want}",
                        connection.timeout
                    );
                }
            }
            Some(Err(error)) => return Err(error).context("consume failed"),
            Some(Ok(message)) => {
                start.get_or_insert_with(Instant::now);
                last_record = Instant::now();
                messages += 1;
                bytes += message.payload_len() as u64;
                if messages.is_multiple_of(1024) {
                    bar.set_position(messages);
                }
            }
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    bar.finish_and_clear();
    Ok(Report::new(
        "consume",
        topic.to_owned(),
        messages,
        bytes,
        elapsed,
        None,
    ))
}
