//! What services embedded next to the broker in one process (the schema registry's
//! HTTP listener) need from its security: checking a user's password against the
//! SCRAM credentials, asking the authorizer, and building the TLS acceptor from the
//! same `[tls]` section. Nothing here changes broker state.

use std::sync::Arc;

use crate::broker::{BrokerHandle, Shared};
use crate::error::StartError;
use crate::security::acl::{Operation, Resource};
use crate::security::config::TlsConfig;
use crate::security::scram::ScramMechanism;

/// What an embedded service asks to do, in Kafka's ACL operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddedOperation {
    /// READ (consume) or DESCRIBE.
    Read,
    /// WRITE (produce).
    Write,
    /// ALTER (change configs, on the cluster).
    Alter,
}

impl EmbeddedOperation {
    fn acl(self) -> Operation {
        match self {
            EmbeddedOperation::Read => Operation::Read,
            EmbeddedOperation::Write => Operation::Write,
            EmbeddedOperation::Alter => Operation::Alter,
        }
    }
}

/// The broker's users and authorizer, for an embedded service; cheap to clone, usable
/// until the broker shuts down.
#[derive(Clone)]
pub struct EmbeddedSecurity {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmbeddedSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedSecurity").finish_non_exhaustive()
    }
}

impl BrokerHandle {
    /// The broker's users and authorizer, for a service running beside it.
    pub fn embedded_security(&self) -> EmbeddedSecurity {
        EmbeddedSecurity {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl EmbeddedSecurity {
    /// Whether `password` is `user`'s, checked against the user's strongest SCRAM
    /// credential (as SASL/PLAIN does). Slow on purpose (PBKDF2): cache the answer.
    pub fn verify_password(&self, user: &str, password: &str) -> bool {
        let credentials = &self.shared.security.credentials;
        ScramMechanism::ALL
            .iter()
            .rev()
            .find_map(|m| credentials.get(user, *m))
            .is_some_and(|credential| credential.verify_password(password.as_bytes()))
    }

    /// Whether `User:{user}` from `host` may do `operation` on topic `topic` (always
    /// true when the authorizer is off).
    pub fn authorize_topic(
        &self,
        user: &str,
        host: &str,
        topic: &str,
        operation: EmbeddedOperation,
    ) -> bool {
        let principal = format!("User:{user}");
        self.shared.security.authorizer.authorize(
            &principal,
            host,
            operation.acl(),
            &Resource::topic(topic),
        )
    }

    /// Whether `User:{user}` from `host` may do `operation` on the cluster.
    pub fn authorize_cluster(&self, user: &str, host: &str, operation: EmbeddedOperation) -> bool {
        let principal = format!("User:{user}");
        self.shared.security.authorizer.authorize(
            &principal,
            host,
            operation.acl(),
            &Resource::cluster(),
        )
    }
}

/// A TLS acceptor from a `[tls]` section, exactly as the Kafka listeners build theirs.
pub fn tls_acceptor(config: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    crate::security::tls::acceptor(config)
}
