//! External sinks (feature `runtime`): Redis, Redis GEO, Elasticsearch/OpenSearch,
//! PostgreSQL, webhooks and WebSocket subscribers.
//!
//! The topology writes what an external sink receives to an internal topic,
//! `<pipeline>-sink-<name>` ([`topic`]) — transactionally under exactly-once, so a sink
//! never sees an aborted result. A [`worker`] per sink consumes that topic
//! (`read_committed`, consumer group `<pipeline>-sink-<name>`) and writes batches to the
//! target; it commits the topic's offsets only after the target has them. So a crash
//! replays at most the last batch, and every target write is idempotent (keys and
//! document ids come from the record, PostgreSQL skips offsets it already has), which
//! makes the results in the target exact. A target that is down holds the batch: the
//! worker retries with exponential backoff, then opens its circuit breaker and stops
//! consuming (Kafka buffers the rest) until a trial write succeeds. Records the target
//! rejects for good go to the dead-letter topic with the reason.

pub mod elastic;
pub mod metrics;
pub mod postgres;
pub mod redis;
pub mod webhook;
pub mod websocket;
pub mod worker;

use serde_json::Value as Json;

use crate::spec::{Pipeline, Sink, Value};

/// One record for a sink: the topology's output and where it was read from.
#[derive(Debug, Clone)]
pub struct SinkRecord {
    /// The record key (the group key of aggregations).
    pub key: String,
    /// The JSON value.
    pub value: Json,
    /// Internal topic, partition and offset: the record's identity for idempotence.
    pub topic: String,
    /// Partition of the internal topic.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// W3C trace context from the record's `traceparent` header, passed on to targets
    /// that take one (HTTP headers).
    pub traceparent: Option<String>,
}

impl SinkRecord {
    /// A stable id for the record's result: the key, plus `@<window_start>` for windowed
    /// results — replays overwrite the same document or row.
    pub fn document_id(&self) -> String {
        match self.value.get("window_start").and_then(Json::as_i64) {
            Some(start) => format!("{}@{start}", self.key),
            None => self.key.clone(),
        }
    }
}

/// A record the target refused for good (bad data, not a failed connection): it goes to
/// the dead-letter topic with `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index in the batch.
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// The outcome of writing a batch: the records refused for good, or a transient error
/// (the whole batch is written again later; targets are idempotent).
pub type WriteResult = Result<Vec<Rejected>, String>;

/// A connected sink target.
pub enum Target {
    /// `redis` and `redis-geo`.
    Redis(redis::RedisSink),
    /// `elasticsearch`.
    Elastic(elastic::ElasticSink),
    /// `postgres`.
    Postgres(postgres::PostgresSink),
    /// `http`, `push_notification`, `sms_fallback`.
    Webhook(webhook::WebhookSink),
    /// `websocket`.
    WebSocket(websocket::WebSocketSink),
}

impl Target {
    /// Connects the sink of `sink.kind`; `name` (`<pipeline>-sink-<name>`, unique per
    /// pipeline and sink) keys its PostgreSQL offsets.
    pub async fn connect(
        name: &str,
        sink: &Sink,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, String> {
        Ok(match sink.kind.as_str() {
            "redis" | "redis-geo" => Target::Redis(redis::RedisSink::connect(sink, env).await?),
            "elasticsearch" => Target::Elastic(elastic::ElasticSink::new(sink, env)?),
            "postgres" => Target::Postgres(postgres::PostgresSink::connect(name, sink, env).await?),
            "http" | "push_notification" | "sms_fallback" => {
                Target::Webhook(webhook::WebhookSink::new(sink, env)?)
            }
            other => return Err(format!("{other} is not an external sink")),
        })
    }

    /// Writes a batch (in order); see [`WriteResult`].
    pub async fn write(&mut self, batch: &[SinkRecord]) -> WriteResult {
        match self {
            Target::Redis(s) => s.write(batch).await,
            Target::Elastic(s) => s.write(batch).await,
            Target::Postgres(s) => s.write(batch).await,
            Target::Webhook(s) => s.write(batch).await,
            Target::WebSocket(s) => Ok(s.publish(batch)),
        }
    }

    /// Drops a broken connection so the next write reconnects.
    pub async fn reconnect(&mut self) -> Result<(), String> {
        match self {
            Target::Redis(s) => s.reconnect().await,
            Target::Postgres(s) => s.reconnect().await,
            _ => Ok(()),
        }
    }
}

/// Sinks written through an internal topic (every type but `kafka`).
pub fn is_external(sink: &Sink) -> bool {
    sink.kind != "kafka"
}

/// The sink's name: its `name` setting, else its type, with `-<n>` (its position among
/// the outputs, from 1) when another output has the same type.
pub fn name(p: &Pipeline, index: usize) -> String {
    let sink = &p.sinks[index];
    if let Some(n) = sink.setting("name") {
        return n.to_string();
    }
    let same = p.sinks.iter().filter(|s| s.kind == sink.kind).count();
    if same > 1 {
        format!("{}-{}", sink.kind, index + 1)
    } else {
        sink.kind.clone()
    }
}

/// The internal topic an external sink reads: `<pipeline>-sink-<name>`.
pub fn topic(p: &Pipeline, index: usize) -> String {
    format!("{}-sink-{}", p.name, name(p, index))
}

/// A setting, else the environment variable `STROM_SINK_<TYPE>_<SETTING>` (type and
/// setting upper-cased, `-` as `_`), else `default`.
pub fn setting_or_env(
    sink: &Sink,
    setting: &str,
    env: &dyn Fn(&str) -> Option<String>,
    default: Option<&str>,
) -> Option<String> {
    if let Some(v) = sink.setting(setting) {
        return Some(v.to_string());
    }
    let var = format!("STROM_SINK_{}_{}", sink.kind, setting)
        .to_uppercase()
        .replace('-', "_");
    env(&var).or_else(|| default.map(str::to_string))
}

/// A duration setting in milliseconds, or `default_ms`.
pub fn duration_ms(sink: &Sink, setting: &str, default_ms: i64) -> Result<i64, String> {
    match sink.setting(setting) {
        None => Ok(default_ms),
        Some(t) => crate::duration::parse_ms(t).map_err(|e| format!("{setting}: {e}")),
    }
}

/// A whole-number setting above 0, or `default`.
pub fn count(sink: &Sink, setting: &str, default: usize) -> Result<usize, String> {
    match sink.setting(setting) {
        None => Ok(default),
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{setting} {t:?}: a number above 0")),
    }
}

/// A map setting (`headers: {X-Api-Key: …}`) as pairs.
pub fn map_setting(sink: &Sink, setting: &str) -> Vec<(String, String)> {
    match sink.settings.iter().find(|(k, _)| k == setting) {
        Some((_, Value::Map(pairs))) => pairs
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_text()?.to_string())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Fills `{field}` placeholders from the record: `{key}` is the record key, `{a.b}` a
/// nested field; strings are inserted as they are, other values as JSON. A missing field
/// is an error naming it (the record goes to the dead-letter topic).
pub fn fill(pattern: &str, key: &str, value: &Json) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let name = &rest[open + 1..open + close];
        if name == "key" {
            out.push_str(key);
        } else {
            match crate::compile::field(value, name) {
                Some(Json::String(s)) => out.push_str(s),
                Some(Json::Null) | None => {
                    return Err(format!("the record has no field {name:?} for {pattern:?}"))
                }
                Some(other) => out.push_str(&other.to_string()),
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_fill_from_fields_and_key() {
        let v = json!({"user_id": "u1", "geo": {"region": "9q8"}, "n": 7});
        assert_eq!(fill("rec:{user_id}", "k", &v).unwrap(), "rec:u1");
        assert_eq!(
            fill("d:{geo.region}:{n}:{key}", "k", &v).unwrap(),
            "d:9q8:7:k"
        );
        assert_eq!(fill("plain", "k", &v).unwrap(), "plain");
        let err = fill("rec:{missing}", "k", &v).unwrap_err();
        assert!(err.contains("\"missing\""), "{err}");
    }

    #[test]
    fn windowed_results_get_one_document_per_window() {
        let r = |value| SinkRecord {
            key: "c7".into(),
            value,
            topic: "t".into(),
            partition: 0,
            offset: 0,
            traceparent: None,
        };
        assert_eq!(
            r(json!({"window_start": 300000})).document_id(),
            "c7@300000"
        );
        assert_eq!(r(json!({"n": 1})).document_id(), "c7");
    }
}
