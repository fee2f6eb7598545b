//! One connection's security: its principal, host and listener, the SASL state
//! machine (SaslHandshake, SaslAuthenticate, Kafka's legacy raw tokens after a v0
//! handshake, KIP-368 re-authentication), and the authorization calls handlers make.
//!
//! Invariants: on a SASL listener no request other than ApiVersions, SaslHandshake
//! and SaslAuthenticate is dispatched before authentication succeeds, nor after the
//! session lifetime ends without re-authentication; a re-authentication keeps the
//! principal.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;

use super::acl::{Operation, Resource};
use super::sasl::{SaslExchange, SaslMechanism, SaslStep};
use super::{denied_code, Security};
use crate::net::listener::Listener;
use crate::protocol::{encode_response, Header, Request, ResponseFrame};

/// The principal of clients that did not authenticate.
pub(crate) const ANONYMOUS: &str = "User:ANONYMOUS";

/// Largest frame accepted before authentication (Kafka's `sasl.server.max.receive.size`).
pub(crate) const UNAUTHENTICATED_FRAME_BYTES_MAX: usize = 512 * 1024;

/// What the connection does with a request after the session looked at it.
pub(crate) enum Admission {
    /// Hand it to the handlers (boxed: requests are large, the other answers small).
    Dispatch(Box<Request>),
    /// Send this response (a SASL step) and go on.
    Respond(ResponseFrame),
    /// Send this response, if any, after the failed-authentication delay; then close.
    Refuse {
        /// The error response.
        response: Option<ResponseFrame>,
        /// Why, for the log.
        reason: String,
    },
    /// Close the connection now.
    Close(String),
}

/// Where the SASL exchange of a connection stands.
enum SaslState {
    /// No exchange in progress.
    Idle,
    /// SaslHandshake chose a mechanism; `raw` after a v0 handshake (tokens are sent
    /// as bare length-prefixed frames, not SaslAuthenticate requests).
    Handshaken { mechanism: SaslMechanism, raw: bool },
    /// Tokens are being exchanged.
    Exchanging {
        mechanism: SaslMechanism,
        exchange: SaslExchange,
        raw: bool,
    },
}

/// A successful SASL step's answer: the server token and, at the end, the session
/// lifetime (KIP-368, 0 = unlimited).
struct Answer {
    token: Vec<u8>,
    session_lifetime_ms: i64,
}

/// A failed SASL step: the error code for the client, and the reason for the log.
struct Failure {
    code: ResponseError,
    reason: String,
}

/// One connection's identity and authentication state.
pub(crate) struct Session {
    /// `User:<name>`, or `User:ANONYMOUS` until (or without) authentication.
    pub principal: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener the client connected to.
    pub listener: Arc<Listener>,
    security: Arc<Security>,
    state: SaslState,
    authenticated: bool,
    /// When the authentication stops being good (KIP-368).
    expires_at: Option<Instant>,
}

impl Session {
    /// A session for a client at `peer` on `listener`; `certificate_principal` is the
    /// principal of its verified TLS client certificate, if any.
    pub fn new(
        peer: SocketAddr,
        listener: Arc<Listener>,
        security: Arc<Security>,
        certificate_principal: Option<String>,
    ) -> Self {
        let sasl = listener.protocol.uses_sasl();
        Session {
            principal: certificate_principal
                .filter(|_| !sasl)
                .unwrap_or_else(|| ANONYMOUS.to_string()),
            peer,
            listener,
            security,
            state: SaslState::Idle,
            authenticated: !sasl,
            expires_at: None,
        }
    }

    /// The client's IP address, as ACL hosts name it.
    pub fn host(&self) -> String {
        self.peer.ip().to_string()
    }

    /// Whether the client has authenticated (always, on listeners without SASL).
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the principal may do `operation` on `resource`, without counting a
    /// denial (for filtering lists, as Kafka does).
    pub fn permits(&self, operation: Operation, resource: &Resource) -> bool {
        self.security
            .authorizer
            .authorize(&self.principal, &self.host(), operation, resource)
    }

    /// Whether the principal may do `operation` on `resource`; a denial is counted
    /// and logged.
    pub fn allows(&self, operation: Operation, resource: &Resource) -> bool {
        let allowed = self.permits(operation, resource);
        if !allowed {
            self.denied(operation, resource);
        }
        allowed
    }

    /// [`Session::allows`] as Kafka's error code for the resource's type.
    pub fn check(&self, operation: Operation, resource: &Resource) -> Result<(), ResponseError> {
        if self.allows(operation, resource) {
            Ok(())
        } else {
            Err(denied_code(resource.resource_type))
        }
    }

    /// The names among `names` whose resource (`resource` of the name) the principal
    /// may not `operation`: for handlers that act later, off the connection's task.
    pub fn denied_names<'a>(
        &self,
        operation: Operation,
        resource: fn(&str) -> Resource,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashSet<String> {
        names
            .into_iter()
            .filter(|name| !self.allows(operation, &resource(name)))
            .map(str::to_string)
            .collect()
    }

    /// WRITE on a transactional id, as every transactional request needs it
    /// (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit);
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise.
    pub fn check_transactional_id(&self, transactional_id: &str) -> Result<(), ResponseError> {
        self.check(
            Operation::Write,
            &Resource::transactional_id(transactional_id),
        )
    }

    /// Whether an idempotent producer may start: IDEMPOTENT_WRITE on the cluster or
    /// WRITE on some topic (as Kafka decides it).
    pub fn may_write_idempotently(&self) -> bool {
        let authorizer = &self.security.authorizer;
        let host = self.host();
        let allowed = authorizer.authorize(
            &self.principal,
            &host,
            Operation::IdempotentWrite,
            &Resource::cluster(),
        ) || authorizer.authorize_any(
            &self.principal,
            &host,
            Operation::Write,
            &Resource::topic(""),
        );
        if !allowed {
            self.denied(Operation::IdempotentWrite, &Resource::cluster());
        }
        allowed
    }

    fn denied(&self, operation: Operation, resource: &Resource) {
        self.security
            .metrics
            .authorization_denied(resource.resource_type.name(), operation.name());
        tracing::debug!(
            peer = %self.peer,
            principal = %self.principal,
            operation = operation.name(),
            resource_type = resource.resource_type.name(),
            resource = %resource.name,
            "authorization denied"
        );
    }

    /// Whether the next frame is a raw SASL token (after a v0 SaslHandshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            self.state,
            SaslState::Handshaken { raw: true, .. } | SaslState::Exchanging { raw: true, .. }
        )
    }

    /// Handles a raw SASL token (Kafka's framing after a v0 SaslHandshake): the
    /// answer is a bare length-prefixed token; a failure (its reason is returned)
    /// closes the connection without an answer.
    pub fn raw_token(&mut self, token: &[u8]) -> Result<BytesMut, String> {
        let answer = self.step(token, true).map_err(|failure| failure.reason)?;
        let mut frame = BytesMut::with_capacity(4 + answer.token.len());
        frame.put_u32(answer.token.len() as u32);
        frame.put_slice(&answer.token);
        Ok(frame)
    }

    /// Lets `request` through, answers it (SASL), or closes the connection.
    pub fn admit(&mut self, header: &Header, request: Request) -> Admission {
        match request {
            Request::SaslHandshake(r) => self.handshake(header, r),
            Request::SaslAuthenticate(r) => self.authenticate(header, r),
            Request::ApiVersions(_) => Admission::Dispatch(Box::new(request)),
            _ if !self.authenticated => Admission::Close(format!(
                "{:?} request before SASL authentication",
                header.api_key
            )),
            _ if self.expires_at.is_some_and(|at| Instant::now() >= at) => Admission::Close(
                "the SASL session expired without re-authentication (KIP-368)".into(),
            ),
            _ => Admission::Dispatch(Box::new(request)),
        }
    }

    fn handshake(&mut self, header: &Header, request: SaslHandshakeRequest) -> Admission {
        let mechanisms = self
            .security
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = |code: Option<ResponseError>| {
            SaslHandshakeResponse::default()
                .with_error_code(code.map_or(0, |c| c.code()))
                .with_mechanisms(mechanisms)
        };
        if !self.listener.protocol.uses_sasl() {
            return respond(
                header,
                ApiKey::SaslHandshake,
                &response(Some(ResponseError::IllegalSaslState)),
            );
        }
        if !matches!(self.state, SaslState::Idle) {
            return refuse(
                header,
                ApiKey::SaslHandshake,
                &response(Some(ResponseError::IllegalSaslState)),
                "SaslHandshake in the middle of an exchange".into(),
            );
        }
        let wanted = request.mechanism.as_str();
        let Some(mechanism) =
            SaslMechanism::from_name(wanted).filter(|m| self.security.mechanisms.contains(m))
        else {
            return refuse(
                header,
                ApiKey::SaslHandshake,
                &response(Some(ResponseError::UnsupportedSaslMechanism)),
                format!("SASL mechanism `{wanted}` is not enabled"),
            );
        };
        self.state = SaslState::Handshaken {
            mechanism,
            raw: header.api_version == 0,
        };
        respond(header, ApiKey::SaslHandshake, &response(None))
    }

    fn authenticate(&mut self, header: &Header, request: SaslAuthenticateRequest) -> Admission {
        let failed = |code: ResponseError, message: String| {
            SaslAuthenticateResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        if !self.listener.protocol.uses_sasl() {
            return respond(
                header,
                ApiKey::SaslAuthenticate,
                &failed(
                    ResponseError::IllegalSaslState,
                    "this listener does not use SASL".into(),
                ),
            );
        }
        match self.step(&request.auth_bytes, false) {
            Ok(answer) => {
                let mut response =
                    SaslAuthenticateResponse::default().with_auth_bytes(answer.token.into());
                if header.api_version >= 1 {
                    response = response.with_session_lifetime_ms(answer.session_lifetime_ms);
                }
                respond(header, ApiKey::SaslAuthenticate, &response)
            }
            Err(failure) => {
                let message = match failure.code {
                    ResponseError::SaslAuthenticationFailed => {
                        "Authentication failed: Invalid username or password".to_string()
                    }
                    _ => failure.reason.clone(),
                };
                refuse(
                    header,
                    ApiKey::SaslAuthenticate,
                    &failed(failure.code, message),
                    failure.reason,
                )
            }
        }
    }

    /// Feeds one client token to the exchange the handshake started.
    fn step(&mut self, token: &[u8], raw: bool) -> Result<Answer, Failure> {
        let illegal = |reason: &str| Failure {
            code: ResponseError::IllegalSaslState,
            reason: reason.to_string(),
        };
        let (mechanism, mut exchange) = match std::mem::replace(&mut self.state, SaslState::Idle) {
            SaslState::Handshaken { mechanism, raw: r } if r == raw => {
                let exchange = SaslExchange::start(mechanism).map_err(|e| Failure {
                    code: ResponseError::SaslAuthenticationFailed,
                    reason: e.reason,
                })?;
                (mechanism, exchange)
            }
            SaslState::Exchanging {
                mechanism,
                exchange,
                raw: r,
            } if r == raw => (mechanism, exchange),
            SaslState::Idle => return Err(illegal("SaslAuthenticate without SaslHandshake")),
            _ => {
                return Err(illegal(
                    "SASL token in the wrong framing for the handshake version",
                ))
            }
        };
        let outcome = exchange.step(token, &self.security.credentials);
        let metrics = &self.security.metrics;
        match outcome {
            Ok(SaslStep::Challenge(token)) => {
                self.state = SaslState::Exchanging {
                    mechanism,
                    exchange,
                    raw,
                };
                Ok(Answer {
                    token,
                    session_lifetime_ms: 0,
                })
            }
            Ok(SaslStep::Authenticated { user, token }) => {
                let principal = format!("User:{user}");
                if self.authenticated && principal != self.principal {
                    metrics.authentication(mechanism.name(), false);
                    return Err(Failure {
                        code: ResponseError::SaslAuthenticationFailed,
                        reason: format!(
                            "re-authentication as {principal} on a connection of {}",
                            self.principal
                        ),
                    });
                }
                metrics.authentication(mechanism.name(), true);
                let lifetime = self.security.sasl.reauth_interval();
                self.expires_at = lifetime.map(|l| Instant::now() + l);
                tracing::info!(peer = %self.peer, %principal, mechanism = mechanism.name(), reauthentication = self.authenticated, "authenticated");
                self.principal = principal;
                self.authenticated = true;
                Ok(Answer {
                    token,
                    session_lifetime_ms: lifetime.map_or(0, |l| l.as_millis() as i64),
                })
            }
            Err(failed) => {
                metrics.authentication(mechanism.name(), false);
                Err(Failure {
                    code: ResponseError::SaslAuthenticationFailed,
                    reason: format!("{} authentication failed: {failed}", mechanism.name()),
                })
            }
        }
    }
}

/// Answers with `response`.
fn respond<R: Encodable>(header: &Header, api: ApiKey, response: &R) -> Admission {
    match encode_response(api, header.api_version, header.correlation_id, response) {
        Ok(frame) => Admission::Respond(frame),
        Err(e) => Admission::Close(e.to_string()),
    }
}

/// Answers with `response` after the failure delay, then closes.
fn refuse<R: Encodable>(header: &Header, api: ApiKey, response: &R, reason: String) -> Admission {
    match encode_response(api, header.api_version, header.correlation_id, response) {
        Ok(frame) => Admission::Refuse {
            response: Some(frame),
            reason,
        },
        Err(e) => Admission::Close(e.to_string()),
    }
}
