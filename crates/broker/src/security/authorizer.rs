//! The authorizer: the ACLs the metadata log holds, the super users and the
//! no-ACL default, turned into allow/deny decisions (see `acl` for the rules).

use std::collections::BTreeSet;
use std::sync::RwLock;

use super::acl::{self, AclBinding, AclFilter, Operation, Resource};
use super::config::AuthorizerConfig;
use super::SecurityEvent;

/// Decides what each principal may do.
pub(crate) struct Authorizer {
    config: AuthorizerConfig,
    acls: RwLock<BTreeSet<AclBinding>>,
}

impl Authorizer {
    /// An authorizer with no ACLs yet.
    pub fn new(config: AuthorizerConfig) -> Self {
        Authorizer {
            config,
            acls: RwLock::new(BTreeSet::new()),
        }
    }

    /// Whether `principal` connected from `host` may do `operation` on `resource`.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource: &Resource,
    ) -> bool {
        if !self.config.enabled || self.config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls: Vec<AclBinding> = self
            .read()
            .iter()
            .filter(|a| a.covers(resource))
            .cloned()
            .collect();
        acl::allows(
            &acls,
            principal,
            host,
            operation,
            resource,
            self.config.allow_everyone_if_no_acl_found,
        )
    }

    /// Whether `principal` has an ALLOW for `operation` on any resource of the type of
    /// `like` (Kafka's `authorizeByResourceType`, for idempotent producers).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        like: &Resource,
    ) -> bool {
        self.authorize(principal, host, operation, like)
            || self.read().iter().any(|a| {
                a.resource_type == like.resource_type
                    && a.permission == acl::Permission::Allow
                    && a.applies_to(principal, host)
                    && a.decides(operation)
            })
    }

    /// The ACLs `filter` selects, in a stable order.
    pub fn acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.read()
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Applies a change from the metadata log (other changes are ignored).
    pub fn apply(&self, event: &SecurityEvent) {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        match event {
            SecurityEvent::AclsCreated { acls: created } => acls.extend(created.iter().cloned()),
            SecurityEvent::AclsDeleted { acls: deleted } => {
                for acl in deleted {
                    acls.remove(acl);
                }
            }
            SecurityEvent::ScramCredentialSet { .. }
            | SecurityEvent::ScramCredentialDeleted { .. } => {}
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<AclBinding>> {
        self.acls.read().unwrap_or_else(|e| e.into_inner())
    }
}
