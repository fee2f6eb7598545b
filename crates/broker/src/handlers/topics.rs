//! Topic administration: CreateTopics, DeleteTopics and CreatePartitions. Each change
//! is synced to the metadata log before it is answered.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::configs::topic_entries;
use super::{blocking, str_bytes};
use crate::cluster::topic_config::Overrides;
use crate::cluster::{AdminError, Cluster};
use crate::coord::GroupCoordinator;
use crate::security::acl::{Operation, Resource, ResourceType};
use crate::security::{denied_error, Session};

pub(super) async fn create(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let denied = if session.permits(Operation::Create, &Resource::cluster()) {
        Default::default()
    } else {
        let names = request.topics.iter().map(|t| t.name.0.as_str());
        session.denied_names(Operation::Create, Resource::topic, names)
    };
    let cluster = Arc::clone(cluster);
    blocking(move || {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for topic in &request.topics {
            *counts.entry(topic.name.0.to_string()).or_default() += 1;
        }
        let validate_only = request.validate_only;
        let results = request
            .topics
            .into_iter()
            .map(|wanted| {
                let name = wanted.name.clone();
                let result = CreatableTopicResult::default().with_name(name.clone());
                let created = if denied.contains(name.0.as_str()) {
                    Err(denied_error(ResourceType::Topic))
                } else if counts[name.0.as_str()] > 1 {
                    Err(AdminError::new(
                        ResponseError::InvalidRequest,
                        format!(
                            "Topic '{}' appears more than once in the request.",
                            name.0.as_str()
                        ),
                    ))
                } else {
                    create_one(&cluster, wanted, validate_only)
                };
                match created {
                    Ok((partitions, overrides, id)) => {
                        let result = result
                            .with_topic_id(id)
                            .with_num_partitions(partitions)
                            .with_replication_factor(1);
                        if version >= 5 {
                            result.with_configs(Some(
                                topic_entries(&cluster, &overrides)
                                    .into_iter()
                                    .map(|e| {
                                        CreatableTopicConfigs::default()
                                            .with_name(str_bytes(e.name))
                                            .with_value(Some(str_bytes(e.value)))
                                            .with_read_only(e.read_only)
                                            .with_config_source(e.source as i8)
                                    })
                                    .collect(),
                            ))
                        } else {
                            result
                        }
                    }
                    Err(e) => result
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(results)
    })
    .await
}

/// Creates one topic; returns its partition count, overrides and id.
fn create_one(
    cluster: &Cluster,
    wanted: CreatableTopic,
    validate_only: bool,
) -> Result<(i32, Overrides, uuid::Uuid), AdminError> {
    let name = wanted.name.0.as_str();
    let node = cluster.identity.node_id;
    let partitions = if wanted.assignments.is_empty() {
        match wanted.replication_factor {
            -1 | 1 => {}
            rf if rf > 1 => {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!("Unable to replicate the partition {rf} time(s): the target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
                ))
            }
            rf => {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!("Replication factor must be larger than 0, or -1 to use the default value, not {rf}."),
                ))
            }
        }
        match wanted.num_partitions {
            -1 => cluster.config.num_partitions,
            n => n,
        }
    } else {
        if wanted.num_partitions != -1 || wanted.replication_factor != -1 {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set; set only one.",
            ));
        }
        let mut indexes: Vec<i32> = wanted
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        indexes.sort_unstable();
        let consecutive = indexes.iter().enumerate().all(|(i, p)| *p == i as i32);
        let only_this_node = wanted
            .assignments
            .iter()
            .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
        if !consecutive || !only_this_node {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Replica assignments must name partitions 0..n, each on broker {node} alone."
                ),
            ));
        }
        wanted.assignments.len() as i32
    };
    let mut overrides = Overrides::new();
    for config in wanted.configs {
        let value = config.value.ok_or_else(|| {
            AdminError::new(
                ResponseError::InvalidConfig,
                format!(
                    "Null value not supported for topic config {}.",
                    config.name.as_str()
                ),
            )
        })?;
        overrides.insert(config.name.to_string(), value.to_string());
    }
    let topic = cluster.create_topic(name, partitions, overrides, validate_only)?;
    Ok((partitions, topic.overrides.clone(), topic.id))
}

pub(super) async fn delete(
    cluster: &Arc<Cluster>,
    session: &Session,
    coordinator: &Arc<GroupCoordinator>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let by_id: Vec<String> = request
        .topics
        .iter()
        .filter_map(|t| cluster.topic_by_id(&t.topic_id).map(|t| t.name.clone()))
        .collect();
    let names = request
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
        .chain(request.topic_names.iter().map(|n| n.0.as_str()))
        .chain(by_id.iter().map(String::as_str));
    let denied = session.denied_names(Operation::Delete, Resource::topic, names);
    let cluster = Arc::clone(cluster);
    let coordinator = Arc::clone(coordinator);
    blocking(move || {
        let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
            request
                .topics
                .into_iter()
                .map(|t| (t.name, t.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .into_iter()
                .map(|n| (Some(n), uuid::Uuid::nil()))
                .collect()
        };
        let responses = wanted
            .into_iter()
            .map(|(name, id)| {
                let resolved = match &name {
                    Some(name) => Ok(name.0.to_string()),
                    None => cluster
                        .topic_by_id(&id)
                        .map(|t| t.name.clone())
                        .ok_or_else(|| {
                            AdminError::new(
                                ResponseError::UnknownTopicId,
                                format!("Topic id {id} does not exist."),
                            )
                        }),
                };
                let result = resolved.and_then(|n| {
                    if denied.contains(&n) {
                        return Err(denied_error(ResourceType::Topic));
                    }
                    cluster.delete_topic(&n)
                });
                if let Ok(topic) = &result {
                    // Committed offsets of a deleted topic go with it.
                    if let Err(error) = coordinator.topic_deleted(&topic.name) {
                        tracing::warn!(%error, topic = %topic.name, "removing the topic's committed offsets failed");
                    }
                }
                let response = DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id);
                match result {
                    Ok(topic) => response
                        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
                        .with_topic_id(topic.id),
                    Err(e) => response
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message))),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    })
    .await
}

pub(super) async fn create_partitions(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let names = request.topics.iter().map(|t| t.name.0.as_str());
    let denied = session.denied_names(Operation::Alter, Resource::topic, names);
    let cluster = Arc::clone(cluster);
    blocking(move || {
        let node = cluster.identity.node_id;
        let results = request
            .topics
            .into_iter()
            .map(|wanted| {
                let valid_assignments = wanted.assignments.as_ref().is_none_or(|a| {
                    a.iter()
                        .all(|p| p.broker_ids.len() == 1 && p.broker_ids[0].0 == node)
                });
                let result = if denied.contains(wanted.name.0.as_str()) {
                    Err(denied_error(ResourceType::Topic))
                } else if valid_assignments {
                    cluster.create_partitions(
                        wanted.name.0.as_str(),
                        wanted.count,
                        request.validate_only,
                    )
                } else {
                    Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!("New partitions must be assigned to broker {node} alone."),
                    ))
                };
                let response = CreatePartitionsTopicResult::default().with_name(wanted.name);
                match result {
                    Ok(()) => response,
                    Err(e) => response
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message))),
                }
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    })
    .await
}
