//! One client connection: a reader that decodes and dispatches requests in order, and
//! a writer that sends their responses in the same order. Requests that wait (acks=all
//! produce, long-poll fetch) run as their own tasks, so the reader can go on; the
//! channel between the two bounds how many requests are in flight.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::frame::{read_frame, ReadFrameError};
use crate::broker::Shared;
use crate::handlers::{self, Reply};
use crate::protocol::{self, FrameError};

/// A response waiting for its turn on the wire.
enum Response {
    Ready(BytesMut),
    Later(JoinHandle<Result<BytesMut, FrameError>>),
}

/// A response with what its request was, for the request metrics.
struct Pending {
    response: Response,
    api: String,
    version: i16,
    received: Instant,
}

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    /// The client closed it, or the broker is shutting down.
    Normal,
    /// The client sent something that is not a valid request.
    Malformed(String),
    /// The socket failed.
    Io(String),
}

/// Serves `stream` until the client leaves, sends a malformed frame, or `shutdown`
/// turns true (then in-flight requests still get their responses).
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (tx, mut rx) =
        mpsc::channel::<Pending>(shared.cluster.config.requests_in_flight_max.max(1));
    let metrics = Arc::clone(&shared.metrics);
    let writer = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            let response = match pending.response {
                Response::Ready(buf) => buf,
                Response::Later(task) => match task.await {
                    Ok(Ok(buf)) => buf,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(e) => return Err(format!("request task failed: {e}")),
                },
            };
            if let Err(e) = write_half.write_all(&response).await {
                return Err(e.to_string());
            }
            metrics.request(&pending.api, pending.version, pending.received.elapsed());
        }
        Ok(())
    });

    let max = shared.cluster.config.request_bytes_max;
    let mut client_id: Option<String> = None;
    let mut requests: u64 = 0;
    let close = loop {
        if *shutdown.borrow() {
            break Close::Normal;
        }
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max) => frame,
            _ = shutdown.changed() => break Close::Normal,
        };
        let received = Instant::now();
        let mut frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break Close::Normal,
            Err(ReadFrameError::Io(e)) => break Close::Io(e.to_string()),
            Err(e) => break Close::Malformed(e.to_string()),
        };
        let header = match protocol::decode_header(&mut frame) {
            Ok(header) => header,
            Err(e) => break Close::Malformed(e.to_string()),
        };
        if requests == 0 {
            client_id.clone_from(&header.client_id);
            let client = client_id.as_deref().unwrap_or("-");
            tracing::info!(%peer, client_id = client, "connection opened");
        }
        requests += 1;
        let api = header
            .api_key
            .map_or_else(|k| format!("key {k}"), |a| format!("{a:?}"));
        tracing::trace!(%peer, api, version = header.api_version, correlation_id = header.correlation_id, "request");
        let reply = match handlers::dispatch(&shared, &header, frame, peer).await {
            Ok(reply) => reply,
            Err(e) => break Close::Malformed(e.to_string()),
        };
        let response = match reply {
            Reply::None => {
                shared
                    .metrics
                    .request(&api, header.api_version, received.elapsed());
                continue;
            }
            Reply::Ready(buf) => Response::Ready(buf),
            Reply::Later(task) => Response::Later(task),
        };
        let pending = Pending {
            response,
            api,
            version: header.api_version,
            received,
        };
        if tx.send(pending).await.is_err() {
            break Close::Io("response writer stopped".into());
        }
    };
    drop(tx);
    let written = writer.await.unwrap_or_else(|e| Err(e.to_string()));
    let client = client_id.as_deref().unwrap_or("-");
    match (close, written) {
        (Close::Malformed(reason), _) => {
            shared
                .stats
                .malformed_frames
                .fetch_add(1, Ordering::Relaxed);
            shared.metrics.malformed();
            tracing::warn!(%peer, client_id = client, requests, reason = %reason, "connection closed: malformed request");
        }
        (Close::Io(reason), _) | (Close::Normal, Err(reason)) => {
            tracing::info!(%peer, client_id = client, requests, reason = %reason, "connection closed: socket error");
        }
        (Close::Normal, Ok(())) => {
            tracing::info!(%peer, client_id = client, requests, "connection closed");
        }
    }
}
