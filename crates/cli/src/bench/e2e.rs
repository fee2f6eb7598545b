//! `strom bench e2e`: a producer at a fixed rate and a consumer in another thread;
//! each value starts with its send time, so latency is send to receipt, through the
//! broker's log (and its fsync, with acks=all and flush policy `always`).
//!
//! Before the timed part a warm-up record is sent until the consumer has seen one,
//! so connection setup and the consumer's first position lookup are not measured.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::report::{Latency, Report};
use super::{Pacer, Workload};
use crate::client::{partitions_of, Connection};
use crate::producer::{self, latency_histogram, ProducerSettings};

/// Records sent when neither --count nor --duration is given.
const COUNT_DEFAULT: u64 = 10_000;
/// Records per second when --rate is not given.
const RATE_DEFAULT: u64 = 1_000;
/// The send-time stamp of warm-up records.
const WARM_UP: u64 = u64::MAX;

/// What the consumer thread hands back.
struct Received {
    messages: u64,
    bytes: u64,
    last_at: Instant,
    latency_us: Histogram<u64>,
}

/// Runs the benchmark and reports what the consumer received.
pub fn run(
    connection: &Connection,
    workload: &Workload,
    settings: &ProducerSettings,
) -> anyhow::Result<Report> {
    if workload.size < 8 {
        bail!("--size must be at least 8 bytes (the send time is stamped in the value)");
    }
    let topic = workload.ensure_topic(connection)?;
    let consumer = connection.consumer(None, &[("fetch.wait.max.ms", "100")])?;
    let metadata = connection.metadata(&consumer, Some(&topic))?;
    let mut assignment = TopicPartitionList::new();
    for partition in partitions_of(&metadata, &topic) {
        assignment.add_partition_offset(&topic, partition, Offset::End)?;
    }
    consumer
        .assign(&assignment)
        .context("cannot assign partitions")?;

    let origin = Instant::now();
    let warm = Arc::new(AtomicBool::new(false));
    let sent_total = Arc::new(AtomicU64::new(u64::MAX));
    let receiver = {
        let (warm, sent_total) = (Arc::clone(&warm), Arc::clone(&sent_total));
        let timeout = connection.timeout();
        thread::spawn(move || receive(&consumer, origin, &warm, &sent_total, timeout))
    };

    let producer = producer::create(connection, settings, 0)?;
    let mut value = workload.value();
    let stamp = |value: &mut Vec<u8>, us: u64| value[..8].copy_from_slice(&us.to_be_bytes());
    let warm_up_deadline = Instant::now() + connection.timeout();
    while !warm.load(Ordering::Acquire) {
        if Instant::now() > warm_up_deadline || receiver.is_finished() {
            sent_total.store(0, Ordering::Release);
            bail!(
                "the consumer saw no warm-up record within {} s",
                connection.timeout
            );
        }
        stamp(&mut value, WARM_UP);
        producer::send(
            &producer,
            BaseRecord::with_opaque_to(&topic, 0).payload(value.as_slice()),
        )?;
        producer
            .flush(connection.timeout())
            .context("warm-up record not delivered")?;
        thread::sleep(Duration::from_millis(50));
    }

    let limit = workload.limit(COUNT_DEFAULT);
    let bar = limit.progress();
    let pacer = Pacer::new(workload.rate.unwrap_or(RATE_DEFAULT));
    let start = Instant::now();
    let mut sent: u64 = 0;
    while limit.allows(sent, start) {
        pacer.wait(sent, &producer);
        stamp(&mut value, origin.elapsed().as_micros() as u64);
        producer::send(
            &producer,
            BaseRecord::with_opaque_to(&topic, 0).payload(value.as_slice()),
        )?;
        sent += 1;
        producer.poll(Duration::ZERO);
        bar.set_position(sent);
    }
    sent_total.store(sent, Ordering::Release);
    producer::flush(&producer, connection)?;
    producer.context().check()?;
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))??;
    bar.finish_and_clear();
    Ok(Report::new(
        "e2e",
        topic,
        received.messages,
        received.bytes,
        received.last_at.saturating_duration_since(start),
        Latency::of(&received.latency_us),
    ))
}

/// Consumes until `sent_total` records (after warm-up) have arrived, or nothing has
/// for `timeout`.
fn receive(
    consumer: &BaseConsumer,
    origin: Instant,
    warm: &AtomicBool,
    sent_total: &AtomicU64,
    timeout: Duration,
) -> anyhow::Result<Received> {
    let mut received = Received {
        messages: 0,
        bytes: 0,
        last_at: Instant::now(),
        latency_us: latency_histogram(),
    };
    let mut last_progress = Instant::now();
    while received.messages < sent_total.load(Ordering::Acquire) {
        let Some(result) = consumer.poll(Duration::from_millis(10)) else {
            if last_progress.elapsed() > timeout {
                bail!(
                    "no record for {} s after {} received",
                    timeout.as_secs(),
                    received.messages
                );
            }
            continue;
        };
        let message = result.context("consume failed")?;
        let now = Instant::now();
        last_progress = now;
        let payload = message.payload().unwrap_or_default();
        let Some(stamp) = payload.get(..8) else {
            continue;
        };
        let sent_us = u64::from_be_bytes(stamp.try_into().unwrap_or([0xff; 8]));
        if sent_us == WARM_UP {
            warm.store(true, Ordering::Release);
            continue;
        }
        let now_us = now.duration_since(origin).as_micros() as u64;
        received
            .latency_us
            .saturating_record(now_us.saturating_sub(sent_us));
        received.messages += 1;
        received.bytes += payload.len() as u64;
        received.last_at = now;
    }
    Ok(received)
}
