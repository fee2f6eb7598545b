//! `http`, `push_notification` and `sms_fallback` sinks: webhooks.
//!
//! Records go to `url` with `method` (default POST) and `headers`, `batch_size` at a time
//! (default 1: the JSON value as the body; more: a JSON array of values). Each request
//! carries `Idempotency-Key: <topic>-<partition>-<offset>` of its first record, so a
//! receiver can drop a replayed request, and the first record's `traceparent`. A 2xx
//! answer is success; a failed connection, 408, 429 or 5xx makes the batch go again;
//! other answers (400, 404, 422, …) send the request's records to the dead-letter topic
//! with the status and body. `url` may come from `STROM_SINK_<TYPE>_URL`
//! (`STROM_SINK_PUSH_NOTIFICATION_URL`), so the seeds run as written.

use super::{map_setting, setting_or_env, Rejected, SinkRecord, WriteResult};
use crate::spec::Sink;

/// A webhook writer.
pub struct WebhookSink {
    client: reqwest::Client,
    url: String,
    method: reqwest::Method,
    headers: Vec<(String, String)>,
    batch_size: usize,
}

/// The HTTP client the HTTP-based sinks share: rustls on ring, 30 s per request.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

impl WebhookSink {
    /// Reads the settings; `url` is required (setting or environment).
    pub fn new(sink: &Sink, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let Some(url) = setting_or_env(sink, "url", env, None) else {
            return Err(format!(
                "{} output needs a `url` (or the environment variable STROM_SINK_{}_URL)",
                sink.kind,
                sink.kind.to_uppercase()
            ));
        };
        let method = sink.setting("method").unwrap_or("POST").to_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("method {method:?} is not an HTTP method"))?;
        let batch_size = super::count(sink, "batch_size", 1)?;
        Ok(WebhookSink {
            client: http_client()?,
            url,
            method,
            headers: map_setting(sink, "headers"),
            batch_size,
        })
    }

    /// Sends the batch, `batch_size` records per request, in order.
    pub async fn write(&mut self, batch: &[SinkRecord]) -> WriteResult {
        let mut rejected = Vec::new();
        for (chunk_no, chunk) in batch.chunks(self.batch_size).enumerate() {
            let first = &chunk[0];
            let body = if self.batch_size == 1 {
                first.value.to_string()
            } else {
                serde_json::Value::Array(chunk.iter().map(|r| r.value.clone()).collect())
                    .to_string()
            };
            let mut request = self
                .client
                .request(self.method.clone(), &self.url)
                .header("content-type", "application/json")
                .header(
                    "idempotency-key",
                    format!("{}-{}-{}", first.topic, first.partition, first.offset),
                )
                .body(body);
            for (k, v) in &self.headers {
                request = request.header(k, v);
            }
            if let Some(tp) = &first.traceparent {
                request = request.header("traceparent", tp);
            }
            let response = request
                .send()
                .await
                .map_err(|e| format!("{}: {e}", self.url))?;
            let status = response.status();
            if status.is_success() {
                continue;
            }
            let code = status.as_u16();
            let text = response.text().await.unwrap_or_default();
            if code == 408 || code == 429 || status.is_server_error() {
                return Err(format!(
                    "{}: HTTP {status}: {}",
                    self.url,
                    super::elastic::clip(&text)
                ));
            }
            let reason = format!(
                "{} answered HTTP {status}: {}",
                self.url,
                super::elastic::clip(&text)
            );
            let base = chunk_no * self.batch_size;
            rejected.extend((0..chunk.len()).map(|i| Rejected {
                index: base + i,
                reason: reason.clone(),
            }));
        }
        Ok(rejected)
    }
}
