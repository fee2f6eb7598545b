//! `strom bench consume`: a topic read from the beginning by one consumer that
//! assigns itself every partition.
//!
//! Records are taken from librdkafka in batches (`rd_kafka_consume_batch_queue`, which
//! the `rdkafka` crate does not wrap), not with one `poll` per record: a `poll` costs
//! a few clock reads (about 80 ns each on this VM), a queue lock and an event per
//! record, which made the application thread, not the broker, the limit — about
//! 450–550 ns of client CPU per 1 KiB record against 235–370 ns in batches, and half
//! the throughput (`perf record -g` on the client: `__vdso_clock_gettime` was 21 % of
//! its samples). What is left is librdkafka's one fetch thread per broker (the socket
//! copy and parsing each record).

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use rdkafka_sys as sys;

use super::report::Report;
use crate::client::{partitions_of, Connection};

/// Records taken from librdkafka's queue per call.
const BATCH: usize = 1024;

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
    let mut queue = BatchQueue::new(&consumer, BATCH)?;
    let mut start = None;
    let mut last_record = Instant::now();
    let (mut messages, mut bytes) = (0u64, 0u64);
    while messages < want {
        // Only up to `want`: a later record stays in librdkafka's queue. The first
        // call takes one record, which starts the clock (as the report says: from the
        // first record fetched).
        let room = if start.is_none() {
            1
        } else {
            usize::try_from(want - messages).unwrap_or(BATCH)
        };
        let (n, b) = queue
            .consume(Duration::from_millis(100), room)
            .context("consume failed")?;
        if n == 0 {
            if last_record.elapsed() > connection.timeout() {
                bail!(
                    "no record for {} s after {messages} of {want}",
                    connection.timeout
                );
            }
            continue;
        }
        let now = Instant::now();
        start.get_or_insert(now);
        last_record = now;
        messages += n;
        bytes += b;
        bar.set_position(messages);
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

/// The consumer's queue, read in batches.
///
/// Invariants: `queue` is a reference librdkafka handed out for this consumer
/// (`rd_kafka_queue_get_consumer`), released exactly once, by `Drop`; the consumer
/// outlives it (the borrow in `PhantomData`). Every message a batch returns is
/// destroyed before `consume` returns, on every path; nothing read from one outlives
/// that (only its length and error code are copied out).
struct BatchQueue<'a> {
    queue: NonNull<sys::rd_kafka_queue_t>,
    slots: Vec<*mut sys::rd_kafka_message_t>,
    _consumer: PhantomData<&'a BaseConsumer>,
}

impl<'a> BatchQueue<'a> {
    fn new(consumer: &'a BaseConsumer, size: usize) -> anyhow::Result<Self> {
        // SAFETY: the client pointer is valid while `consumer` is, which outlives the
        // queue; the call returns a new reference (or null).
        let queue = unsafe { sys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        let queue = NonNull::new(queue).context("the consumer has no queue")?;
        Ok(BatchQueue {
            queue,
            slots: vec![std::ptr::null_mut(); size.max(1)],
            _consumer: PhantomData,
        })
    }

    /// Waits up to `timeout` for records and takes at most `limit` of those ready:
    /// (records, value bytes); the first record carrying an error fails the call.
    fn consume(&mut self, timeout: Duration, limit: usize) -> anyhow::Result<(u64, u64)> {
        let size = self.slots.len().min(limit.max(1));
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `slots` has room for `size` pointers; librdkafka fills the first n.
        let n = unsafe {
            sys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                self.slots.as_mut_ptr(),
                size,
            )
        };
        let n = usize::try_from(n)
            .map_err(|_| anyhow::anyhow!("rd_kafka_consume_batch_queue failed"))?;
        let (mut records, mut bytes, mut error) = (0u64, 0u64, None);
        for &message in &self.slots[..n] {
            // SAFETY: librdkafka returned `message` (non-null) and it is destroyed
            // right after these reads, exactly once.
            unsafe {
                let m = &*message;
                if m.err == sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    records += 1;
                    bytes += m.len as u64;
                } else if m.err != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    error.get_or_insert(RDKafkaErrorCode::from(m.err));
                }
                sys::rd_kafka_message_destroy(message);
            }
        }
        match error {
            Some(code) => Err(anyhow::anyhow!("{code}")),
            None => Ok((records, bytes)),
        }
    }
}

impl Drop for BatchQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: the reference from `rd_kafka_queue_get_consumer`, released once.
        unsafe { sys::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}
