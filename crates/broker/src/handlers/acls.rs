//! CreateAcls, DescribeAcls and DeleteAcls: Kafka's ACL admin APIs, over the
//! authorizer's ACLs (durable in the metadata log). Changing ACLs needs ALTER on the
//! cluster, listing them DESCRIBE.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{blocking, str_bytes};
use crate::broker::Shared;
use crate::security::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, Resource, ResourceType, ANY,
    CLUSTER_NAME, MATCH,
};
use crate::security::{Security, SecurityEvent, Session};

/// Why an ACL or filter in a request is refused.
type Invalid = (ResponseError, String);

pub(super) async fn create(
    shared: &Shared,
    session: &Session,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    if let Err(code) = session.check(Operation::Alter, &Resource::cluster()) {
        let results = request
            .creations
            .iter()
            .map(|_| AclCreationResult::default().with_error_code(code.code()))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<Result<AclBinding, Invalid>> = request.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let stored = record(
        shared,
        SecurityEvent::AclsCreated {
            acls: valid.clone(),
        },
    )
    .await;
    if stored.is_ok() {
        for acl in valid {
            tracing::info!(principal = %session.principal, %acl, "ACL created");
        }
    }
    let results = parsed
        .into_iter()
        .map(|p| match p.and_then(|_| stored.clone()) {
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
            Ok(()) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub(super) fn describe(
    shared: &Shared,
    session: &Session,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Err(code) = session.check(Operation::Describe, &Resource::cluster()) {
        return DescribeAclsResponse::default().with_error_code(code.code());
    }
    let filter = match Filter::from(request).parse() {
        Ok(filter) => filter,
        Err((code, message)) => {
            return DescribeAclsResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)))
        }
    };
    let mut resources: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for acl in shared.security.authorizer.acls(&filter) {
        resources
            .entry((
                acl.resource_type,
                acl.resource_name.clone(),
                acl.pattern_type,
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(acl.principal))
                    .with_host(str_bytes(acl.host))
                    .with_operation(acl.operation as i8)
                    .with_permission_type(acl.permission as i8),
            );
    }
    DescribeAclsResponse::default().with_resources(
        resources
            .into_iter()
            .map(|((resource_type, name, pattern), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(resource_type as i8)
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(pattern as i8)
                    .with_acls(acls)
            })
            .collect(),
    )
}

pub(super) async fn delete(
    shared: &Shared,
    session: &Session,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let denied = session.check(Operation::Alter, &Resource::cluster()).err();
    let mut deleted = Vec::new();
    let mut results: Vec<Result<Vec<AclBinding>, Invalid>> = Vec::new();
    for wire in request.filters {
        let result = match (denied, Filter::from(wire).parse()) {
            (Some(code), _) => Err((code, "ALTER on the cluster is needed".into())),
            (None, Err(invalid)) => Err(invalid),
            (None, Ok(filter)) => {
                let matching: Vec<AclBinding> = shared
                    .security
                    .authorizer
                    .acls(&filter)
                    .into_iter()
                    .filter(|acl| !deleted.contains(acl))
                    .collect();
                deleted.extend(matching.iter().cloned());
                Ok(matching)
            }
        };
        results.push(result);
    }
    let stored = record(
        shared,
        SecurityEvent::AclsDeleted {
            acls: deleted.clone(),
        },
    )
    .await;
    if stored.is_ok() {
        for acl in deleted {
            tracing::info!(principal = %session.principal, %acl, "ACL deleted");
        }
    }
    let filter_results = results
        .into_iter()
        .map(
            |result| match result.and_then(|acls| stored.clone().map(|()| acls)) {
                Err((code, message)) => DeleteAclsFilterResult::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
                Ok(acls) => DeleteAclsFilterResult::default()
                    .with_matching_acls(acls.into_iter().map(matching_acl).collect()),
            },
        )
        .collect();
    DeleteAclsResponse::default().with_filter_results(filter_results)
}

/// Records an ACL change (nothing to record when it has no ACLs).
async fn record(shared: &Shared, event: SecurityEvent) -> Result<(), Invalid> {
    let empty = match &event {
        SecurityEvent::AclsCreated { acls } | SecurityEvent::AclsDeleted { acls } => {
            acls.is_empty()
        }
        _ => false,
    };
    if empty {
        return Ok(());
    }
    let security: Arc<Security> = Arc::clone(&shared.security);
    blocking(move || security.record(vec![event]))
        .await
        .map_err(|e| (e.code, e.message))
}

fn matching_acl(acl: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type as i8)
        .with_resource_name(str_bytes(acl.resource_name))
        .with_pattern_type(acl.pattern_type as i8)
        .with_principal(str_bytes(acl.principal))
        .with_host(str_bytes(acl.host))
        .with_operation(acl.operation as i8)
        .with_permission_type(acl.permission as i8)
}

fn invalid(message: String) -> Invalid {
    (ResponseError::InvalidRequest, message)
}

/// An ACL to create, checked as Kafka checks it.
fn binding(creation: &AclCreation) -> Result<AclBinding, Invalid> {
    let resource_type = ResourceType::from_code(creation.resource_type)
        .ok_or_else(|| invalid(format!("invalid resource type {}", creation.resource_type)))?;
    let pattern_type = PatternType::from_code(creation.resource_pattern_type).ok_or_else(|| {
        invalid(format!(
            "invalid pattern type {}",
            creation.resource_pattern_type
        ))
    })?;
    let operation = Operation::from_code(creation.operation)
        .ok_or_else(|| invalid(format!("invalid operation {}", creation.operation)))?;
    let permission = Permission::from_code(creation.permission_type).ok_or_else(|| {
        invalid(format!(
            "invalid permission type {}",
            creation.permission_type
        ))
    })?;
    let principal = creation.principal.as_str();
    if !principal
        .split_once(':')
        .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
    {
        return Err(invalid(format!(
            "principal `{principal}` is not TYPE:NAME (e.g. User:alice)"
        )));
    }
    let name = creation.resource_name.as_str();
    if name.is_empty() || creation.host.is_empty() {
        return Err(invalid("empty resource name or host".into()));
    }
    if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
        return Err(invalid(format!(
            "the cluster resource is called `{CLUSTER_NAME}`"
        )));
    }
    Ok(AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: creation.host.to_string(),
        operation,
        permission,
    })
}

/// A filter as DescribeAcls and DeleteAcls send it.
struct Filter {
    resource_type: i8,
    resource_name: Option<StrBytes>,
    pattern_type: i8,
    principal: Option<StrBytes>,
    host: Option<StrBytes>,
    operation: i8,
    permission: i8,
}

/// DescribeAcls requests and DeleteAcls filters have the same fields.
macro_rules! filter_from {
    ($wire:ty) => {
        impl From<$wire> for Filter {
            fn from(f: $wire) -> Self {
                Filter {
                    resource_type: f.resource_type_filter,
                    resource_name: f.resource_name_filter,
                    pattern_type: f.pattern_type_filter,
                    principal: f.principal_filter,
                    host: f.host_filter,
                    operation: f.operation,
                    permission: f.permission_type,
                }
            }
        }
    };
}

filter_from!(DeleteAclsFilter);
filter_from!(DescribeAclsRequest);

impl Filter {
    fn parse(self) -> Result<AclFilter, Invalid> {
        /// `None` for ANY, the value for a valid code, an error otherwise.
        fn any_or<T>(
            code: i8,
            parse: fn(i8) -> Option<T>,
            what: &str,
        ) -> Result<Option<T>, Invalid> {
            if code == ANY {
                return Ok(None);
            }
            parse(code)
                .map(Some)
                .ok_or_else(|| invalid(format!("invalid {what} filter {code}")))
        }
        let pattern_type = match self.pattern_type {
            ANY => None,
            MATCH => Some(None),
            code => Some(Some(PatternType::from_code(code).ok_or_else(|| {
                invalid(format!("invalid pattern type filter {code}"))
            })?)),
        };
        let text = |s: Option<StrBytes>| s.map(|s| s.to_string());
        Ok(AclFilter {
            resource_type: any_or(self.resource_type, ResourceType::from_code, "resource type")?,
            resource_name: text(self.resource_name),
            pattern_type,
            principal: text(self.principal),
            host: text(self.host),
            operation: any_or(self.operation, Operation::from_code, "operation")?,
            permission: any_or(self.permission, Permission::from_code, "permission")?,
        })
    }
}
