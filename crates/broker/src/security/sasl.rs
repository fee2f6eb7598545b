//! SASL mechanisms on the server: PLAIN (RFC 4616, checked against the stored SCRAM
//! credential, so no password is ever kept) and SCRAM-SHA-256/512. A [`SaslExchange`]
//! takes the client's tokens one by one and ends with the authenticated user name.

use super::credentials::Credentials;
use super::scram::{ScramMechanism, ScramServer};

/// Why an authentication failed, for the log and the client. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthFailed {
    /// What went wrong, for the log.
    pub reason: String,
}

impl AuthFailed {
    /// The client sent something that is not a valid token of the mechanism.
    pub fn malformed(reason: &str) -> Self {
        AuthFailed {
            reason: format!("malformed token: {reason}"),
        }
    }

    /// Unknown user or wrong password (which one is not told).
    pub fn credentials(user: &str) -> Self {
        AuthFailed {
            reason: format!("invalid credentials for user `{user}`"),
        }
    }
}

impl std::fmt::Display for AuthFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A SASL mechanism strom can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaslMechanism {
    /// PLAIN: user and password in one token (use it over TLS only).
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// The mechanism called `name` (case as IANA registers it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            other => ScramMechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }

    /// The mechanism's name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }
}

/// The result of feeding a server one client token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaslStep {
    /// Send this challenge and wait for the next token.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `token` (empty for PLAIN).
    Authenticated {
        /// The authenticated user name.
        user: String,
        /// The mechanism's last server message.
        token: Vec<u8>,
    },
}

/// One authentication in progress.
pub(crate) enum SaslExchange {
    /// PLAIN takes one token.
    Plain,
    /// SCRAM takes two.
    Scram(Box<ScramServer>),
}

impl SaslExchange {
    /// Starts an exchange of `mechanism`.
    pub fn start(mechanism: SaslMechanism) -> Result<Self, AuthFailed> {
        match mechanism {
            SaslMechanism::Plain => Ok(SaslExchange::Plain),
            SaslMechanism::Scram(m) => ScramServer::new(m)
                .map(|server| SaslExchange::Scram(Box::new(server)))
                .map_err(|e| AuthFailed {
                    reason: format!("no randomness for a nonce: {e}"),
                }),
        }
    }

    /// Handles the client's next token.
    pub fn step(
        &mut self,
        token: &[u8],
        credentials: &Credentials,
    ) -> Result<SaslStep, AuthFailed> {
        match self {
            SaslExchange::Plain => plain(token, credentials),
            SaslExchange::Scram(server) => {
                let mechanism = server.mechanism();
                server.step(token, |user| credentials.get(user, mechanism))
            }
        }
    }
}

/// PLAIN: `[authzid] NUL authcid NUL password`, the password checked against the
/// user's strongest SCRAM credential.
fn plain(token: &[u8], credentials: &Credentials) -> Result<SaslStep, AuthFailed> {
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthFailed::malformed(
            "PLAIN needs authzid NUL user NUL password",
        ));
    };
    let user =
        std::str::from_utf8(user).map_err(|_| AuthFailed::malformed("user name is not UTF-8"))?;
    if user.is_empty() {
        return Err(AuthFailed::malformed("empty user name"));
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(AuthFailed::malformed("authorization id differs from user"));
    }
    let verified = ScramMechanism::ALL
        .iter()
        .rev()
        .find_map(|m| credentials.get(user, *m))
        .is_some_and(|credential| credential.verify_password(password));
    if verified {
        Ok(SaslStep::Authenticated {
            user: user.to_string(),
            token: Vec::new(),
        })
    } else {
        Err(AuthFailed::credentials(user))
    }
}
