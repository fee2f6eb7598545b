//! One client connection: a reader that decodes and dispatches requests in order, and
//! a writer that sends their responses in the same order. Requests that wait (acks=all
//! produce, long-poll fetch) run as their own tasks, so the reader can go on; the
//! channel between the two bounds how many requests are in flight. On TLS listeners
//! the TLS handshake comes first; the connection's [`Session`] then admits each
//! request (SASL authentication, see `security::session`) before it is dispatched.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::frame::{read_body, read_size, ReadFrameError};
use super::listener::Listener;
use super::log_limiter::connection_line;
use crate::broker::Shared;
use crate::handlers::{self, Reply};
use crate::protocol::{self, FrameError, ResponseFrame};
use crate::security::session::{Admission, UNAUTHENTICATED_FRAME_BYTES_MAX};
use crate::security::{tls, Session};

/// Longest a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response waiting for its turn on the wire.
enum Response {
    Ready(ResponseFrame),
    Later(JoinHandle<Result<ResponseFrame, FrameError>>),
}

/// A response with what its request was, for the request metrics.
struct Pending {
    response: Response,
    api: String,
    version: i16,
    received: Instant,
    /// The request's bytes in the broker-wide budget, freed once answered.
    _budget: OwnedSemaphorePermit,
}

/// Reads one frame within `frame_max` bytes, after taking its size from the
/// broker-wide budget of queued request bytes (`queued.max.request.bytes`): when the
/// budget is spent, the connection waits for other requests to be answered.
async fn read_budgeted<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_max: usize,
    shared: &Shared,
) -> Result<Option<(bytes::Bytes, OwnedSemaphorePermit)>, ReadFrameError> {
    let Some(size) = read_size(reader, frame_max).await? else {
        return Ok(None);
    };
    // A frame size fits in an i32, and the budget is at least `request_bytes_max`
    // (checked at start), so every frame fits in it once the others are answered.
    let budget = &shared.request_budget;
    let permit = match Arc::clone(budget).try_acquire_many_owned(size as u32) {
        Ok(permit) => permit,
        Err(_) => {
            shared
                .stats
                .requests_waited_for_budget
                .fetch_add(1, Ordering::Relaxed);
            Arc::clone(budget)
                .acquire_many_owned(size as u32)
                .await
                .map_err(|_| ReadFrameError::Io(std::io::Error::other("request budget closed")))?
        }
    };
    let body = read_body(reader, size).await?;
    Ok(Some((body, permit)))
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
    /// Authentication failed, or a request came before it.
    Unauthenticated(String),
}

/// Serves a newly accepted `stream` on `listener`: the TLS handshake first when
/// `tls` is set (its failure closes only this connection), then [`serve`].
pub(crate) async fn start(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let security = Arc::clone(&shared.security);
    let Some(acceptor) = tls else {
        let session = Session::new(peer, listener, security, None);
        return serve(stream, session, shared, shutdown).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let principal = tls::certificate_principal(stream.get_ref().1.peer_certificates());
            let session = Session::new(peer, listener, security, principal);
            serve(stream, session, shared, shutdown).await;
        }
        Ok(Err(error)) => {
            tracing::info!(%peer, listener = %listener.name, %error, "connection closed: TLS handshake failed");
        }
        Err(_) => {
            tracing::info!(%peer, listener = %listener.name, "connection closed: TLS handshake timed out");
        }
    }
}

/// Serves `stream` until the client leaves, sends a malformed frame, fails to
/// authenticate, or `shutdown` turns true (then in-flight requests still get their
/// responses).
async fn serve<S>(
    stream: S,
    mut session: Session,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let peer = session.peer;
    let (read_half, mut write_half) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (tx, mut rx) =
        mpsc::channel::<Pending>(shared.cluster.config.requests_in_flight_max.max(1));
    let metrics = Arc::clone(&shared.metrics);
    let writer = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            let mut response = match pending.response {
                Response::Ready(buf) => buf,
                Response::Later(task) => match task.await {
                    Ok(Ok(buf)) => buf,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(e) => return Err(format!("request task failed: {e}")),
                },
            };
            if let Err(e) = write_half.write_all_buf(&mut response).await {
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
        let frame_max = if session.authenticated() {
            max
        } else {
            max.min(UNAUTHENTICATED_FRAME_BYTES_MAX)
        };
        let frame = tokio::select! {
            frame = read_budgeted(&mut reader, frame_max, &shared) => frame,
            _ = shutdown.changed() => break Close::Normal,
        };
        let received = Instant::now();
        let (mut frame, budget) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break Close::Normal,
            Err(ReadFrameError::Io(e)) => break Close::Io(e.to_string()),
            Err(e) => break Close::Malformed(e.to_string()),
        };
        if session.expects_raw_token() {
            match session.raw_token(&frame) {
                Ok(token) => {
                    let pending = Pending {
                        response: Response::Ready(token.into()),
                        api: "SaslToken".into(),
                        version: 0,
                        received,
                        _budget: budget,
                    };
                    if tx.send(pending).await.is_err() {
                        break Close::Io("response writer stopped".into());
                    }
                    continue;
                }
                Err(reason) => {
                    tokio::time::sleep(failure_delay(&shared)).await;
                    break Close::Unauthenticated(reason);
                }
            }
        }
        let header = match protocol::decode_header(&mut frame) {
            Ok(header) => header,
            Err(e) => break Close::Malformed(e.to_string()),
        };
        if requests == 0 {
            client_id.clone_from(&header.client_id);
            let client = client_id.as_deref().unwrap_or("-");
            connection_line!(shared.connection_log, info, %peer, client_id = client, "connection opened");
        }
        requests += 1;
        let api = header
            .api_key
            .map_or_else(|k| format!("key {k}"), |a| format!("{a:?}"));
        tracing::trace!(%peer, api, version = header.api_version, correlation_id = header.correlation_id, "request");
        let request = match protocol::decode_request(&header, frame) {
            Ok(request) => request,
            Err(e) => break Close::Malformed(e.to_string()),
        };
        let reply = match session.admit(&header, request) {
            Admission::Dispatch(request) => {
                match handlers::dispatch(&shared, &header, *request, &session).await {
                    Ok(reply) => reply,
                    Err(e) => break Close::Malformed(e.to_string()),
                }
            }
            Admission::Respond(frame) => Reply::Ready(frame),
            Admission::Refuse { response, reason } => {
                tokio::time::sleep(failure_delay(&shared)).await;
                if let Some(frame) = response {
                    let pending = Pending {
                        response: Response::Ready(frame),
                        api,
                        version: header.api_version,
                        received,
                        _budget: budget,
                    };
                    let _ = tx.send(pending).await;
                }
                break Close::Unauthenticated(reason);
            }
            Admission::Close(reason) => break Close::Unauthenticated(reason),
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
            _budget: budget,
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
            connection_line!(shared.connection_log, warn, %peer, client_id = client, requests, reason = %reason, "connection closed: malformed request");
        }
        (Close::Unauthenticated(reason), _) => {
            connection_line!(shared.connection_log, warn, %peer, client_id = client, listener = %session.listener.name, principal = %session.principal, reason = %reason, "connection closed: authentication");
        }
        (Close::Io(reason), _) | (Close::Normal, Err(reason)) => {
            connection_line!(shared.connection_log, info, %peer, client_id = client, requests, reason = %reason, "connection closed: socket error");
        }
        (Close::Normal, Ok(())) => {
            connection_line!(shared.connection_log, info, %peer, client_id = client, requests, "connection closed");
        }
    }
}

/// How long a failed authentication waits before it is answered (Kafka's
/// `connection.failed.authentication.delay.ms`), to slow down password guessing.
fn failure_delay(shared: &Shared) -> Duration {
    Duration::from_millis(shared.security.sasl.failed_authentication_delay_ms)
}
