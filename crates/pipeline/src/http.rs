//! A running pipeline's HTTP server: `/metrics` (Prometheus), `/healthz`, `/readyz`,
//! `/api/summary`, the WebSocket endpoints and the live views ([`crate::dashboard`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use strom_streams::runtime::KafkaStreams;

use crate::connectors::metrics::{SinkMetrics, HALF_OPEN, OPEN};
use crate::connectors::websocket::Hub;
use crate::dashboard::routes::{self, Site};
use crate::op_metrics::OpMetrics;

/// The paths of the server's own routes; a WebSocket endpoint may not take one.
const PATHS: &[&str] = &["/metrics", "/healthz", "/readyz"];

/// What the handlers read.
#[derive(Clone)]
pub(crate) struct HttpState {
    /// The pipeline's name (a label of every metric).
    pub pipeline: String,
    /// The strom-streams application.
    pub streams: Arc<KafkaStreams>,
    /// Each external sink's metrics.
    pub sinks: Vec<Arc<SinkMetrics>>,
    /// Each operation's metrics.
    pub ops: Arc<Vec<Arc<OpMetrics>>>,
    /// The WebSocket endpoints.
    pub hub: Arc<Hub>,
}

/// Why `path` cannot be a WebSocket endpoint, if it cannot: another route has it.
pub(crate) fn reserved(path: &str) -> Option<String> {
    let taken = PATHS
        .iter()
        .chain(routes::PATHS)
        .any(|p| match p.strip_suffix('/') {
            Some(prefix) if !prefix.is_empty() => path == prefix || path.starts_with(p),
            _ => path == *p,
        });
    taken.then(|| {
        format!(
            "endpoint {path} is taken by the pipeline's HTTP server ({} {}): choose another",
            PATHS.join(" "),
            routes::PATHS.join(" ")
        )
    })
}

/// Binds `addr` on `runtime` and serves every route there; returns the bound address.
pub(crate) fn serve(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    state: HttpState,
    site: Site,
) -> Result<SocketAddr, String> {
    let router: Router = state
        .hub
        .router()
        .merge(site.router())
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .route("/readyz", get(health))
        .route("/api/summary", get(summary))
        .with_state(state);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| format!("http {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "pipeline http server stopped");
        }
    });
    Ok(bound)
}

async fn metrics(State(s): State<HttpState>) -> String {
    let mut out = s.streams.render_prometheus();
    crate::op_metrics::render(&mut out, &s.pipeline, &s.ops);
    crate::connectors::metrics::render(&mut out, &s.pipeline, &s.sinks);
    let (clients, dropped) = (s.hub.clients(), s.hub.dropped());
    let p = &s.pipeline;
    out.push_str(&format!(
        "# HELP strom_pipeline_websocket_clients WebSocket clients connected.\n\
         # TYPE strom_pipeline_websocket_clients gauge\n\
         strom_pipeline_websocket_clients{{pipeline=\"{p}\"}} {clients}\n\
         # HELP strom_pipeline_websocket_dropped_total Messages slow WebSocket clients lost.\n\
         # TYPE strom_pipeline_websocket_dropped_total counter\n\
         strom_pipeline_websocket_dropped_total{{pipeline=\"{p}\"}} {dropped}\n"
    ));
    out
}

async fn health(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.streams.is_running() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "a stream thread stopped\n")
    }
}

/// The counters a page shows, as JSON: cheap reads of the same atomics as `/metrics`.
async fn summary(State(s): State<HttpState>) -> Response {
    let m = s.streams.metrics();
    let outputs: Vec<_> = s
        .sinks
        .iter()
        .map(|o| {
            let circuit = match o.circuit_state.load(Ordering::Relaxed) {
                OPEN => "open",
                HALF_OPEN => "half-open",
                _ => "closed",
            };
            json!({
                "name": o.name,
                "type": o.kind,
                "written": o.written.load(Ordering::Relaxed),
                "dead_lettered": o.dead_lettered.load(Ordering::Relaxed),
                "retries": o.retries.load(Ordering::Relaxed),
                "circuit": circuit,
            })
        })
        .collect();
    let body = json!({
        "pipeline": s.pipeline,
        "running": s.streams.is_running(),
        "records_processed": m.records_processed,
        "records_skipped": m.records_skipped,
        "late_records": m.late_records,
        "websocket_clients": s.hub.clients(),
        "websocket_dropped": s.hub.dropped(),
        "outputs": outputs,
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::reserved;

    #[test]
    fn endpoints_may_not_take_the_servers_paths() {
        for taken in [
            "/",
            "/metrics",
            "/healthz",
            "/live",
            "/live.js",
            "/api",
            "/api/endpoints",
            "/dashboard/x",
        ] {
            assert!(reserved(taken).is_some(), "{taken}");
        }
        for free in ["/updates", "/driver-updates", "/lively", "/apis"] {
            assert_eq!(reserved(free), None, "{free}");
        }
    }
}
