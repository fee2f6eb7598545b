//! Non-blocking retries through retry topics, for failures that need long backoffs (an
//! external system down for minutes), in the manner of Spring Kafka's and Uber's retry
//! topics.
//!
//! A processor added with [`crate::dsl::KStream::process_with_retry_topics`] that fails
//! on a record does not hold its partition: the record goes to the first *tier*, an
//! internal topic `<application.id>-<name>-retry-1`, with a due time; the main input
//! goes on. The retry topics are extra sources of the processor's own sub-topology
//! (same partition count, and a record keeps its task's partition, so a key stays with
//! the task that owns its state). A record read from a retry topic before its due time
//! pauses only that retry partition until then (the runtime's pause-and-re-read, as for
//! [`ProcessError::Retry`]); when due, it goes straight back into the processor (not
//! through the operators before it). Failing again moves it to the next tier; after the
//! last tier it goes to the dead-letter topic with the error headers.
//!
//! ```text
//! input ─▶ … ─▶ processor ─▶ …            fails: record ─▶ <app>-<name>-retry-1 (due now + b1)
//!                  ▲  ▲                    fails again:  ─▶ <app>-<name>-retry-2 (due now + b2)
//!    retry-1 ──────┘  │                    after the last tier ─▶ dead-letter topic
//!    retry-2 ─────────┘
//! ```
//!
//! **Ordering.** Records of one key can be reordered: while a record waits in a retry
//! topic, later records of the same key pass. Use retry topics where that is acceptable
//! (Spring Kafka documents the same trade-off); where it is not, return
//! [`ProcessError::Retry`] (or use a [`crate::resilience::CircuitBreaker`]), which pauses
//! the input partition and keeps order.
//!
//! **Exactly-once.** Sending a record to a retry topic or to the dead-letter topic, and
//! consuming it from a retry topic, are part of the task's transaction like any output.
//! A failed attempt leaves no trace: what the processor forwarded, sent or wrote to its
//! stores before failing is undone.
//!
//! **Headers** on a retry record (all values UTF-8 text): [`HEADER_ATTEMPT`] (the attempt
//! it will be: 2 for the first retry), [`HEADER_DUE_MS`] (wall-clock milliseconds since
//! the epoch), the first attempt's `strom.original.topic/partition/offset/timestamp`, and
//! the last error as `strom.error.kind` and `strom.error`. They are removed before the
//! record reaches the processor again, so outputs do not carry them; the processor sees
//! the attempt as [`crate::processor::ProcessorContext::attempt`]. A record in the
//! dead-letter topic after the last tier carries the original coordinates, the error and
//! [`HEADER_ATTEMPTS`].
//!
//! ```
//! use strom_streams::prelude::*;
//!
//! struct Enrich;
//! impl Processor<String, String, String, String> for Enrich {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, '_, String, String>,
//!                r: Record<String, String>) -> Result<(), ProcessError> {
//!         // An external call that fails on the first two attempts.
//!         if ctx.attempt() < 3 {
//!             return Err(ProcessError::user("service unavailable"));
//!         }
//!         ctx.forward(r);
//!         Ok(())
//!     }
//! }
//!
//! let b = StreamsBuilder::new();
//! b.stream("orders", StringSerde, StringSerde)
//!     .process_with_retry_topics(
//!         || Enrich,
//!         &[],
//!         RetryTopics::new("enrich").backoff_ms([1_000, 60_000]).dead_letter("orders-dlq"),
//!         StringSerde,
//!         StringSerde,
//!     )
//!     .to("enriched", StringSerde, StringSerde);
//! let mut driver = TopologyTestDriver::new(&b.build().unwrap()).unwrap();
//! let (k, v) = ("o1".to_string(), "order".to_string());
//! driver.pipe("orders", &StringSerde, &StringSerde, &k, &v, 5).unwrap();
//! assert!(driver.read_raw("enriched").is_empty());
//! driver.advance_wall_clock(1_000).unwrap(); // attempt 2 fails: on to tier 2
//! driver.advance_wall_clock(60_000).unwrap(); // attempt 3 succeeds
//! assert_eq!(driver.read_raw("enriched").len(), 1);
//! ```

use std::sync::Arc;

use crate::error::ProcessError;
use crate::processor::Data;
use crate::record::{Headers, OutputRecord};
use crate::serdes::Serde;
use crate::task::{DeadLetter, NodeContext, RecordMeta};
use crate::topology::{downcast, ErasedRecord, Node};

/// Header: the attempt a retry record will be when it is processed (2 for the first
/// retry).
pub const HEADER_ATTEMPT: &str = "strom.retry.attempt";
/// Header: when a retry record may be processed, wall-clock milliseconds since the epoch.
pub const HEADER_DUE_MS: &str = "strom.retry.due.ms";
/// Header on a dead-lettered record: the attempts made.
pub const HEADER_ATTEMPTS: &str = "strom.retry.attempts";

/// Tiers a [`RetryTopics`] may have (each is a topic per partition of the task).
pub const RETRY_TIERS_MAX: usize = 16;

/// The headers a retry record carries besides the record's own (removed before the
/// record is processed again).
const RETRY_HEADERS: [&str; 8] = [
    HEADER_ATTEMPT,
    HEADER_DUE_MS,
    "strom.original.topic",
    "strom.original.partition",
    "strom.original.offset",
    "strom.original.timestamp",
    "strom.error.kind",
    "strom.error",
];

type RetryOn = Arc<dyn Fn(&ProcessError) -> bool + Send + Sync>;

/// A record as it goes to a topic: key, value, headers.
type Serialized = (Option<Vec<u8>>, Option<Vec<u8>>, Headers);

/// Retry topics of one processor: a name (the topics are
/// `<application.id>-<name>-retry-<n>`, n = 1, 2, …), one backoff per tier, which errors
/// retry, and where records go after the last tier. See the [module docs](self).
#[derive(Clone)]
pub struct RetryTopics {
    name: String,
    backoff_ms: Vec<i64>,
    retry_on: RetryOn,
    dead_letter_topic: Option<String>,
}

impl std::fmt::Debug for RetryTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryTopics")
            .field("name", &self.name)
            .field("backoff_ms", &self.backoff_ms)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish_non_exhaustive()
    }
}

impl RetryTopics {
    /// Retry topics named `<application.id>-<name>-retry-<n>`; three tiers of 1 s, 10 s
    /// and 60 s; every error retries; after the last tier, the processing handler's
    /// dead-letter topic.
    pub fn new(name: &str) -> Self {
        RetryTopics {
            name: name.to_string(),
            backoff_ms: vec![1_000, 10_000, 60_000],
            retry_on: Arc::new(|_| true),
            dead_letter_topic: None,
        }
    }

    /// One tier per backoff (wall-clock milliseconds between the failure and the next
    /// attempt); at least one and at most [`RETRY_TIERS_MAX`], each above zero.
    pub fn backoff_ms(mut self, backoff_ms: impl IntoIterator<Item = i64>) -> Self {
        self.backoff_ms = backoff_ms.into_iter().collect();
        self
    }

    /// The tiers of an exponential [`crate::resilience::RetryPolicy`]: one per delay
    /// between its attempts (`max_attempts - 1` tiers).
    pub fn backoff(self, policy: &crate::resilience::RetryPolicy) -> Self {
        let delays: Vec<i64> = policy
            .delays()
            .iter()
            .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
            .collect();
        self.backoff_ms(delays)
    }

    /// Which errors retry. Others go to the processing handler on the first attempt and
    /// to the dead-letter topic on a retry (a record in the retry chain leaves it
    /// processed or dead-lettered). Store errors and [`ProcessError::Retry`] never
    /// reach it: they keep their meaning (fail; pause the partition).
    pub fn retry_on(mut self, f: impl Fn(&ProcessError) -> bool + Send + Sync + 'static) -> Self {
        self.retry_on = Arc::new(f);
        self
    }

    /// The dead-letter topic after the last tier (default: the processing handler's
    /// `ErrorHandler::DeadLetter` topic; without either, the processing handler decides:
    /// fail, or log and skip).
    pub fn dead_letter(mut self, topic: &str) -> Self {
        self.dead_letter_topic = Some(topic.to_string());
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backoff of each tier, in milliseconds.
    pub fn tiers_ms(&self) -> &[i64] {
        &self.backoff_ms
    }

    /// The retry topics' names without the application id prefix (`<name>-retry-<n>`).
    pub(crate) fn topic_suffixes(&self) -> Vec<String> {
        (1..=self.backoff_ms.len())
            .map(|n| format!("{}-retry-{n}", self.name))
            .collect()
    }

    /// The retry topics of application `app_id`, first tier first.
    pub fn topics(&self, app_id: &str) -> Vec<String> {
        self.topic_suffixes()
            .iter()
            .map(|s| format!("{app_id}-{s}"))
            .collect()
    }

    /// Why this spec cannot be used, if it cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "retry topics name {:?} must be non-empty and use only [a-zA-Z0-9._-]",
                self.name
            ));
        }
        if self.backoff_ms.is_empty() || self.backoff_ms.len() > RETRY_TIERS_MAX {
            return Err(format!(
                "retry topics {}: {} tiers, want 1 to {RETRY_TIERS_MAX}",
                self.name,
                self.backoff_ms.len()
            ));
        }
        if let Some(b) = self.backoff_ms.iter().find(|b| **b <= 0) {
            return Err(format!(
                "retry topics {}: backoff {b} ms must be above zero",
                self.name
            ));
        }
        Ok(())
    }
}

/// The value of header `name` as an integer (the last one wins, as Kafka clients read).
pub(crate) fn header_i64(headers: &Headers, name: &str) -> Option<i64> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

fn header_str(headers: &Headers, name: &str) -> Option<String> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// How long a record read from a retry topic must still wait at `now_ms` (`None`: due).
pub(crate) fn wait_ms(headers: &Headers, now_ms: i64) -> Option<i64> {
    let due = header_i64(headers, HEADER_DUE_MS)?;
    (due > now_ms).then(|| due - now_ms)
}

/// Where a record in the retry chain came from first.
struct Origin {
    meta: RecordMeta,
    timestamp_ms: i64,
}

/// Wraps the processor of [`crate::dsl::KStream::process_with_retry_topics`]: its
/// parents are the upstream operator (attempt 1) and the retry topics' sources.
pub(crate) struct RetryNode<K, V> {
    inner: Box<dyn Node>,
    spec: RetryTopics,
    /// Resolved retry topic names, tier 1 first.
    topics: Vec<String>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K: Data, V: Data> RetryNode<K, V> {
    pub fn new(
        inner: Box<dyn Node>,
        spec: RetryTopics,
        app_id: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        RetryNode {
            topics: spec.topics(app_id),
            inner,
            spec,
            key_serde,
            value_serde,
        }
    }

    /// The attempt and origin of a record; strips the retry headers of one that came
    /// from a retry topic of this node.
    fn attempt_of(&self, ctx: &NodeContext<'_>, record: &mut ErasedRecord) -> (u32, Origin) {
        let current = &ctx.env.current;
        let tier = self.topics.iter().position(|t| **t == *current.topic);
        let first = Origin {
            meta: current.clone(),
            timestamp_ms: record.timestamp_ms,
        };
        let Some(tier) = tier else {
            return (1, first);
        };
        let h = &record.headers;
        let attempt = header_i64(h, HEADER_ATTEMPT)
            .and_then(|a| u32::try_from(a).ok())
            .filter(|a| *a >= 2)
            .unwrap_or(tier as u32 + 2);
        let origin = match (
            header_str(h, "strom.original.topic"),
            header_i64(h, "strom.original.partition").and_then(|p| i32::try_from(p).ok()),
            header_i64(h, "strom.original.offset"),
            header_i64(h, "strom.original.timestamp"),
        ) {
            (Some(topic), Some(partition), Some(offset), Some(timestamp_ms)) => Origin {
                meta: RecordMeta {
                    topic: topic.into(),
                    partition,
                    offset,
                },
                timestamp_ms,
            },
            _ => first,
        };
        record
            .headers
            .retain(|(k, _)| !RETRY_HEADERS.contains(&k.as_str()));
        (attempt, origin)
    }

    fn serialize(&self, record: ErasedRecord) -> Result<Serialized, ProcessError> {
        let key: K = downcast(record.key, "retry record key")?;
        let value: V = downcast(record.value, "retry record value")?;
        let mut headers = record.headers;
        let key = self.key_serde.serialize_with_headers(&key, &mut headers)?;
        let value = self
            .value_serde
            .serialize_with_headers(&value, &mut headers)?;
        Ok((key, value, headers))
    }
}

impl<K: Data, V: Data> Node for RetryNode<K, V> {
    fn init(&mut self, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        self.inner.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext<'_>,
        mut record: ErasedRecord,
    ) -> Result<(), ProcessError> {
        let (attempt, origin) = self.attempt_of(ctx, &mut record);
        // Kept to send on failure: the processor takes the record by value.
        let copy = record.clone();
        let overlay_savepoint = ctx.env.overlay.savepoint();
        let outputs_before = ctx.env.outputs.len();
        ctx.env.attempt = attempt;
        let result = self.inner.process(ctx, record);
        ctx.env.attempt = 1;
        let error = match result {
            Ok(()) => return Ok(()),
            // A store failure is not the record's fault; a `Retry` pauses the partition.
            Err(e @ (ProcessError::Store(_) | ProcessError::Retry { .. })) => return Err(e),
            Err(e) => e,
        };
        let retry = (self.spec.retry_on)(&error);
        if attempt == 1 && !retry {
            // Not in the retry chain yet: the processing handler decides, as without
            // retry topics (the task undoes the whole record).
            return Err(error);
        }
        // Undo the failed attempt: what it forwarded, sent and wrote.
        ctx.forwards.clear();
        ctx.env.outputs.truncate(outputs_before);
        ctx.env.overlay.undo_to(overlay_savepoint);
        let timestamp_ms = copy.timestamp_ms;
        let (key, value, mut headers) = self.serialize(copy)?;
        let tier = attempt as usize - 1;
        if retry && tier < self.topics.len() {
            let due_ms = ctx
                .env
                .wall_clock_ms
                .saturating_add(self.spec.backoff_ms[tier]);
            tracing::info!(task = %ctx.env.task, topic = %self.topics[tier], attempt,
                due_ms, error = %error, "record to retry topic");
            let mut h = |k: &str, v: String| headers.push((k.to_string(), Some(v.into_bytes())));
            h(HEADER_ATTEMPT, (attempt + 1).to_string());
            h(HEADER_DUE_MS, due_ms.to_string());
            h("strom.original.topic", origin.meta.topic.to_string());
            h(
                "strom.original.partition",
                origin.meta.partition.to_string(),
            );
            h("strom.original.offset", origin.meta.offset.to_string());
            h("strom.original.timestamp", origin.timestamp_ms.to_string());
            h("strom.error.kind", "processing".to_string());
            h("strom.error", error.to_string());
            ctx.env.outputs.push(OutputRecord {
                topic: self.topics[tier].clone(),
                // The task's own partition: the record comes back to this task, where
                // its key's state lives (the retry topics have the task count).
                partition: Some(ctx.env.task.partition),
                key,
                value,
                timestamp_ms,
                headers,
            });
            ctx.env.retry_topic_records += 1;
            return Ok(());
        }
        let dead_letter = self
            .spec
            .dead_letter_topic
            .clone()
            .or_else(|| ctx.env.dead_letter_topic.clone());
        let Some(topic) = dead_letter else {
            // No dead-letter topic: the processing handler decides (fail, or log and
            // skip).
            return Err(error);
        };
        let letter = DeadLetter {
            key,
            value,
            timestamp_ms: origin.timestamp_ms,
            headers,
            kind: "processing",
            error: error.to_string(),
            extra: vec![(HEADER_ATTEMPTS, attempt.to_string())],
        };
        ctx.env.dead_letter_from(Some(topic), letter, &origin.meta);
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut NodeContext<'_>,
        schedule: usize,
        time_ms: i64,
    ) -> Result<(), ProcessError> {
        self.inner.punctuate(ctx, schedule, time_ms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn a_record_waits_until_its_due_time() {
        let headers = h(&[(HEADER_DUE_MS, "1000")]);
        assert_eq!(wait_ms(&headers, 400), Some(600));
        assert_eq!(wait_ms(&headers, 1000), None);
        assert_eq!(wait_ms(&h(&[]), 0), None, "no due header: due now");
    }

    #[test]
    fn specs_out_of_bounds_are_refused() {
        assert!(RetryTopics::new("a").check().is_ok());
        assert!(RetryTopics::new("").check().is_err());
        assert!(RetryTopics::new("a b").check().is_err());
        assert!(RetryTopics::new("a").backoff_ms([]).check().is_err());
        assert!(RetryTopics::new("a").backoff_ms([10, 0]).check().is_err());
        assert!(RetryTopics::new("a")
            .backoff_ms(vec![1; RETRY_TIERS_MAX + 1])
            .check()
            .is_err());
        let policy = crate::resilience::RetryPolicy {
            max_attempts: 4,
            initial_delay: std::time::Duration::from_secs(1),
            multiplier: 10.0,
            max_delay: std::time::Duration::from_secs(60),
        };
        let r = RetryTopics::new("calls").backoff(&policy);
        assert_eq!(r.tiers_ms(), &[1_000, 10_000, 60_000]);
        assert_eq!(
            r.topics("app"),
            vec![
                "app-calls-retry-1",
                "app-calls-retry-2",
                "app-calls-retry-3"
            ]
        );
    }
}
