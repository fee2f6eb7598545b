//! Security settings: listeners and their protocols, TLS files, SASL mechanisms,
//! bootstrap users and the authorizer. Each type deserializes from the `strom serve`
//! TOML file as documented in the README ("Security").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Kafka's `security.protocol` of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    /// No TLS, no authentication: every client is `User:ANONYMOUS`.
    Plaintext,
    /// TLS; the principal is the client certificate's subject when one is presented.
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication inside TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections on this listener start with a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One `[[listeners]]` entry: where clients connect and how they are secured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name, unique among the listeners (logs, [`crate::BrokerHandle::listener_addr`]).
    pub name: String,
    /// Address to bind; port 0 picks a free one.
    pub address: SocketAddr,
    /// Security protocol of every connection on this listener.
    pub security_protocol: SecurityProtocol,
    /// `HOST:PORT` that Metadata, FindCoordinator and DescribeCluster give clients that
    /// connected here; `None` = the bound address.
    #[serde(default)]
    pub advertised_address: Option<String>,
}

/// Whether TLS listeners ask clients for a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A client certificate signed by `client_ca_file` is mandatory.
    #[default]
    Required,
    /// A client certificate is verified when presented, but optional.
    Requested,
}

/// The `[tls]` table, shared by every SSL and SASL_SSL listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file of CA certificates that sign client certificates; enables mTLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `required` (default) or `requested`.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// The `[sasl]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaslConfig {
    /// Mechanisms offered on SASL listeners: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub mechanisms: Vec<String>,
    /// Kafka's `connections.max.reauth.ms` (KIP-368): how long an authentication is
    /// good for; the client must re-authenticate before then. `None` = forever.
    pub connections_max_reauth_ms: Option<u64>,
    /// Kafka's `connection.failed.authentication.delay.ms`: how long a failed
    /// authentication waits before it is answered and the connection closed.
    pub failed_authentication_delay_ms: u64,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            mechanisms: vec![
                "SCRAM-SHA-512".into(),
                "SCRAM-SHA-256".into(),
                "PLAIN".into(),
            ],
            connections_max_reauth_ms: None,
            failed_authentication_delay_ms: 100,
        }
    }
}

impl SaslConfig {
    /// The reauthentication interval, if one is set.
    pub fn reauth_interval(&self) -> Option<Duration> {
        self.connections_max_reauth_ms.map(Duration::from_millis)
    }
}

/// One `[[users]]` entry: a user whose SCRAM credentials are stored at start.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// User name (the principal is `User:<name>`).
    pub name: String,
    /// Password; only its salted, iterated SCRAM form is stored.
    pub password: String,
    /// SCRAM mechanisms to store credentials for; default both.
    #[serde(default)]
    pub mechanisms: Option<Vec<String>>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password, not even in debug output.
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("mechanisms", &self.mechanisms)
            .finish()
    }
}

/// The `[authorizer]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizerConfig {
    /// Enforce ACLs; off = every principal may do everything.
    pub enabled: bool,
    /// Principals allowed everything, e.g. `User:admin`.
    pub super_users: Vec<String>,
    /// Allow an operation on a resource that has no ACL at all (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    pub allow_everyone_if_no_acl_found: bool,
}

/// Everything about security, as one part of [`crate::BrokerConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityConfig {
    /// Server certificate and key, for SSL and SASL_SSL listeners.
    pub tls: Option<TlsConfig>,
    /// SASL mechanisms and session lifetime.
    pub sasl: SaslConfig,
    /// Users whose credentials are (re)written at start.
    pub users: Vec<UserConfig>,
    /// ACL enforcement.
    pub authorizer: AuthorizerConfig,
}
