//! The HTTP routes of the live views: the pages, `live.js`, the `dashboard` page's
//! folder and `/api/endpoints` (see the [module docs](super)).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{files, FILE_BYTES_MAX};
use crate::connectors::{self, websocket};
use crate::spec::Pipeline;

/// The built-in live view.
const BUILTIN_HTML: &str = include_str!("assets/index.html");
/// The helper every page uses.
const LIVE_JS: &str = include_str!("assets/live.js");

/// The paths (and the prefixes, ending in `/`) these routes take; a WebSocket endpoint
/// may not use them.
pub const PATHS: &[&str] = &["/", "/live", "/live.js", "/api/", "/dashboard/"];

/// A WebSocket endpoint as `/api/endpoints` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL path, e.g. `/updates`.
    pub path: String,
    /// The outputs publishing to it (they may share one).
    pub outputs: Vec<String>,
}

/// What the live views serve for one pipeline.
#[derive(Debug, Clone)]
pub struct Site {
    pipeline: String,
    endpoints: Vec<Endpoint>,
    page: Option<PathBuf>,
}

impl Site {
    /// The views of `p`: its WebSocket endpoints in file order, and `page` (from
    /// [`super::locate`]) at `/` when it has one.
    pub fn new(p: &Pipeline, page: Option<PathBuf>) -> Self {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for (i, sink) in p.sinks.iter().enumerate() {
            if sink.kind != "websocket" {
                continue;
            }
            let path = websocket::endpoint(sink);
            let output = connectors::name(p, i);
            match endpoints.iter_mut().find(|e| e.path == path) {
                Some(e) => e.outputs.push(output),
                None => endpoints.push(Endpoint {
                    path,
                    outputs: vec![output],
                }),
            }
        }
        Site {
            pipeline: p.name.clone(),
            endpoints,
            page,
        }
    }

    /// The WebSocket endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// `/api/endpoints`.
    pub fn endpoints_json(&self) -> String {
        let endpoints: Vec<_> = self
            .endpoints
            .iter()
            .map(|e| json!({"path": e.path, "outputs": e.outputs}))
            .collect();
        json!({"pipeline": self.pipeline, "endpoints": endpoints}).to_string()
    }

    /// The routes of [`PATHS`].
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        Router::new()
            .route("/", get(index))
            .route("/live", get(|| async { page(BUILTIN_HTML) }))
            .route(
                "/live.js",
                get(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
            )
            .route("/api/endpoints", get(endpoints))
            .route("/dashboard/{*file}", get(dashboard_file))
            .with_state(Arc::new(self))
    }
}

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Pages are read at each request: an edited page shows on reload.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn page(html: &'static str) -> Response {
    asset("text/html; charset=utf-8", html)
}

async fn index(State(site): State<Arc<Site>>) -> Response {
    match &site.page {
        None => page(BUILTIN_HTML),
        Some(path) => match read(path).await {
            Ok(bytes) => asset("text/html; charset=utf-8", bytes),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the dashboard page {}: {e}\n", path.display()),
            )
                .into_response(),
        },
    }
}

async fn endpoints(State(site): State<Arc<Site>>) -> Response {
    asset("application/json", site.endpoints_json())
}

async fn dashboard_file(State(site): State<Arc<Site>>, UrlPath(file): UrlPath<String>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    let Some(root) = site.page.as_deref().and_then(Path::parent) else {
        return not_found();
    };
    let Some(path) = files::resolve(root, &file) else {
        return not_found();
    };
    // A symbolic link inside the folder may not lead out of it.
    let inside = match (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(&path).await,
    ) {
        (Ok(root), Ok(real)) => real.starts_with(root),
        _ => false,
    };
    let Some(content_type) = files::content_type(&path).filter(|_| inside) else {
        return not_found();
    };
    match read(&path).await {
        Ok(bytes) => asset(content_type, bytes),
        Err(_) => not_found(),
    }
}

/// A served file, at most [`FILE_BYTES_MAX`] bytes.
async fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = tokio::fs::metadata(path).await?;
    if !meta.is_file() || meta.len() > FILE_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "not a file of at most {FILE_BYTES_MAX} bytes"
        )));
    }
    tokio::fs::read(path).await
}
