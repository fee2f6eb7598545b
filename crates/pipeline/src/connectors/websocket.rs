//! `websocket` sink: results pushed live to WebSocket clients of the pipeline's HTTP
//! server.
//!
//! The sink serves `endpoint` (default `/<for>` when the output has `for`, else
//! `/updates`). A client connects to `ws://<http addr><endpoint>`, optionally with
//! `?key=<record key>` to receive only that key's results (one driver, one chat), and
//! receives each result's JSON value as a text message. Every instance of a scaled-out
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
    ws.on_upgrade(move |socket| forward(socket, rx, key, sub))
}

/// Sends the endpoint's results (those of `key`, if given) until the client leaves.
async fn forward(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<Arc<Published>>,
    key: Option<String>,
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
                    if socket.send(Message::Text(p.text.clone().into())).await.is_err() {
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
