//! `strom acl create|list|delete`: ACLs through Kafka's own APIs (CreateAcls,
//! DescribeAcls, DeleteAcls), with the selectors of Kafka's `kafka-acls` tool.
//!
//! `create` makes one ACL per `--operation`. `list` and `delete` take filters: every
//! flag left out matches anything, and `--pattern` says how a named resource matches
//! the ACLs' patterns (`match` finds every ACL that applies to the resource: the
//! literal name, `*` and the prefixes of the name).

use std::collections::BTreeSet;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::admin_ffi::AdminApi;
use crate::admin_types::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};
use crate::client::Connection;
use crate::table::{flag_name as name, Table};

/// The name of the one cluster resource, as Kafka spells it.
const CLUSTER_NAME: &str = "kafka-cluster";

/// `strom acl …`: manage ACLs.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom acl create --principal User:alice --operation read --operation describe --topic orders
  strom acl create --principal User:app --operation write --topic orders. --pattern prefixed
  strom acl create --principal User:alice --operation read --group billing
  strom acl create --principal User:mallory --deny --operation all --topic '*'
  strom acl list
  strom acl list --topic orders --pattern match
  strom acl delete --principal User:alice --topic orders
Connect as a user allowed to alter the cluster (-X sasl.username=… and so on).")]
pub struct AclArgs {
    #[command(subcommand)]
    command: AclCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum AclCommand {
    /// Create ACLs: one for each --operation.
    Create {
        /// The principal, e.g. `User:alice` (`User:*` for everyone).
        #[arg(long)]
        principal: String,
        /// The client host it applies to.
        #[arg(long, default_value = "*")]
        host: String,
        /// Operations (repeatable).
        #[arg(long, value_enum, required = true)]
        operation: Vec<Operation>,
        #[command(flatten)]
        permission: PermissionArgs,
        #[command(flatten)]
        resource: ResourceArgs,
        /// How the resource name matches.
        #[arg(long, value_enum, default_value = "literal")]
        pattern: PatternType,
    },
    /// List the ACLs that match the filter (all without one).
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete the ACLs that match the filter; it needs a resource or a principal.
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// Which resource: exactly one of these.
#[derive(Debug, Args)]
#[group(multiple = false)]
struct ResourceArgs {
    /// A topic (or a prefix, or `*`).
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A consumer group (or a prefix, or `*`).
    #[arg(long, value_name = "ID")]
    group: Option<String>,
    /// A transactional id (or a prefix, or `*`).
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
}

impl ResourceArgs {
    /// The type and name given, if any.
    fn resource(&self) -> Option<(ResourceType, String)> {
        let named = |kind, name: &Option<String>| name.clone().map(|name| (kind, name));
        named(ResourceType::Topic, &self.topic)
            .or_else(|| named(ResourceType::Group, &self.group))
            .or_else(|| named(ResourceType::TransactionalId, &self.transactional_id))
            .or_else(|| {
                self.cluster
                    .then(|| (ResourceType::Cluster, CLUSTER_NAME.to_owned()))
            })
    }
}

/// `--allow` or `--deny`.
#[derive(Debug, Args)]
struct PermissionArgs {
    /// Allow the operations (the default of create).
    #[arg(long)]
    allow: bool,
    /// Deny the operations (a matching deny wins over any allow).
    #[arg(long, conflicts_with = "allow")]
    deny: bool,
}

impl PermissionArgs {
    fn permission(&self) -> Option<Permission> {
        match (self.allow, self.deny) {
            (true, _) => Some(Permission::Allow),
            (_, true) => Some(Permission::Deny),
            _ => None,
        }
    }
}

/// Selectors of `list` and `delete`; each one left out matches anything.
#[derive(Debug, Args)]
struct FilterArgs {
    /// Only this principal.
    #[arg(long)]
    principal: Option<String>,
    /// Only this host.
    #[arg(long)]
    host: Option<String>,
    /// Only these operations (repeatable).
    #[arg(long, value_enum)]
    operation: Vec<Operation>,
    #[command(flatten)]
    permission: PermissionArgs,
    #[command(flatten)]
    resource: ResourceArgs,
    /// How the named resource matches the ACLs' patterns [default: literal with a
    /// resource, any without].
    #[arg(long, value_enum)]
    pattern: Option<PatternFilter>,
}

impl FilterArgs {
    /// One filter per operation (one for any operation if none is given).
    fn filters(&self) -> Vec<AclFilter> {
        let resource = self.resource.resource();
        let pattern = self.pattern.unwrap_or(if resource.is_some() {
            PatternFilter::Literal
        } else {
            PatternFilter::Any
        });
        let operations: Vec<Option<Operation>> = if self.operation.is_empty() {
            vec![None]
        } else {
            self.operation.iter().copied().map(Some).collect()
        };
        operations
            .into_iter()
            .map(|operation| AclFilter {
                resource_type: resource.as_ref().map(|(kind, _)| *kind),
                resource_name: resource.as_ref().map(|(_, name)| name.clone()),
                pattern,
                principal: self.principal.clone(),
                host: self.host.clone(),
                operation,
                permission: self.permission.permission(),
            })
            .collect()
    }
}

/// Runs a `strom acl` command.
pub fn run(args: AclArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let api = AdminApi::new(connection.admin()?, connection.timeout());
    match args.command {
        AclCommand::Create {
            principal,
            host,
            operation,
            permission,
            resource,
            pattern,
        } => {
            let Some((resource_type, resource_name)) = resource.resource() else {
                bail!("give the resource: --topic, --group, --transactional-id or --cluster");
            };
            let acls: Vec<AclBinding> = operation
                .into_iter()
                .map(|operation| AclBinding {
                    resource_type,
                    resource_name: resource_name.clone(),
                    pattern,
                    principal: principal.clone(),
                    host: host.clone(),
                    operation,
                    permission: permission.permission().unwrap_or(Permission::Allow),
                })
                .collect();
            create(&api, &acls)
        }
        AclCommand::List { filter } => list(&api, &filter.filters()),
        AclCommand::Delete { filter } => {
            if filter.resource.resource().is_none() && filter.principal.is_none() {
                bail!(
                    "give a resource (--topic, --group, --transactional-id, --cluster) \
                     or --principal to say which ACLs to delete"
                );
            }
            delete(&api, &filter.filters())
        }
    }
}

fn create(api: &AdminApi, acls: &[AclBinding]) -> anyhow::Result<()> {
    let results = api.create_acls(acls).context("cannot create ACLs")?;
    if results.len() != acls.len() {
        bail!(
            "the broker answered {} of {} ACL creations",
            results.len(),
            acls.len()
        );
    }
    for (acl, result) in acls.iter().zip(results) {
        result.with_context(|| format!("cannot create ACL: {}", sentence(acl)))?;
        println!("created ACL: {}", sentence(acl));
    }
    Ok(())
}

fn list(api: &AdminApi, filters: &[AclFilter]) -> anyhow::Result<()> {
    let mut acls = BTreeSet::new();
    for filter in filters {
        acls.extend(api.describe_acls(filter).context("cannot list ACLs")?);
    }
    let mut table = Table::new(&[
        "RESOURCE-TYPE",
        "RESOURCE",
        "PATTERN",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ]);
    for acl in acls {
        table.row(vec![
            name(acl.resource_type),
            acl.resource_name,
            name(acl.pattern),
            acl.principal,
            acl.host,
            name(acl.operation),
            name(acl.permission),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

fn delete(api: &AdminApi, filters: &[AclFilter]) -> anyhow::Result<()> {
    let mut deleted = BTreeSet::new();
    for result in api.delete_acls(filters).context("cannot delete ACLs")? {
        deleted.extend(result.context("cannot delete ACLs")?);
    }
    if deleted.is_empty() {
        println!("no ACL matched");
    }
    for acl in &deleted {
        println!("deleted ACL: {}", sentence(acl));
    }
    Ok(())
}

/// `allow User:bob to write topic orders (literal) from host *`.
fn sentence(acl: &AclBinding) -> String {
    format!(
        "{} {} to {} {} {} ({}) from host {}",
        name(acl.permission),
        acl.principal,
        name(acl.operation),
        name(acl.resource_type),
        acl.resource_name,
        name(acl.pattern),
        acl.host
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        filter: FilterArgs,
    }

    fn filters(args: &[&str]) -> Vec<AclFilter> {
        let cli = Cli::try_parse_from(std::iter::once("acl").chain(args.iter().copied()));
        cli.map(|cli| cli.filter.filters()).unwrap_or_default()
    }

    #[test]
    fn a_filter_without_flags_matches_every_acl() {
        assert_eq!(filters(&[]), vec![AclFilter::default()]);
    }

    #[test]
    fn a_named_resource_is_literal_unless_a_pattern_is_given() {
        let literal = filters(&["--topic", "orders", "--deny"]);
        assert_eq!(literal.len(), 1);
        assert_eq!(literal[0].resource_type, Some(ResourceType::Topic));
        assert_eq!(literal[0].resource_name.as_deref(), Some("orders"));
        assert_eq!(literal[0].pattern, PatternFilter::Literal);
        assert_eq!(literal[0].permission, Some(Permission::Deny));
        let matching = filters(&["--cluster", "--pattern", "match"]);
        assert_eq!(matching[0].resource_name.as_deref(), Some(CLUSTER_NAME));
        assert_eq!(matching[0].pattern, PatternFilter::Match);
    }

    #[test]
    fn each_operation_is_one_filter() {
        let operations: Vec<_> = filters(&["--operation", "read", "--operation", "cluster-action"])
            .into_iter()
            .map(|f| f.operation)
            .collect();
        assert_eq!(
            operations,
            vec![Some(Operation::Read), Some(Operation::ClusterAction)]
        );
    }

    #[test]
    fn two_resources_or_both_permissions_are_refused() {
        assert!(filters(&["--topic", "a", "--group", "b"]).is_empty());
        assert!(filters(&["--allow", "--deny"]).is_empty());
    }

    #[test]
    fn acls_read_as_sentences() {
        let acl = AclBinding {
            resource_type: ResourceType::TransactionalId,
            resource_name: "tx-".into(),
            pattern: PatternType::Prefixed,
            principal: "User:bob".into(),
            host: "10.0.0.1".into(),
            operation: Operation::IdempotentWrite,
            permission: Permission::Deny,
        };
        assert_eq!(
            sentence(&acl),
            "deny User:bob to idempotent-write transactional-id tx- (prefixed) from host 10.0.0.1"
        );
    }
}
