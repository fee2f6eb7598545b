//! `websocket` sink: results pushed live to WebSocket clients of the pipeline's HTTP
//! server.
//!
//! The sink serves `endpoint` (default `/<for>` when the output has `for`, else
//! `/updates`). A client connects to `ws://<http addr><endpoint>`, optionally with
//! `?key=<record key>` to receive only that key's results (one driver, one chat), and
//! receives each result's JSON value as a text message. With `?envelope=true` each
//! message is `{"key": "<record key>", "value": <the JSON value>}` instead: the record key
//! (an aggregation's group key) identifies a result, which the live views
//! ([`crate::dashboard`]) need to keep the latest result per key. Every instance of a scaled-out
//! pipeline reads all of the sink's partitions from their end, so a client may connect
//! to any instance. A client too slow to keep up loses the oldest messages it has not
//! read (counted in `strom_pipeline_websocket_dropped_total`), never the pipeline's
//! progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::broadcast;

use super::{Rejected, SinkRecord};
use crate::spec::Sink;

/// Messages buffered per endpoint for slow clients.
const BUFFER: usize = 4096;

/// One result as clients receive it.
#[derive(Debug)]
struct Published {
    key: String,
    text: String,
}

/// The publishing side of one endpoint.
#[derive(Clone)]
pub struct WebSocketSink {
    tx: broadcast::Sender<Arc<Published>>,
}

impl WebSocketSink {
    /// Sends the batch to every connected client (none connected: nothing to do).
    pub fn publish(&self, batch: &[SinkRecord]) -> Vec<Rejected> {
        for r in batch {
            let _ = self.tx.send(Arc::new(Published {
                key: r.key.clone(),
                text: r.value.to_string(),
            }));
        }
        Vec::new()
    }
}

/// The endpoint an output serves.
pub fn endpoint(sink: &Sink) -> String {
    let path = match (sink.setting("endpoint"), &sink.route) {
        (Some(e), _) => e.to_string(),
        (None, Some(route)) => route.clone(),
        (None, None) => "updates".to_string(),
    };
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// The WebSocket endpoints of a pipeline and their clients.
#[derive(Default)]
pub struct Hub {
    endpoints: HashMap<String, WebSocketSink>,
    clients: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl Hub {
    /// The sink publishing to `path` (created on first use; outputs may share one).
    pub fn sink(&mut self, path: &str) -> WebSocketSink {
        self.endpoints
            .entry(path.to_string())
            .or_insert_with(|| WebSocketSink {
                tx: broadcast::channel(BUFFER).0,
            })
            .clone()
    }

    /// Clients connected now.
    pub fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Messages slow clients lost.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Routes for every endpoint.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let mut router = Router::new();
        for (path, sink) in &self.endpoints {
            let state = Subscription {
                tx: sink.tx.clone(),
                clients: self.clients.clone(),
                dropped: self.dropped.clone(),
            };
            router = router.route(path, get(subscribe).with_state(state));
        }
        router
    }
}

#[derive(Clone)]
struct Subscription {
    tx: broadcast::Sender<Arc<Published>>,
    clients: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

async fn subscribe(
    ws: WebSocketUpgrade,
    Query(query): Query<HashMap<String, String>>,
    State(sub): State<Subscription>,
) -> Response {
    let rx = sub.tx.subscribe();
    let key = query.get("key").cloned();
    let enveloped = query
        .get("envelope")
        .is_some_and(|v| matches!(v.as_str(), "true" | "1"));
    ws.on_upgrade(move |socket| forward(socket, rx, key, enveloped, sub))
}

/// A result with its record key: `{"key": KEY, "value": VALUE}` (`value` is JSON text).
fn envelope(key: &str, value: &str) -> String {
    format!(
        "{{\"key\":{},\"value\":{value}}}",
        serde_json::Value::from(key)
    )
}

/// Sends the endpoint's results (those of `key`, if given; in envelopes if asked) until
/// the client leaves.
async fn forward(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<Arc<Published>>,
    key: Option<String>,
    enveloped: bool,
    sub: Subscription,
) {
    sub.clients.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Ok(p) => {
                    if key.as_deref().is_some_and(|k| k != p.key) {
                        continue;
                    }
                    let text = if enveloped { envelope(&p.key, &p.text) } else { p.text.clone() };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    sub.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    sub.clients.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::envelope;

    #[test]
    fn an_envelope_carries_the_key_as_a_json_string_and_the_value_as_is() {
        let text = envelope("c\"7", r#"{"count":3}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            back,
            serde_json::json!({"key": "c\"7", "value": {"count": 3}})
        );
    }
}
