//! Kafka's ACL model: a binding allows or denies one principal, from one host, one
//! operation on resources named literally or by prefix. The numbers are Kafka's wire
//! codes (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`).
//!
//! Decisions (as Kafka's `StandardAuthorizer`): a DENY that matches wins; otherwise an
//! ALLOW that matches, where READ, WRITE, DELETE and ALTER also allow DESCRIBE and
//! ALTER_CONFIGS also allows DESCRIBE_CONFIGS, and ALL allows everything.

use serde::{Deserialize, Serialize};

/// The wildcard principal and host.
pub(crate) const WILDCARD: &str = "*";
/// The principal every user matches.
pub(crate) const WILDCARD_PRINCIPAL: &str = "User:*";
/// Name of the one cluster resource.
pub(crate) const CLUSTER_NAME: &str = "kafka-cluster";

/// Declares a Kafka enum with its wire codes and names, and `ANY` (code 1) for filters.
macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub(crate) enum $name { $($(#[$vdoc])* $variant = $code,)* }

        impl $name {
            /// The value with wire code `code`; `None` for UNKNOWN, ANY or a bad code.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)* _ => None }
            }

            /// Kafka's name, as admin tools print it.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }
        }
    };
}

kafka_enum!(
    /// What kind of thing an ACL protects.
    ResourceType {
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster itself.
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
    }
);

kafka_enum!(
    /// How an ACL's resource name matches.
    PatternType {
        /// The exact name (or `*`, every name).
        Literal = 3, "LITERAL";
        /// Every name that starts with it.
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// What an ACL allows or denies.
    Operation {
        /// Every operation.
        All = 2, "ALL";
        /// Consume, join a group.
        Read = 3, "READ";
        /// Produce.
        Write = 4, "WRITE";
        /// Create topics.
        Create = 5, "CREATE";
        /// Delete topics, records, groups.
        Delete = 6, "DELETE";
        /// Add partitions, change ACLs and credentials.
        Alter = 7, "ALTER";
        /// See that it exists.
        Describe = 8, "DESCRIBE";
        /// Broker-to-broker requests.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Read configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Change configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent producers.
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
    }
);

kafka_enum!(
    /// Whether an ACL allows or denies.
    Permission {
        /// Denies; wins over any allow.
        Deny = 2, "DENY";
        /// Allows.
        Allow = 3, "ALLOW";
    }
);

/// Kafka's code for "any" in filters.
pub(crate) const ANY: i8 = 1;
/// Kafka's pattern-type code MATCH: filters that select every ACL which applies to a
/// resource name (literal, wildcard and prefixes).
pub(crate) const MATCH: i8 = 2;

impl Operation {
    /// Operations whose ALLOW also allows `self` (besides ALL).
    fn implied_by(self) -> &'static [Operation] {
        match self {
            Operation::Describe => &[
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ],
            Operation::DescribeConfigs => &[Operation::AlterConfigs],
            _ => &[],
        }
    }
}

/// One thing the broker protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resource {
    /// Its type.
    pub resource_type: ResourceType,
    /// Its name.
    pub name: String,
}

impl Resource {
    /// The topic `name`.
    pub fn topic(name: &str) -> Self {
        Self::of(ResourceType::Topic, name)
    }

    /// The consumer group `name`.
    pub fn group(name: &str) -> Self {
        Self::of(ResourceType::Group, name)
    }

    /// The transactional id `name`.
    pub fn transactional_id(name: &str) -> Self {
        Self::of(ResourceType::TransactionalId, name)
    }

    /// The cluster.
    pub fn cluster() -> Self {
        Self::of(ResourceType::Cluster, CLUSTER_NAME)
    }

    fn of(resource_type: ResourceType, name: &str) -> Self {
        Resource {
            resource_type,
            name: name.to_string(),
        }
    }
}

/// One ACL, as CreateAcls creates it and the metadata log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct AclBinding {
    /// Resource type.
    pub resource_type: ResourceType,
    /// Resource name, prefix, or `*`.
    pub resource_name: String,
    /// Literal or prefixed.
    pub pattern_type: PatternType,
    /// `User:<name>` or `User:*`.
    pub principal: String,
    /// Client host (IP address) or `*`.
    pub host: String,
    /// Operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclBinding {
    /// Whether this ACL's resource pattern covers `resource`.
    pub fn covers(&self, resource: &Resource) -> bool {
        self.resource_type == resource.resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == resource.name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => resource.name.starts_with(&self.resource_name),
            }
    }

    /// Whether this ACL speaks about `principal` connecting from `host`.
    pub fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }

    /// Whether this ACL's operation decides `operation` for its permission.
    pub fn decides(&self, operation: Operation) -> bool {
        self.operation == operation
            || self.operation == Operation::All
            || (self.permission == Permission::Allow
                && operation.implied_by().contains(&self.operation))
    }
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} from {} on {} {} `{}`",
            self.permission.name(),
            self.principal,
            self.operation.name(),
            self.host,
            self.resource_type.name(),
            self.pattern_type.name(),
            self.resource_name
        )
    }
}

/// Kafka's `AclBindingFilter`: `None` fields (ANY on the wire) match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AclFilter {
    /// Resource type, or any.
    pub resource_type: Option<ResourceType>,
    /// Resource name, or any.
    pub resource_name: Option<String>,
    /// Pattern: `None` = any, `Some(None)` = MATCH, `Some(Some(p))` = exactly `p`.
    pub pattern_type: Option<Option<PatternType>>,
    /// Principal, or any.
    pub principal: Option<String>,
    /// Host, or any.
    pub host: Option<String>,
    /// Operation, or any.
    pub operation: Option<Operation>,
    /// Permission, or any.
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Whether `acl` is selected by this filter.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let eq = |want: &Option<String>, have: &String| want.as_ref().is_none_or(|w| w == have);
        self.resource_type.is_none_or(|t| t == acl.resource_type)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
            && eq(&self.principal, &acl.principal)
            && eq(&self.host, &acl.host)
            && match (&self.pattern_type, &self.resource_name) {
                (None, name) => eq(name, &acl.resource_name),
                (Some(Some(pattern)), name) => {
                    *pattern == acl.pattern_type && eq(name, &acl.resource_name)
                }
                (Some(None), None) => true,
                (Some(None), Some(name)) => acl.covers(&Resource {
                    resource_type: acl.resource_type,
                    name: name.clone(),
                }),
            }
    }
}

/// Whether `acls` let `principal` from `host` do `operation` on `resource`.
/// `no_acl_allows` decides when no ACL covers the resource at all.
pub(crate) fn allows(
    acls: &[AclBinding],
    principal: &str,
    host: &str,
    operation: Operation,
    resource: &Resource,
    no_acl_allows: bool,
) -> bool {
    let mut covered = false;
    let mut allowed = false;
    for acl in acls.iter().filter(|acl| acl.covers(resource)) {
        covered = true;
        if !acl.applies_to(principal, host) || !acl.decides(operation) {
            continue;
        }
        match acl.permission {
            Permission::Deny => return false,
            Permission::Allow => allowed = true,
        }
    }
    allowed || (!covered && no_acl_allows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    fn allow_topic(name: &str, pattern: PatternType, principal: &str, op: Operation) -> AclBinding {
        acl(
            ResourceType::Topic,
            name,
            pattern,
            principal,
            WILDCARD,
            op,
            Permission::Allow,
        )
    }

    const ALICE: &str = "User:alice";
    const HOST: &str = "10.0.0.1";

    #[test]
    fn literal_prefixed_and_wildcard_names() {
        let acls = [
            allow_topic("orders", PatternType::Literal, ALICE, Operation::Write),
            allow_topic("logs-", PatternType::Prefixed, ALICE, Operation::Read),
            allow_topic("*", PatternType::Literal, ALICE, Operation::Describe),
        ];
        let can = |op, topic| allows(&acls, ALICE, HOST, op, &Resource::topic(topic), false);
        assert!(can(Operation::Write, "orders"));
        assert!(!can(Operation::Write, "orders2"));
        assert!(can(Operation::Read, "logs-app"));
        assert!(!can(Operation::Read, "log"));
        assert!(can(Operation::Describe, "anything"));
        assert!(!can(Operation::Delete, "orders"));
        // Only the resource type named.
        assert!(!allows(
            &acls,
            ALICE,
            HOST,
            Operation::Write,
            &Resource::group("orders"),
            false
        ));
    }

    #[test]
    fn deny_wins_and_matches_all() {
        let mut acls = vec![
            allow_topic(
                "t",
                PatternType::Literal,
                WILDCARD_PRINCIPAL,
                Operation::All,
            ),
            acl(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                ALICE,
                HOST,
                Operation::Write,
                Permission::Deny,
            ),
        ];
        let can = |acls: &[AclBinding], who, host, op| {
            allows(acls, who, host, op, &Resource::topic("t"), false)
        };
        assert!(!can(&acls, ALICE, HOST, Operation::Write));
        assert!(
            can(&acls, ALICE, "10.0.0.2", Operation::Write),
            "deny is for one host"
        );
        assert!(can(&acls, ALICE, HOST, Operation::Read));
        assert!(can(&acls, "User:bob", HOST, Operation::Write));
        acls.push(acl(
            ResourceType::Topic,
            "t",
            PatternType::Prefixed,
            "User:bob",
            WILDCARD,
            Operation::All,
            Permission::Deny,
        ));
        assert!(!can(&acls, "User:bob", HOST, Operation::Read));
        assert!(!can(&acls, "User:bob", HOST, Operation::Describe));
    }

    #[test]
    fn implied_operations() {
        for (granted, implied, yes) in [
            (Operation::Read, Operation::Describe, true),
            (Operation::Write, Operation::Describe, true),
            (Operation::Delete, Operation::Describe, true),
            (Operation::Alter, Operation::Describe, true),
            (Operation::AlterConfigs, Operation::DescribeConfigs, true),
            (Operation::Describe, Operation::Read, false),
            (Operation::Create, Operation::Describe, false),
            (Operation::DescribeConfigs, Operation::AlterConfigs, false),
        ] {
            let acls = [allow_topic("t", PatternType::Literal, ALICE, granted)];
            assert_eq!(
                allows(&acls, ALICE, HOST, implied, &Resource::topic("t"), false),
                yes,
                "{granted:?} → {implied:?}"
            );
        }
        // A DENY of READ does not deny DESCRIBE.
        let acls = [
            allow_topic("t", PatternType::Literal, ALICE, Operation::Describe),
            acl(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                ALICE,
                WILDCARD,
                Operation::Read,
                Permission::Deny,
            ),
        ];
        assert!(allows(
            &acls,
            ALICE,
            HOST,
            Operation::Describe,
            &Resource::topic("t"),
            false
        ));
    }

    #[test]
    fn no_acl_found() {
        let acls = [allow_topic(
            "t",
            PatternType::Literal,
            "User:bob",
            Operation::Read,
        )];
        let topic = |name: &str| Resource::topic(name);
        assert!(allows(
            &acls,
            ALICE,
            HOST,
            Operation::Read,
            &topic("other"),
            true
        ));
        assert!(!allows(
            &acls,
            ALICE,
            HOST,
            Operation::Read,
            &topic("other"),
            false
        ));
        // Covered by an ACL for someone else: no longer "no ACL found".
        assert!(!allows(
            &acls,
            ALICE,
            HOST,
            Operation::Read,
            &topic("t"),
            true
        ));
    }

    #[test]
    fn filters() {
        let literal = allow_topic("app", PatternType::Literal, ALICE, Operation::Read);
        let prefixed = allow_topic("ap", PatternType::Prefixed, ALICE, Operation::Read);
        let wildcard = allow_topic("*", PatternType::Literal, ALICE, Operation::Read);
        let any = AclFilter::default();
        assert!([&literal, &prefixed, &wildcard]
            .iter()
            .all(|a| any.matches(a)));
        let exact = AclFilter {
            resource_name: Some("app".into()),
            pattern_type: Some(Some(PatternType::Literal)),
            ..AclFilter::default()
        };
        assert!(exact.matches(&literal) && !exact.matches(&prefixed) && !exact.matches(&wildcard));
        let matching = AclFilter {
            resource_name: Some("app".into()),
            pattern_type: Some(None),
            ..AclFilter::default()
        };
        assert!([&literal, &prefixed, &wildcard]
            .iter()
            .all(|a| matching.matches(a)));
        let bob = AclFilter {
            principal: Some("User:bob".into()),
            ..AclFilter::default()
        };
        assert!(!bob.matches(&literal));
        let deny = AclFilter {
            permission: Some(Permission::Deny),
            ..AclFilter::default()
        };
        assert!(!deny.matches(&literal));
    }
}
