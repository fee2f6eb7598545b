//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs. Topics report every
//! config with its value, source (topic override or default), type, documentation and
//! synonyms, as Kafka does; broker configs are reported read-only (they come from the
//! command line and config file).

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    incremental_alter_configs_response, list_config_resources_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListConfigResourcesRequest,
    ListConfigResourcesResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{blocking, broker_configs, str_bytes};
use crate::broker::Shared;
use crate::cluster::topic_config::{
    topic_config, ConfigType, Overrides, REMOVED_TOPIC_CONFIGS, TOPIC_CONFIGS,
};
use crate::cluster::{check_new_topic_name, AdminError, Cluster};
use crate::security::acl::{Operation, Resource};
use crate::security::{denied_error, Session};

/// Kafka's config resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

/// Kafka's config sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// One config as DescribeConfigs and CreateTopics report it.
pub(super) struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub read_only: bool,
    pub config_type: ConfigType,
    pub doc: &'static str,
    /// Where the value could come from, most specific first.
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// Every topic config of a topic with these overrides.
pub(super) fn topic_entries(cluster: &Cluster, overrides: &Overrides) -> Vec<ConfigEntry> {
    let defaults = &cluster.config.topic_defaults;
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let default = def.default_value(defaults);
            let set = overrides.get(def.name);
            let mut synonyms = Vec::with_capacity(2);
            if let Some(value) = set {
                synonyms.push((
                    def.name.to_string(),
                    value.clone(),
                    ConfigSource::DynamicTopic,
                ));
            }
            synonyms.push((
                def.broker_name.unwrap_or(def.name).to_string(),
                default.clone(),
                ConfigSource::Default,
            ));
            ConfigEntry {
                name: def.name.to_string(),
                value: set.cloned().unwrap_or(default),
                source: if set.is_some() {
                    ConfigSource::DynamicTopic
                } else {
                    ConfigSource::Default
                },
                read_only: false,
                config_type: def.config_type,
                doc: def.doc,
                synonyms,
            }
        })
        .collect()
}

/// Whether `session` may do `operation` to the configs of a resource: topics are
/// topics, the broker is the cluster.
fn config_access(
    session: &Session,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Result<(), AdminError> {
    let resource = match resource_type {
        RESOURCE_TOPIC => Resource::topic(name),
        RESOURCE_BROKER => Resource::cluster(),
        _ => return Ok(()),
    };
    if session.allows(operation, &resource) {
        Ok(())
    } else {
        Err(denied_error(resource.resource_type))
    }
}

/// [`config_access`] for each resource of an alter request, decided before the
/// change runs off the connection's task.
fn alter_access<'a>(
    session: &Session,
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> Vec<Result<(), AdminError>> {
    resources
        .map(|(resource_type, name)| {
            config_access(session, Operation::AlterConfigs, resource_type, name)
        })
        .collect()
}

pub(super) fn describe(
    shared: &Shared,
    session: &Session,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let cluster = &shared.cluster;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let access = config_access(
                session,
                Operation::DescribeConfigs,
                resource.resource_type,
                &resource.resource_name,
            );
            let entries = access.and_then(|()| match resource.resource_type {
                RESOURCE_TOPIC => {
                    let name = resource.resource_name.as_str();
                    match cluster.topic(name) {
                        Some(topic) => Ok(topic_entries(cluster, &topic.overrides)),
                        None => Err(match check_new_topic_name(name) {
                            Err(e) => e,
                            Ok(()) => AdminError::new(
                                ResponseError::UnknownTopicOrPartition,
                                format!("Topic '{name}' does not exist."),
                            ),
                        }),
                    }
                }
                RESOURCE_BROKER => check_broker(cluster, &resource.resource_name)
                    .map(|()| broker_configs::entries(shared)),
                other => Err(unsupported_resource(other)),
            });
            match entries {
                Ok(entries) => {
                    // Null or empty lists every config, as Kafka does.
                    let keys: Option<HashSet<&str>> = resource
                        .configuration_keys
                        .as_ref()
                        .filter(|k| !k.is_empty())
                        .map(|k| k.iter().map(StrBytes::as_str).collect());
                    result.with_configs(
                        entries
                            .into_iter()
                            .filter(|e| keys.as_ref().is_none_or(|k| k.contains(e.name.as_str())))
                            .map(|e| {
                                describe_entry(
                                    e,
                                    request.include_synonyms,
                                    version >= 3 && request.include_documentation,
                                )
                            })
                            .collect(),
                    )
                }
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// ListConfigResources (KIP-1142; v0 was ListClientMetricsResources): the resources
/// that have configs. Topics and this broker do; strom has no client-metrics
/// subscriptions, broker loggers or group configs, so those types list nothing. An
/// empty list of types asks for all; v0 asks for client metrics only.
pub(super) fn list_resources(
    cluster: &Cluster,
    session: &Session,
    request: ListConfigResourcesRequest,
    version: i16,
) -> ListConfigResourcesResponse {
    let failed =
        |code: ResponseError| ListConfigResourcesResponse::default().with_error_code(code.code());
    if config_access(session, Operation::DescribeConfigs, RESOURCE_BROKER, "").is_err() {
        return failed(ResponseError::ClusterAuthorizationFailed);
    }
    const KNOWN: [i8; 5] = [
        RESOURCE_TOPIC,
        RESOURCE_BROKER,
        RESOURCE_BROKER_LOGGER,
        RESOURCE_CLIENT_METRICS,
        RESOURCE_GROUP,
    ];
    let types: Vec<i8> = match (version, request.resource_types.is_empty()) {
        (0, _) => vec![RESOURCE_CLIENT_METRICS],
        (_, true) => KNOWN.to_vec(),
        (_, false) => request.resource_types,
    };
    if types.iter().any(|t| !KNOWN.contains(t)) {
        return failed(ResponseError::UnsupportedVersion);
    }
    let mut resources = Vec::new();
    if types.contains(&RESOURCE_TOPIC) {
        resources.extend(
            cluster
                .topics()
                .iter()
                .filter(|t| session.permits(Operation::DescribeConfigs, &Resource::topic(&t.name)))
                .map(|t| (t.name.clone(), RESOURCE_TOPIC)),
        );
    }
    if types.contains(&RESOURCE_BROKER) {
        resources.push((cluster.identity.node_id.to_string(), RESOURCE_BROKER));
    }
    resources.sort();
    ListConfigResourcesResponse::default().with_config_resources(
        resources
            .into_iter()
            .map(|(name, resource_type)| {
                list_config_resources_response::ConfigResource::default()
                    .with_resource_name(str_bytes(name))
                    // v0 has no type field (every resource is client metrics).
                    .with_resource_type(if version >= 1 {
                        resource_type
                    } else {
                        RESOURCE_CLIENT_METRICS
                    })
            })
            .collect(),
    )
}

fn describe_entry(
    entry: ConfigEntry,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(Some(str_bytes(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source as i8)
        .with_config_type(entry.config_type as i8)
        .with_documentation(documentation.then(|| StrBytes::from_static_str(entry.doc)))
        .with_synonyms(if synonyms {
            entry
                .synonyms
                .into_iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(value)))
                        .with_source(source as i8)
                })
                .collect()
        } else {
            Vec::new()
        })
}

pub(super) async fn alter(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let resources = request.resources.iter();
    let access = alter_access(
        session,
        resources.map(|r| (r.resource_type, &*r.resource_name)),
    );
    let cluster = Arc::clone(cluster);
    blocking(move || {
        let responses = request
            .resources
            .into_iter()
            .zip(access)
            .map(|(resource, access)| {
                let outcome = access.and_then(|()| match resource.resource_type {
                    RESOURCE_TOPIC => {
                        let mut overrides = Overrides::new();
                        let mut null = None;
                        for config in resource.configs {
                            match config.value {
                                Some(value) => {
                                    overrides.insert(config.name.to_string(), value.to_string());
                                }
                                None => null = Some(config.name.to_string()),
                            }
                        }
                        match null {
                            Some(name) => Err(AdminError::new(
                                ResponseError::InvalidRequest,
                                format!("Null value not supported for {name}."),
                            )),
                            None => cluster.alter_topic_configs(
                                resource.resource_name.as_str(),
                                |_| Ok(overrides),
                                request.validate_only,
                            ),
                        }
                    }
                    RESOURCE_BROKER => check_broker(&cluster, &resource.resource_name)
                        .and_then(|()| Err(static_broker())),
                    other => Err(unsupported_resource(other)),
                });
                alter_response(resource.resource_type, resource.resource_name, outcome)
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    })
    .await
}

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(super) async fn incremental_alter(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let resources = request.resources.iter();
    let access = alter_access(
        session,
        resources.map(|r| (r.resource_type, &*r.resource_name)),
    );
    let cluster = Arc::clone(cluster);
    blocking(move || {
        let responses = request
            .resources
            .into_iter()
            .zip(access)
            .map(|(resource, access)| {
                let outcome = access.and_then(|()| match resource.resource_type {
                    RESOURCE_TOPIC => {
                        let changes: Vec<(String, i8, Option<String>)> = resource
                            .configs
                            .iter()
                            .map(|c| {
                                (
                                    c.name.to_string(),
                                    c.config_operation,
                                    c.value.as_ref().map(|v| v.to_string()),
                                )
                            })
                            .collect();
                        cluster.alter_topic_configs(
                            resource.resource_name.as_str(),
                            |current| apply_incremental(current, &changes),
                            request.validate_only,
                        )
                    }
                    RESOURCE_BROKER => check_broker(&cluster, &resource.resource_name)
                        .and_then(|()| Err(static_broker())),
                    other => Err(unsupported_resource(other)),
                });
                let response =
                    alter_response(resource.resource_type, resource.resource_name, outcome);
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(response.error_code)
                    .with_error_message(response.error_message)
                    .with_resource_type(response.resource_type)
                    .with_resource_name(response.resource_name)
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    })
    .await
}

/// Applies SET, DELETE, APPEND and SUBTRACT operations to a topic's overrides.
fn apply_incremental(
    current: &Overrides,
    changes: &[(String, i8, Option<String>)],
) -> Result<Overrides, AdminError> {
    let invalid = |message: String| AdminError::new(ResponseError::InvalidConfig, message);
    let mut seen = HashSet::new();
    let mut overrides = current.clone();
    for (name, op, value) in changes {
        if !seen.insert(name.as_str()) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("Config {name} appears more than once."),
            ));
        }
        if REMOVED_TOPIC_CONFIGS.contains(&name.as_str()) {
            // Kept so that the cluster drops it with a warning, as in CreateTopics.
            overrides.insert(name.clone(), value.clone().unwrap_or_default());
            continue;
        }
        let def =
            topic_config(name).ok_or_else(|| invalid(format!("Unknown topic config {name}.")))?;
        let value = || {
            value
                .clone()
                .ok_or_else(|| invalid(format!("Operation on {name} needs a value.")))
        };
        match *op {
            OP_SET => {
                overrides.insert(name.clone(), value()?);
            }
            OP_DELETE => {
                overrides.remove(name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if def.config_type != ConfigType::List {
                    return Err(invalid(format!(
                        "{name} is not a list: APPEND and SUBTRACT do not apply."
                    )));
                }
                let value = value()?;
                let mut items: Vec<String> = overrides
                    .get(name)
                    .map_or_else(|| "delete".to_string(), Clone::clone)
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if *op == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                overrides.insert(name.clone(), items.join(","));
            }
            other => {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Unknown config operation {other}."),
                ))
            }
        }
    }
    Ok(overrides)
}

fn alter_response(
    resource_type: i8,
    resource_name: StrBytes,
    outcome: Result<(), AdminError>,
) -> AlterConfigsResourceResponse {
    let response = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(resource_name);
    match outcome {
        Ok(()) => response,
        Err(e) => response
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message))),
    }
}

/// A broker resource must name this node (or be empty: the cluster-wide default).
fn check_broker(cluster: &Cluster, name: &StrBytes) -> Result<(), AdminError> {
    let name = name.as_str();
    if name.is_empty() || name == cluster.identity.node_id.to_string() {
        Ok(())
    } else {
        Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!(
                "Broker {name} is not this node ({}).",
                cluster.identity.node_id
            ),
        ))
    }
}

fn static_broker() -> AdminError {
    AdminError::new(
        ResponseError::InvalidRequest,
        "strom's broker configs are static: set them on the command line or in the config file.",
    )
}

fn unsupported_resource(resource_type: i8) -> AdminError {
    AdminError::new(
        ResponseError::InvalidRequest,
        format!("Config resource type {resource_type} is not supported (topics: 2, brokers: 4)."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations_edit_the_overrides() {
        let current: Overrides = [("retention.ms".to_string(), "5".to_string())].into();
        let changes = vec![
            ("retention.ms".to_string(), OP_DELETE, None),
            ("segment.ms".to_string(), OP_SET, Some("1000".to_string())),
            (
                "cleanup.policy".to_string(),
                OP_APPEND,
                Some("delete".to_string()),
            ),
        ];
        let next = apply_incremental(&current, &changes).expect("valid");
        assert_eq!(next.get("retention.ms"), None);
        assert_eq!(next["segment.ms"], "1000");
        assert_eq!(next["cleanup.policy"], "delete");
    }

    #[test]
    fn incremental_operations_refuse_bad_requests() {
        let current = Overrides::new();
        let cases = [
            (
                vec![("retention.ms".to_string(), OP_APPEND, Some("1".to_string()))],
                "not a list",
            ),
            (
                vec![("nope".to_string(), OP_SET, Some("1".to_string()))],
                "Unknown topic config",
            ),
            (
                vec![("retention.ms".to_string(), OP_SET, None)],
                "needs a value",
            ),
            (
                vec![("retention.ms".to_string(), 9, Some("1".to_string()))],
                "Unknown config operation",
            ),
            (
                vec![
                    ("retention.ms".to_string(), OP_SET, Some("1".to_string())),
                    ("retention.ms".to_string(), OP_DELETE, None),
                ],
                "more than once",
            ),
        ];
        for (changes, needle) in cases {
            let err = apply_incremental(&current, &changes).expect_err(needle);
            assert!(err.message.contains(needle), "{}", err.message);
        }
    }
}
