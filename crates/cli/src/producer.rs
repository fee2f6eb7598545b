//! The producer `strom produce` and `strom bench` share: its settings as flags, and a
//! delivery tracker that counts acknowledged and failed records and records each
//! record's send-to-acknowledgement latency in an HDR histogram.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::client::Connection;

/// Latencies above this (one hour, in microseconds) are recorded as this.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Producer flags.
#[derive(Debug, Args, Clone)]
pub struct ProducerSettings {
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all"])]
    pub acks: String,
    /// Compression codec of record batches.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// How long to wait for more records before sending a batch, in ms
    /// [default: 5; 0 for `bench e2e`].
    #[arg(long, value_name = "MS")]
    pub linger_ms: Option<u64>,
    /// Largest batch of records, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000)]
    pub batch_bytes: u64,
}

/// A producer whose deliveries are tracked by [`Deliveries`].
pub type TrackedProducer = BaseProducer<Deliveries>;

/// Creates a producer with these settings; `linger_ms_default` applies when
/// `--linger-ms` is not given.
pub fn create(
    connection: &Connection,
    settings: &ProducerSettings,
    linger_ms_default: u64,
) -> anyhow::Result<TrackedProducer> {
    let linger_ms = settings.linger_ms.unwrap_or(linger_ms_default).to_string();
    let batch_bytes = settings.batch_bytes.to_string();
    let message_timeout_ms = (connection.timeout * 1000).to_string();
    let config = connection.config(&[
        ("acks", &settings.acks),
        ("compression.type", &settings.compression),
        ("linger.ms", &linger_ms),
        ("batch.size", &batch_bytes),
        ("enable.idempotence", "false"),
        ("queue.buffering.max.messages", "1000000"),
        ("queue.buffering.max.kbytes", "1048576"),
        ("message.timeout.ms", &message_timeout_ms),
    ]);
    config
        .create_with_context(Deliveries::new())
        .context("cannot create a producer")
}

/// Enqueues `record`, waiting (and serving delivery reports) while the local queue is
/// full.
pub fn send(
    producer: &TrackedProducer,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
) -> anyhow::Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error).context("cannot enqueue a record"),
        }
    }
}

/// Waits until every enqueued record is acknowledged or has failed.
pub fn flush(producer: &TrackedProducer, connection: &Connection) -> anyhow::Result<()> {
    // Each record gives up after the timeout (message.timeout.ms); allow for that.
    producer
        .flush(connection.timeout() * 2 + Duration::from_secs(1))
        .context("records still in flight")
}

/// The delivery callback's bookkeeping. A record's delivery opaque is the time it was
/// sent, from [`Deliveries::elapsed_us`].
#[derive(Debug)]
pub struct Deliveries {
    start: Instant,
    state: Mutex<DeliveryState>,
}

/// What the deliveries so far add up to.
#[derive(Debug, Clone)]
pub struct DeliveryState {
    /// Records acknowledged.
    pub acked: u64,
    /// Records that failed.
    pub failed: u64,
    /// The first failure's reason.
    pub first_error: Option<String>,
    /// Send-to-acknowledgement latency of acknowledged records, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Deliveries {
    fn new() -> Self {
        Deliveries {
            start: Instant::now(),
            state: Mutex::new(DeliveryState {
                acked: 0,
                failed: 0,
                first_error: None,
                latency_us: latency_histogram(),
            }),
        }
    }

    /// Microseconds since this tracker was made: the opaque to send a record with.
    pub fn elapsed_us(&self) -> usize {
        self.start.elapsed().as_micros() as usize
    }

    /// The deliveries so far.
    pub fn state(&self) -> MutexGuard<'_, DeliveryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An error naming the first failure, if any record failed.
    pub fn check(&self) -> anyhow::Result<()> {
        let state = self.state();
        match &state.first_error {
            None => Ok(()),
            Some(error) => anyhow::bail!(
                "{} record(s) not delivered ({} delivered): {error}",
                state.failed,
                state.acked
            ),
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        let now_us = self.elapsed_us();
        let mut state = self.state();
        match result {
            Ok(_) => {
                state.acked += 1;
                state
                    .latency_us
                    .saturating_record(now_us.saturating_sub(sent_us) as u64);
            }
            Err((error, _)) => {
                state.failed += 1;
                state.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// An empty histogram of microsecond latencies, 1 µs to one hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant, valid bounds")
}
