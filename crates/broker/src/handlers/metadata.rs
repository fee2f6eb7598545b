//! Metadata: brokers, cluster id, and topics with their partitions and leaders; creates
//! missing topics when the request allows it and `auto_create_topics` is on.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{blocking, str_bytes};
use crate::cluster::{check_new_topic_name, Cluster, Topic};
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// The error for a topic the principal may not see (or create).
const DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Bit set of what a client may do to a topic (READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS); everything until ACLs exist.
pub(super) const TOPIC_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;

/// Bit set of cluster operations (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE).
pub(super) const CLUSTER_OPERATIONS: i32 =
    1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;

pub(super) async fn handle(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let topic_operations = if request.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let describe = |topic: &Topic| describe_topic(cluster, topic, topic_operations);
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let auto_create =
        cluster.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    if all_topics {
        topics.extend(
            cluster
                .topics()
                .iter()
                .filter(|t| session.permits(Operation::Describe, &Resource::topic(&t.name)))
                .map(|t| describe(t)),
        );
    } else {
        let mut seen = HashSet::new();
        for wanted in request.topics.unwrap_or_default() {
            match wanted.name {
                Some(name) => {
                    let name = name.0.as_str().to_string();
                    if !seen.insert(name.clone()) {
                        continue;
                    }
                    let topic = Resource::topic(&name);
                    if !session.allows(Operation::Describe, &topic) {
                        topics.push(error_topic(Some(&name), Uuid::nil(), DENIED));
                        continue;
                    }
                    // Kafka: creating needs CREATE on the cluster or on the topic.
                    let may_create = auto_create
                        && (session.permits(Operation::Create, &Resource::cluster())
                            || session.allows(Operation::Create, &topic));
                    let missing = if auto_create && !may_create {
                        DENIED
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    };
                    topics.push(
                        match find_or_create(cluster, &name, may_create, missing).await {
                            Ok(topic) => describe(&topic),
                            Err(code) => error_topic(Some(&name), Uuid::nil(), code),
                        },
                    );
                }
                None => topics.push(match cluster.topic_by_id(&wanted.topic_id) {
                    Some(topic)
                        if !session.allows(Operation::Describe, &Resource::topic(&topic.name)) =>
                    {
                        error_topic(None, wanted.topic_id, DENIED)
                    }
                    Some(topic) => describe(&topic),
                    None => error_topic(None, wanted.topic_id, ResponseError::UnknownTopicId),
                }),
            }
        }
    }
    let node_id = BrokerId(cluster.identity.node_id);
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node_id)
            .with_host(str_bytes(session.listener.advertised_host.clone()))
            .with_port(session.listener.advertised_port)])
        .with_cluster_id(Some(str_bytes(cluster.identity.cluster_id.clone())))
        .with_controller_id(node_id)
        .with_topics(topics)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        })
}

/// The topic `name`, created first if it is missing and `auto_create` allows it;
/// `missing` is the error for a topic that is not there and not created.
async fn find_or_create(
    cluster: &Arc<Cluster>,
    name: &str,
    auto_create: bool,
    missing: ResponseError,
) -> Result<Arc<Topic>, ResponseError> {
    if let Some(topic) = cluster.topic(name) {
        return Ok(topic);
    }
    if let Err(e) = check_new_topic_name(name) {
        return Err(e.code);
    }
    if !auto_create {
        return Err(missing);
    }
    let (owned, name_owned) = (Arc::clone(cluster), name.to_string());
    let partitions = cluster.config.num_partitions;
    let created =
        blocking(move || owned.create_topic(&name_owned, partitions, Default::default(), false))
            .await;
    match created {
        Ok(topic) => Ok(topic),
        // Another client created it first.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => cluster
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition),
        Err(e) => {
            tracing::warn!(topic = name, error = %e.message, "automatic topic creation failed");
            Err(e.code)
        }
    }
}

fn describe_topic(cluster: &Cluster, topic: &Topic, operations: i32) -> MetadataResponseTopic {
    let node = BrokerId(cluster.identity.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
        .with_topic_authorized_operations(operations)
}

fn error_topic(name: Option<&str>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
