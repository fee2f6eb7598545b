//! Who may use the REST API: HTTP Basic authentication and per-subject permissions,
//! decided by a [`Guard`] the embedding binary provides (strom checks Basic
//! credentials against the broker's SCRAM users and permissions with the broker's
//! ACLs). The registry itself keeps no users.
//!
//! Every request names at most one subject (in its path) and is a read or a write:
//! `GET`s, lookups (`POST /subjects/{s}`) and compatibility checks read; the rest
//! write. Requests without a subject (`/schemas/ids/…`, `/config`, `/mode`) are
//! decided with `subject = None`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// The client's address, as the middleware learns it (plain and TLS listeners).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// What a request does to its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads schemas, versions, configs.
    Read,
    /// Registers, deletes, changes configs or modes.
    Write,
}

/// Authentication and authorization for the REST API.
pub trait Guard: Send + Sync {
    /// Whether `password` is `user`'s.
    fn authenticate(&self, user: &str, password: &str) -> bool;

    /// Whether `user`, connected from `host` (an IP address, or `unknown`), may do
    /// `access` on `subject` (`None`: no subject, e.g. a schema by id or the global
    /// config).
    fn authorize(&self, user: &str, host: &str, subject: Option<&str>, access: Access) -> bool;
}

/// The subject a request path names, percent-decoded, and whether it reads or writes.
pub fn classify(method: &Method, path: &str) -> (Option<String>, Access) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let subject = match segments.as_slice() {
        ["subjects", subject, ..] | ["config", subject] | ["mode", subject] => Some(*subject),
        ["compatibility", "subjects", subject, ..] => Some(*subject),
        _ => None,
    }
    .map(percent_decode);
    let reads = *method == Method::GET
        || *method == Method::HEAD
        || (*method == Method::POST
            && (matches!(segments.as_slice(), ["subjects", _])
                || segments.first() == Some(&"compatibility")));
    (subject, if reads { Access::Read } else { Access::Write })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `user:password` from an `Authorization: Basic …` header.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn refuse(status: StatusCode, code: u32, message: String) -> Response {
    let body = serde_json::json!({ "error_code": code, "message": message }).to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::api::CONTENT_TYPE),
    );
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"strom schema registry\""),
        );
    }
    response
}

/// The middleware: 401 without valid Basic credentials, 403 without permission.
pub(crate) async fn require(
    State(guard): State<Arc<dyn Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(basic_credentials);
    let Some((user, password)) = credentials else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            401,
            "Unauthorized: HTTP Basic credentials required".to_owned(),
        );
    };
    if !guard.authenticate(&user, &password) {
        tracing::info!(user, "schema registry: authentication failed");
        return refuse(
            StatusCode::UNAUTHORIZED,
            401,
            "Unauthorized: wrong user or password".to_owned(),
        );
    }
    let (subject, access) = classify(request.method(), request.uri().path());
    let host = request
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0 .0.ip().to_string());
    if !guard.authorize(&user, &host, subject.as_deref(), access) {
        let what = match &subject {
            Some(s) => format!("subject '{s}'"),
            None => "the registry".to_owned(),
        };
        return refuse(
            StatusCode::FORBIDDEN,
            40301,
            format!("User '{user}' is not allowed to {access:?} {what}").to_lowercase(),
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified() {
        let cases = [
            (Method::GET, "/subjects", None, Access::Read),
            (
                Method::GET,
                "/subjects/a%2Fb/versions/1",
                Some("a/b"),
                Access::Read,
            ),
            (
                Method::POST,
                "/subjects/s/versions",
                Some("s"),
                Access::Write,
            ),
            (Method::POST, "/subjects/s", Some("s"), Access::Read),
            (Method::DELETE, "/subjects/s", Some("s"), Access::Write),
            (
                Method::POST,
                "/compatibility/subjects/s/versions/latest",
                Some("s"),
                Access::Read,
            ),
            (Method::PUT, "/config/s", Some("s"), Access::Write),
            (Method::PUT, "/config", None, Access::Write),
            (Method::GET, "/schemas/ids/1", None, Access::Read),
            (Method::DELETE, "/mode/s", Some("s"), Access::Write),
        ];
        for (method, path, subject, access) in cases {
            let (s, a) = classify(&method, path);
            assert_eq!((s.as_deref(), a), (subject, access), "{method} {path}");
        }
    }

    #[test]
    fn basic_credentials_decode() {
        let value = HeaderValue::from_static("Basic YWxpY2U6czNjcjN0OndpdGg6Y29sb25z");
        assert_eq!(
            basic_credentials(&value),
            Some(("alice".into(), "s3cr3t:with:colons".into()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!")),
            None
        );
        assert_eq!(percent_decode("a%2Fb%20c%zz%"), "a/b c%zz%");
    }
}
