//! The owned values that go into and come out of the ACL and SCRAM admin calls
//! ([`crate::admin_ffi`]): Kafka's ACL model (resource types, patterns, operations,
//! permissions, bindings and filters) and SCRAM credentials, as plain Rust values. The
//! enums double as command-line values (`clap::ValueEnum`), so flags and output spell
//! them the same way.

use std::fmt;

use clap::ValueEnum;
use rdkafka::error::RDKafkaErrorCode;

/// A Kafka resource type that ACLs protect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum ResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster (Kafka names its one resource `kafka-cluster`).
    Cluster,
    /// A transactional id.
    TransactionalId,
}

/// How an ACL's resource name matches resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum PatternType {
    /// The exact name (or `*`, every resource of the type).
    Literal,
    /// Every resource whose name starts with the name.
    Prefixed,
}

/// How a filter matches the patterns of ACLs (Kafka's `PatternType` for filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum PatternFilter {
    /// ACLs with exactly this literal name.
    Literal,
    /// ACLs with exactly this prefix.
    Prefixed,
    /// Every ACL that applies to the named resource: the literal name, the `*`
    /// wildcard and the prefixes of the name.
    Match,
    /// ACLs with this name, literal or prefixed.
    #[default]
    Any,
}

/// An operation an ACL allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Operation {
    /// Every operation.
    All,
    /// Read (fetch, join and commit in a group).
    Read,
    /// Write (produce).
    Write,
    /// Create.
    Create,
    /// Delete.
    Delete,
    /// Alter.
    Alter,
    /// Describe.
    Describe,
    /// Inter-broker cluster actions.
    ClusterAction,
    /// Describe configs.
    DescribeConfigs,
    /// Alter configs.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
}

/// Whether an ACL allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Permission {
    /// Allows the operation.
    Allow,
    /// Denies the operation (a matching deny wins over any allow).
    Deny,
}

/// An ACL: who may (or may not) do what to which resources, from which hosts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclBinding {
    /// What kind of resource.
    pub resource_type: ResourceType,
    /// The resource name, prefix or `*`.
    pub resource_name: String,
    /// How the name matches.
    pub pattern: PatternType,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// A client host, or `*` for any.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

/// Which ACLs to describe or delete; `None` matches anything (so does the default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclFilter {
    /// The resource type.
    pub resource_type: Option<ResourceType>,
    /// The resource name (a name for `Match`).
    pub resource_name: Option<String>,
    /// How ACL patterns are matched.
    pub pattern: PatternFilter,
    /// The principal.
    pub principal: Option<String>,
    /// The host.
    pub host: Option<String>,
    /// The operation.
    pub operation: Option<Operation>,
    /// The permission.
    pub permission: Option<Permission>,
}

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    #[value(name = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512.
    #[value(name = "SCRAM-SHA-512")]
    Sha512,
}

/// One stored SCRAM credential of a user (the broker never tells more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredential {
    /// Its mechanism.
    pub mechanism: ScramMechanism,
    /// Its PBKDF2 iteration count.
    pub iterations: i32,
}

/// A change to a user's SCRAM credentials.
pub enum ScramAlteration {
    /// Sets (creates or replaces) the credential of one mechanism; librdkafka salts
    /// and hashes the password, which is never sent.
    Upsert {
        /// User name.
        user: String,
        /// Mechanism.
        mechanism: ScramMechanism,
        /// PBKDF2 iterations.
        iterations: i32,
        /// The password.
        password: Vec<u8>,
    },
    /// Removes the credential of one mechanism.
    Delete {
        /// User name.
        user: String,
        /// Mechanism.
        mechanism: ScramMechanism,
    },
}

/// A user as DescribeUserScramCredentials answers: credentials or an error.
#[derive(Debug)]
pub struct UserDescription {
    /// User name.
    pub user: String,
    /// Its credentials, or why the broker could not describe them.
    pub credentials: Result<Vec<ScramCredential>, AdminError>,
}

/// A Kafka error for a whole request or one item of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// The error code.
    pub code: RDKafkaErrorCode,
    /// librdkafka's or the broker's message.
    pub message: String,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{:?} ({})", self.code, self.message)
        }
    }
}

impl std::error::Error for AdminError {}
