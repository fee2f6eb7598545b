//! Security: TLS listeners, SASL authentication (PLAIN, SCRAM-SHA-256/512), users'
//! SCRAM credentials and Kafka-style ACLs, all kept in the metadata log.
//!
//! Every connection has a [`Session`]: who the client is (`principal`), where it
//! connected from (`host`) and on which listener. Handlers ask the session before
//! they act, with one line each:
//!
//! ```ignore
//! session.check(Operation::Write, &Resource::topic(name))?;   // Kafka's error code
//! if !session.allows(Operation::Describe, &Resource::topic(name)) { /* hide it */ }
//! session.check_transactional_id(transactional_id)?;         // WRITE on the id
//! ```
//!
//! Layout: `config` (the TOML tables), `tls` (rustls acceptor, certificate
//! principals), `sasl` + `scram` (mechanisms), `credentials` and `authorizer` (state
//! replayed from the metadata log), `acl` (the model and its matching rules),
//! `session` (per connection: the SASL state machine and the authorization calls).

pub(crate) mod acl;
pub(crate) mod authorizer;
pub(crate) mod config;
pub(crate) mod credentials;
pub(crate) mod sasl;
pub(crate) mod scram;
pub(crate) mod session;
pub(crate) mod tls;

use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use crate::cluster::metadata_log::MetadataEvent;
use crate::cluster::{AdminError, Cluster};
use crate::error::StartError;
use crate::metrics::Metrics;
use acl::AclBinding;
use authorizer::Authorizer;
use config::{SaslConfig, SecurityConfig};
use credentials::Credentials;
use sasl::SaslMechanism;
use scram::{ScramCredential, ScramMechanism, ITERATIONS_MIN};

pub(crate) use session::Session;

/// A change to security state, kept in the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum SecurityEvent {
    /// A user's credential for one mechanism was created or replaced.
    ScramCredentialSet {
        /// User name.
        user: String,
        /// The new credential.
        credential: ScramCredential,
    },
    /// A user's credential for one mechanism was deleted.
    ScramCredentialDeleted {
        /// User name.
        user: String,
        /// Which credential.
        mechanism: ScramMechanism,
    },
    /// ACLs were created.
    AclsCreated {
        /// The new ACLs.
        acls: Vec<AclBinding>,
    },
    /// ACLs were deleted.
    AclsDeleted {
        /// The deleted ACLs.
        acls: Vec<AclBinding>,
    },
}

/// The broker's security state, shared by every connection.
pub(crate) struct Security {
    /// ACL decisions.
    pub authorizer: Authorizer,
    /// Users' SCRAM credentials.
    pub credentials: Credentials,
    /// SASL settings.
    pub sasl: SaslConfig,
    /// The SASL mechanisms offered, in the configured order.
    pub mechanisms: Vec<SaslMechanism>,
    /// Authentication and authorization counters.
    pub metrics: Arc<Metrics>,
    cluster: Arc<Cluster>,
    /// Serializes changes: append to the metadata log, then apply.
    changes: Mutex<()>,
}

impl Security {
    /// Replays the metadata log's security changes and stores the credentials of the
    /// configured users whose stored ones do not match their passwords.
    pub fn open(
        cluster: Arc<Cluster>,
        config: &SecurityConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StartError> {
        let mechanisms = config
            .sasl
            .mechanisms
            .iter()
            .map(|name| {
                SaslMechanism::from_name(name).ok_or_else(|| {
                    StartError::Config(format!(
                        "sasl.mechanisms: `{name}` is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let security = Security {
            authorizer: Authorizer::new(config.authorizer.clone()),
            credentials: Credentials::default(),
            sasl: config.sasl.clone(),
            mechanisms,
            metrics,
            cluster,
            changes: Mutex::new(()),
        };
        security.cluster.replay_metadata(|event| {
            if let MetadataEvent::Security(event) = event {
                security.apply(&event);
            }
        })?;
        security.bootstrap_users(config)?;
        Ok(security)
    }

    /// Writes `events` to the metadata log (synced), then applies them.
    pub fn record(&self, events: Vec<SecurityEvent>) -> Result<(), AdminError> {
        let _changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let wrapped: Vec<MetadataEvent> = events
            .iter()
            .cloned()
            .map(MetadataEvent::Security)
            .collect();
        self.cluster.record_metadata(&wrapped)?;
        for event in &events {
            self.apply(event);
        }
        Ok(())
    }

    fn apply(&self, event: &SecurityEvent) {
        self.credentials.apply(event);
        self.authorizer.apply(event);
    }

    fn bootstrap_users(&self, config: &SecurityConfig) -> Result<(), StartError> {
        let mut events = Vec::new();
        for user in &config.users {
            let bad = |what: String| StartError::Config(format!("users: `{}`: {what}", user.name));
            if user.name.is_empty() {
                return Err(bad("empty user name".into()));
            }
            let mechanisms = match &user.mechanisms {
                None => ScramMechanism::ALL.to_vec(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        ScramMechanism::from_name(n).ok_or_else(|| {
                            bad(format!("`{n}` is not SCRAM-SHA-256 or SCRAM-SHA-512"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            for mechanism in mechanisms {
                let current = self.credentials.get(&user.name, mechanism);
                if current.is_some_and(|c| c.verify_password(user.password.as_bytes())) {
                    continue;
                }
                let credential =
                    ScramCredential::new(mechanism, user.password.as_bytes(), ITERATIONS_MIN)
                        .map_err(|e| bad(format!("no randomness for a salt: {e}")))?;
                events.push(SecurityEvent::ScramCredentialSet {
                    user: user.name.clone(),
                    credential,
                });
            }
        }
        if !events.is_empty() {
            tracing::info!(
                credentials = events.len(),
                "storing credentials of configured users"
            );
            self.record(events)
                .map_err(|e| StartError::Metadata(e.message))?;
        }
        Ok(())
    }
}

/// The admin error of a denied operation on a resource of `resource_type`.
pub(crate) fn denied_error(resource_type: acl::ResourceType) -> AdminError {
    AdminError::new(denied_code(resource_type), "Authorization failed.")
}

/// Kafka's error code for a denied operation on a resource of `resource_type`.
pub(crate) fn denied_code(resource_type: acl::ResourceType) -> ResponseError {
    match resource_type {
        acl::ResourceType::Topic => ResponseError::TopicAuthorizationFailed,
        acl::ResourceType::Group => ResponseError::GroupAuthorizationFailed,
        acl::ResourceType::Cluster => ResponseError::ClusterAuthorizationFailed,
        acl::ResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
    }
}
