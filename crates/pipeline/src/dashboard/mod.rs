//! Live HTML views of a running pipeline, served by its HTTP server.
//!
//! # What is served
//!
//! A pipeline's HTTP server (`strom pipeline run --http-addr`; a pipeline with a
//! `websocket` output or a `dashboard` binds `127.0.0.1:0` without one) serves, beside
//! `/metrics`, `/healthz`, `/readyz` and the WebSocket endpoints:
//!
//! | path | what |
//! | --- | --- |
//! | `GET /` | the pipeline's own page (`dashboard:`), else the built-in live view |
//! | `GET /live` | the built-in live view, always |
//! | `GET /live.js` | the JavaScript helper both use (below) |
//! | `GET /dashboard/<file>` | static files next to the `dashboard` page (`.html`, `.js`, `.css`, `.json`, `.svg`, images, fonts; no hidden files, nothing outside that folder) |
//! | `GET /api/endpoints` | `{"pipeline": NAME, "endpoints": [{"path": "/updates", "outputs": ["websocket"]}]}` |
//! | `GET /api/summary` | the counters of `/metrics` that a page shows, as JSON |
//!
//! A WebSocket endpoint may not take one of these paths (the pipeline does not start).
//! Everything is plain HTML and JavaScript compiled into the binary (no build step, no
//! CDN): the pages work offline. The `dashboard` page and the files next to it are read
//! at each request, so an edited page shows on reload.
//!
//! # The built-in live view
//!
//! Lists the pipeline's name and its WebSocket endpoints, subscribes to each and keeps a
//! table per endpoint of the latest result per row, newest first, at most 200 rows
//! (`?limit=N`), with the messages received and the connection's state; a dropped
//! connection is reopened with backoff. A row is a result's identity — its record key
//! (an aggregation's group key), plus `@<window_start>` for windowed results — unless
//! `?key=field,field` names the fields that identify a row; `?endpoint=/path` shows one
//! endpoint only.
//!
//! # `live.js`, for a pipeline's own page
//!
//! `<script src="/live.js"></script>` defines `window.strom`:
//!
//! - `strom.live(path, {key, limit, recordKey, render})`: subscribes to endpoint `path`
//!   (reconnecting after 250 ms, doubling up to 5 s), keeps the latest result per row
//!   key in a table of at most `limit` rows (200; the least recently updated row goes
//!   first) and calls `render(view)` at most every 100 ms after a change. `key` is a
//!   list of (dotted) value fields (`["content_id", "window_start"]`) or a function of
//!   the message `{key, value}`; the default is the result's identity above.
//!   `recordKey` subscribes to one record key only (`?key=` of the endpoint).
//!   `view.rows()` gives `{id, key, value, seq, at_ms}`, the most recently updated
//!   first; `view.table.size`, `view.received`, `view.state` (`connecting`, `open`,
//!   `closed`) and `view.connects` describe the table and the connection.
//! - `strom.table(element, rows, {columns, caption})`: renders rows as a `<table>`
//!   (text only, never HTML from data), one `<tr data-id>` per row and one
//!   `<td data-field data-value>` per column; a column is a field name or
//!   `{field, label, format(value, row)}`, by default every field seen.
//! - `strom.subscribe(path, {onMessage, onState, recordKey})` and
//!   `strom.latest({key, limit})`: the two halves of `live`, for pages that combine
//!   endpoints themselves.
//! - `strom.pipeline()` and `strom.summary()`: `/api/endpoints` and `/api/summary`.
//! - `strom.format(value, field)`: numbers rounded to 3 decimals, epoch milliseconds
//!   in `*_start`, `*_end`, `*_at`, `*_ms` and `timestamp` fields as local times.
//! - `strom.field(value, "a.b")`, `strom.wsUrl(path, params)`: the small pieces the
//!   others use.
//!
//! A page for top titles per window, for instance:
//!
//! ```html
//! <table id="top"></table>
//! <script src="/live.js"></script>
//! <script>
//!   strom.live("/view-counts", {
//!     key: ["content_id", "window_start"],
//!     render(view) {
//!       const rows = view.rows();
//!       const newest = Math.max(...rows.map(r => r.value.window_start));
//!       const top = rows.filter(r => r.value.window_start === newest)
//!         .sort((a, b) => b.value.count - a.value.count).slice(0, 10);
//!       strom.table(document.getElementById("top"), top, {columns: ["content_id", "count"]});
//!     },
//!   });
//! </script>
//! ```
//!
//! The subscriptions use the endpoints' `?envelope=true` form (see the `websocket`
//! output), whose messages carry the record key beside the value. A WebSocket endpoint
//! sends what is published while a client is connected: a page shows results from the
//! moment it connected, never earlier ones.

#[cfg(feature = "runtime")]
pub mod files;
#[cfg(feature = "runtime")]
pub mod routes;

use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::spec::Pipeline;

/// The largest page or static file served (and accepted by [`locate`]).
pub const FILE_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// The page a pipeline's `dashboard` names, resolved against the folder of
/// `pipeline_file` (the path the file was read from, also the name its mistakes are
/// reported under) and checked to be a readable UTF-8 file of at most
/// [`FILE_BYTES_MAX`]. `None` when the pipeline has no `dashboard`.
pub fn locate(pipeline_file: &str, p: &Pipeline) -> Result<Option<PathBuf>, Diagnostic> {
    let Some(d) = &p.dashboard else {
        return Ok(None);
    };
    let path = Path::new(pipeline_file)
        .parent()
        .unwrap_or(Path::new(""))
        .join(&d.file);
    let problem = match std::fs::metadata(&path) {
        Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        Ok(m) if !m.is_file() => Some(format!("{} is not a file", path.display())),
        Ok(m) if m.len() > FILE_BYTES_MAX => Some(format!(
            "{} has {} bytes; a page may have at most {FILE_BYTES_MAX}",
            path.display(),
            m.len()
        )),
        Ok(_) => match std::fs::read_to_string(&path) {
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
            Ok(_) => None,
        },
    };
    match problem {
        // Absolute: the server does not depend on the working directory staying put.
        None => Ok(Some(std::path::absolute(&path).unwrap_or(path))),
        Some(problem) => Err(Diagnostic {
            file: pipeline_file.to_string(),
            line: d.at.line,
            column: d.at.column,
            message: format!("dashboard {:?}: {problem}", d.file),
        }),
    }
}
