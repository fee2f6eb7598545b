//! `elasticsearch` sink: any Elasticsearch- or OpenSearch-compatible `_bulk` endpoint.
//!
//! Each record is an `index` action into `index` with document id
//! [`SinkRecord::document_id`] (key, plus the window start of windowed results): a replay
//! overwrites the same document. Items the server refuses with 429 or 5xx, or a failed
//! request, make the batch go again; other refused items (a mapping conflict) go to the
//! dead-letter topic with the server's reason. `url` (or `STROM_SINK_ELASTICSEARCH_URL`)
//! defaults to `http://127.0.0.1:9200`; `headers` are sent with each request
//! (`Authorization`).

use serde_json::Value as Json;

use super::{fill, map_setting, setting_or_env, Rejected, SinkRecord, WriteResult};
use crate::spec::Sink;

/// An Elasticsearch/OpenSearch `_bulk` writer.
pub struct ElasticSink {
    client: reqwest::Client,
    bulk_url: String,
    index: String,
    id: Option<String>,
    headers: Vec<(String, String)>,
}

impl ElasticSink {
    /// Reads the settings.
    pub fn new(sink: &Sink, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let url =
            setting_or_env(sink, "url", env, Some("http://127.0.0.1:9200")).unwrap_or_default();
        Ok(ElasticSink {
            client: super::webhook::http_client()?,
            bulk_url: format!("{}/_bulk", url.trim_end_matches('/')),
            index: sink.setting("index").unwrap_or("strom").to_string(),
            id: sink.setting("id").map(str::to_string),
            headers: map_setting(sink, "headers"),
        })
    }

    /// Sends the batch as one `_bulk` request.
    pub async fn write(&mut self, batch: &[SinkRecord]) -> WriteResult {
        let mut body = String::with_capacity(batch.len() * 128);
        let mut rejected = Vec::new();
        let mut sent = Vec::with_capacity(batch.len());
        for (index, r) in batch.iter().enumerate() {
            let id = match &self.id {
                Some(p) => fill(p, &r.key, &r.value),
                None => Ok(r.document_id()),
            };
            let target = fill(&self.index, &r.key, &r.value);
            match (id, target) {
                (Ok(id), Ok(target)) => {
                    let action = serde_json::json!({"index": {"_index": target, "_id": id}});
                    body.push_str(&action.to_string());
                    body.push('\n');
                    body.push_str(&r.value.to_string());
                    body.push('\n');
                    sent.push(index);
                }
                (Err(reason), _) | (_, Err(reason)) => rejected.push(Rejected { index, reason }),
            }
        }
        if sent.is_empty() {
            return Ok(rejected);
        }
        let mut request = self
            .client
            .post(&self.bulk_url)
            .header("content-type", "application/x-ndjson")
            .body(body);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        if let Some(tp) = batch.iter().find_map(|r| r.traceparent.as_deref()) {
            request = request.header("traceparent", tp);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("elasticsearch: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("elasticsearch: {e}"))?;
        if !status.is_success() {
            return Err(format!("elasticsearch: HTTP {status}: {}", clip(&text)));
        }
        let answer: Json = serde_json::from_str(&text).map_err(|e| {
            format!(
                "elasticsearch: unreadable _bulk answer ({e}): {}",
                clip(&text)
            )
        })?;
        if answer.get("errors").and_then(Json::as_bool) != Some(true) {
            return Ok(rejected);
        }
        let items = answer
            .get("items")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        for (item, &index) in items.iter().zip(&sent) {
            let result = item.get("index").unwrap_or(item);
            let code = result.get("status").and_then(Json::as_u64).unwrap_or(0);
            if (200..300).contains(&code) {
                continue;
            }
            if code == 429 || code >= 500 {
                return Err(format!(
                    "elasticsearch: item status {code}, the batch goes again"
                ));
            }
            let reason = result
                .get("error")
                .map(|e| e.get("reason").unwrap_or(e).to_string())
                .unwrap_or_else(|| format!("status {code}"));
            rejected.push(Rejected {
                index,
                reason: format!("elasticsearch refused ({code}): {reason}"),
            });
        }
        rejected.sort_by_key(|r| r.index);
        Ok(rejected)
    }
}

/// The first 300 characters of an answer, for error messages.
pub(crate) fn clip(text: &str) -> &str {
    match text.char_indices().nth(300) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
