//! The loop that feeds one external sink from its internal topic: batch, write with
//! retries and a circuit breaker, dead-letter what the target refuses, commit.
//!
//! - **Backpressure**: one batch (`max_in_flight` records, default 500) is in flight at a
//!   time; the next is consumed only when the target has the last one, and librdkafka's
//!   prefetch is capped (16 MiB), so a slow target slows consumption, never memory.
//! - **Retries**: a transient failure (connection refused, timeout, HTTP 5xx/429) is
//!   retried with exponential backoff from `retry_backoff` (default 100 ms, doubling, at
//!   most 5 s).
//! - **Circuit breaker**: `retries` consecutive failures (default 5) open the circuit:
//!   the sink stops consuming its input — Kafka holds everything meanwhile — for
//!   `circuit_breaker` (default 10 s), then a trial write of the held batch closes it or
//!   opens it again. Nothing is dropped while the target is down.
//! - **Dead letters**: records the target refuses for good, or that are not JSON, go to
//!   the pipeline's dead-letter topic with headers `strom.error`, `strom.sink` and
//!   `strom.original.{topic,partition,offset}`.
//! - **Commits**: after each batch, its offsets (asynchronously: a lost commit replays a
//!   batch the target writes idempotently).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value as Json;
use strom_streams::prelude::{BreakerConfig, BreakerState, CircuitBreaker};
use tokio::sync::watch;

use super::metrics::{SinkMetrics, CLOSED, HALF_OPEN, OPEN};
use super::{Rejected, SinkRecord, Target};
use crate::spec::Sink;

/// How a worker reads and retries.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The sink's name (`strom.sink` header of dead letters).
    pub sink: String,
    /// The internal topic.
    pub topic: String,
    /// The consumer group (`<pipeline>-sink-<name>`).
    pub group: String,
    /// Where refused records go.
    pub dead_letter_topic: String,
    /// Read every partition from its end without a group (WebSocket: each instance
    /// serves its own clients).
    pub tail: bool,
    /// Records per write.
    pub max_batch: usize,
    /// First retry delay.
    pub retry_backoff: Duration,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
}

impl WorkerConfig {
    /// The settings of `sink` (`max_in_flight`, `retries`, `retry_backoff`,
    /// `circuit_breaker`).
    pub fn new(
        bootstrap: &str,
        pipeline: &str,
        sink_name: &str,
        topic: &str,
        dead_letter_topic: &str,
        sink: &Sink,
    ) -> Result<Self, String> {
        let retries = super::count(sink, "retries", 5)?;
        let backoff = super::duration_ms(sink, "retry_backoff", 100)?.max(1);
        let open_ms = super::duration_ms(sink, "circuit_breaker", 10_000)?.max(1);
        Ok(WorkerConfig {
            bootstrap: bootstrap.to_string(),
            sink: sink_name.to_string(),
            topic: topic.to_string(),
            group: format!("{pipeline}-sink-{sink_name}"),
            dead_letter_topic: dead_letter_topic.to_string(),
            tail: sink.kind == "websocket",
            max_batch: super::count(sink, "max_in_flight", 500)?,
            retry_backoff: Duration::from_millis(backoff as u64),
            breaker: BreakerConfig {
                failure_rate_threshold: 1.0,
                window: retries,
                min_calls: retries,
                cool_down_ms: open_ms,
                retry_backoff_ms: backoff,
            },
        })
    }
}

/// Longest wait between retries while the circuit is closed.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A record on its way to the dead-letter topic.
struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    partition: i32,
    offset: i64,
    reason: String,
}

/// Runs the sink until `stop` turns true: consume, write, dead-letter, commit.
pub async fn run(
    mut target: Target,
    cfg: WorkerConfig,
    metrics: Arc<SinkMetrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let kafka = |e: rdkafka::error::KafkaError| format!("sink {}: {e}", cfg.sink);
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.bootstrap)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // An open circuit stops consumption for as long as the target is down.
        .set("max.poll.interval.ms", "86400000")
        .set("session.timeout.ms", crate::run::SESSION_TIMEOUT_MS)
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .map_err(kafka)?;
    if cfg.tail {
        let md = consumer
            .fetch_metadata(Some(&cfg.topic), Duration::from_secs(10))
            .map_err(kafka)?;
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(&cfg.topic, p.id(), Offset::End)
                    .map_err(kafka)?;
            }
        }
        consumer.assign(&tpl).map_err(kafka)?;
    } else {
        consumer.subscribe(&[&cfg.topic]).map_err(kafka)?;
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .map_err(kafka)?;
    let mut breaker = CircuitBreaker::new(cfg.breaker.clone());
    loop {
        let first = tokio::select! {
            _ = stop.changed() => return Ok(()),
            m = consumer.recv() => m,
        };
        let message = match first {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(sink = %cfg.sink, error = %e, "sink consumer");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut batch = Vec::new();
        let mut dead = Vec::new();
        let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        take(&message, &mut batch, &mut dead, &mut next_offsets);
        drop(message);
        while batch.len() + dead.len() < cfg.max_batch {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(m)) => take(&m, &mut batch, &mut dead, &mut next_offsets),
                _ => break,
            }
        }
        let Some(rejected) =
            deliver(&mut target, &batch, &cfg, &metrics, &mut breaker, &mut stop).await
        else {
            return Ok(());
        };
        metrics
            .written
            .fetch_add((batch.len() - rejected.len()) as u64, Ordering::Relaxed);
        for Rejected { index, reason } in rejected {
            let r = &batch[index];
            dead.push(DeadLetter {
                key: Some(r.key.as_bytes().to_vec()),
                payload: r.value.to_string().into_bytes(),
                partition: r.partition,
                offset: r.offset,
                reason,
            });
        }
        if !dead.is_empty() && !dead_letter(&producer, &cfg, &dead, &metrics, &mut stop).await {
            return Ok(());
        }
        if !cfg.tail {
            let mut tpl = TopicPartitionList::new();
            for (partition, next) in &next_offsets {
                tpl.add_partition_offset(&cfg.topic, *partition, Offset::Offset(*next))
                    .map_err(kafka)?;
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(sink = %cfg.sink, error = %e, "offset commit (the batch replays idempotently)");
            }
        }
    }
}

/// Adds a consumed message to the batch, or to the dead letters when it is not JSON.
fn take(
    m: &BorrowedMessage<'_>,
    batch: &mut Vec<SinkRecord>,
    dead: &mut Vec<DeadLetter>,
    next_offsets: &mut BTreeMap<i32, i64>,
) {
    next_offsets.insert(m.partition(), m.offset() + 1);
    let payload = m.payload().unwrap_or_default();
    match serde_json::from_slice::<Json>(payload) {
        Ok(value) => batch.push(SinkRecord {
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            value,
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            traceparent: m.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "traceparent")
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            }),
        }),
        Err(e) => dead.push(DeadLetter {
            key: m.key().map(<[u8]>::to_vec),
            payload: payload.to_vec(),
            partition: m.partition(),
            offset: m.offset(),
            reason: format!("not JSON: {e}"),
        }),
    }
}

/// Writes the batch until the target takes it (the records it refuses returned), or
/// `None` when stopped meanwhile.
async fn deliver(
    target: &mut Target,
    batch: &[SinkRecord],
    cfg: &WorkerConfig,
    metrics: &SinkMetrics,
    breaker: &mut CircuitBreaker,
    stop: &mut watch::Receiver<bool>,
) -> Option<Vec<Rejected>> {
    if batch.is_empty() {
        return Some(Vec::new());
    }
    let mut delay = cfg.retry_backoff;
    loop {
        let now = now_ms();
        match breaker.state(now) {
            BreakerState::Open { until_ms } => {
                metrics.circuit_state.store(OPEN, Ordering::Relaxed);
                let wait = Duration::from_millis(until_ms.saturating_sub(now).max(1) as u64);
                tokio::select! {
                    _ = stop.changed() => return None,
                    _ = tokio::time::sleep(wait) => {},
                }
                let _ = target.reconnect().await;
                continue;
            }
            BreakerState::HalfOpen => metrics.circuit_state.store(HALF_OPEN, Ordering::Relaxed),
            BreakerState::Closed => {}
        }
        let started = Instant::now();
        let result = target.write(batch).await;
        metrics.write_latency.observe(started.elapsed());
        match result {
            Ok(rejected) => {
                breaker.record(true, now_ms());
                if metrics.circuit_state.swap(CLOSED, Ordering::Relaxed) != CLOSED {
                    tracing::info!(sink = %cfg.sink, "circuit closed: the target is back");
                }
                return Some(rejected);
            }
            Err(error) => {
                metrics.failed_writes.fetch_add(1, Ordering::Relaxed);
                breaker.record(false, now_ms());
                if let BreakerState::Open { .. } = breaker.state(now_ms()) {
                    if metrics.circuit_state.swap(OPEN, Ordering::Relaxed) != OPEN {
                        metrics.circuit_opened.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(sink = %cfg.sink, %error,
                            "circuit open: input paused for {} ms", cfg.breaker.cool_down_ms);
                    }
                    continue;
                }
                tracing::warn!(sink = %cfg.sink, %error, "write failed; retrying in {delay:?}");
                metrics.retries.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = stop.changed() => return None,
                    _ = tokio::time::sleep(delay) => {},
                }
                delay = (delay * 2).min(MAX_BACKOFF);
                let _ = target.reconnect().await;
            }
        }
    }
}

/// Sends the dead letters — all at once, then waits for Kafka to have each, sending
/// again those it refused — and returns false when stopped meanwhile.
async fn dead_letter(
    producer: &FutureProducer,
    cfg: &WorkerConfig,
    dead: &[DeadLetter],
    metrics: &SinkMetrics,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    for d in dead {
        tracing::warn!(sink = %cfg.sink, reason = %d.reason, offset = d.offset, "record to dead-letter topic");
    }
    let mut pending: Vec<&DeadLetter> = dead.iter().collect();
    loop {
        let mut sent = Vec::with_capacity(pending.len());
        let mut failed = Vec::new();
        for d in pending {
            match producer.send_result(dead_letter_record(cfg, d)) {
                Ok(delivery) => sent.push((d, delivery)),
                Err((e, _)) => {
                    tracing::warn!(sink = %cfg.sink, error = %e, "dead-letter topic; retrying");
                    failed.push(d);
                }
            }
        }
        for (d, delivery) in sent {
            let outcome = tokio::select! {
                _ = stop.changed() => return false,
                r = delivery => r,
            };
            match outcome {
                Ok(Ok(_)) => {
                    metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err((e, _))) => {
                    tracing::warn!(sink = %cfg.sink, error = %e, "dead-letter topic; retrying");
                    failed.push(d);
                }
                Err(_) => failed.push(d),
            }
        }
        if failed.is_empty() {
            return true;
        }
        pending = failed;
        tokio::select! {
            _ = stop.changed() => return false,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {},
        }
    }
}

/// A dead letter as a Kafka record: the original key and payload, the reason and the
/// original position in headers.
fn dead_letter_record<'a>(
    cfg: &'a WorkerConfig,
    d: &'a DeadLetter,
) -> FutureRecord<'a, [u8], [u8]> {
    let partition = d.partition.to_string();
    let offset = d.offset.to_string();
    let headers = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: "strom.error",
            value: Some(d.reason.as_str()),
        })
        .insert(Header {
            key: "strom.sink",
            value: Some(cfg.sink.as_str()),
        })
        .insert(Header {
            key: "strom.original.topic",
            value: Some(cfg.topic.as_str()),
        })
        .insert(Header {
            key: "strom.original.partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "strom.original.offset",
            value: Some(offset.as_str()),
        });
    let record = FutureRecord::to(&cfg.dead_letter_topic)
        .payload(d.payload.as_slice())
        .headers(headers);
    match &d.key {
        Some(k) => record.key(k.as_slice()),
        None => record,
    }
}
