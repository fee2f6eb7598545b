//! A minimal HTTP/1.1 server on a std thread for the instance's `/metrics` and
//! interactive queries: one request per connection, GET only, small heads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// An HTTP response.
pub(crate) struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
    /// A `Location` header (redirects to the instance that holds a key).
    pub location: Option<String>,
}

impl Response {
    pub fn ok(content_type: &'static str, body: String) -> Self {
        Response {
            status: "200 OK",
            content_type,
            body,
            location: None,
        }
    }

    pub fn error(status: &'static str, message: &str) -> Self {
        let body = serde_json::json!({ "error": message }).to_string();
        Response {
            status,
            content_type: "application/json",
            body,
            location: None,
        }
    }
}

/// Routes a request target (`/path?query`) to a response.
pub(crate) type Route = Arc<dyn Fn(&str) -> Response + Send + Sync>;

/// Serves `route` on `addr` until `stop` returns true; returns the bound address.
pub(crate) fn serve(
    addr: SocketAddr,
    route: Route,
    stop: Arc<dyn Fn() -> bool + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("strom-streams-http".into())
        .spawn(move || {
            while !stop() {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        // Read the whole request head (a client may send it in pieces):
                        // closing with unread bytes would reset the connection.
                        let mut buf = Vec::with_capacity(1024);
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&buf);
                        let mut words = head.split_whitespace();
                        let response = match (words.next(), words.next()) {
                            (Some("GET"), Some(target)) => route(target),
                            _ => Response::error("405 Method Not Allowed", "only GET is served"),
                        };
                        let location = response
                            .location
                            .map(|l| format!("Location: {l}\r\n"))
                            .unwrap_or_default();
                        let _ = write!(
                            conn,
                            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{location}Connection: close\r\n\r\n{}",
                            response.status,
                            response.content_type,
                            response.body.len(),
                            response.body
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
    Ok(bound)
}
