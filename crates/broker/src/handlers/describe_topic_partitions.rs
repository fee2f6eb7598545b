//! DescribeTopicPartitions (KIP-966): topics and their partitions in name order, paged
//! by a partition limit and a cursor. The Java admin client's `describeTopics` uses it.
//! On a single node every partition has this node as leader, sole replica and sole
//! in-sync replica, with no eligible leader replicas beyond it.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::metadata::TOPIC_OPERATIONS;
use super::str_bytes;
use crate::cluster::{Cluster, INTERNAL_TOPICS};
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// Most partitions in one response (Kafka's `max.request.partition.size.limit`).
pub(crate) const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

pub(super) fn handle(
    cluster: &Cluster,
    session: &Session,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let mut limit = request
        .response_partition_limit
        .clamp(1, PARTITIONS_PER_RESPONSE_MAX) as usize;
    // An empty list asks for every topic the principal may describe (unlisted when not).
    let mut names: Vec<String> = if request.topics.is_empty() {
        cluster
            .topics()
            .iter()
            .map(|t| t.name.clone())
            .filter(|name| session.permits(Operation::Describe, &Resource::topic(name)))
            .collect()
    } else {
        request.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) =
        request.cursor.as_ref().map_or((String::new(), 0), |c| {
            (c.topic_name.to_string(), c.partition_index.max(0))
        });
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= cursor_topic) {
        if limit == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(TopicName(str_bytes(name))));
            break;
        }
        let first = if name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        let response = DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name.clone()))));
        if !session.allows(Operation::Describe, &Resource::topic(&name)) {
            topics.push(response.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some(topic) = cluster.topic(&name) else {
            topics.push(
                response
                    .with_topic_id(Uuid::nil())
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        let node = BrokerId(cluster.identity.node_id);
        let wanted: Vec<_> = topic
            .partitions
            .iter()
            .filter(|p| p.index >= first)
            .collect();
        let (shown, rest) = wanted.split_at(wanted.len().min(limit));
        limit -= shown.len();
        if let Some(next) = rest.first() {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(name.clone())))
                    .with_partition_index(next.index),
            );
        }
        topics.push(
            response
                .with_topic_id(topic.id)
                .with_is_internal(INTERNAL_TOPICS.contains(&name.as_str()))
                .with_topic_authorized_operations(TOPIC_OPERATIONS)
                .with_partitions(
                    shown
                        .iter()
                        .map(|p| {
                            DescribeTopicPartitionsResponsePartition::default()
                                .with_partition_index(p.index)
                                .with_leader_id(node)
                                .with_leader_epoch(0)
                                .with_replica_nodes(vec![node])
                                .with_isr_nodes(vec![node])
                                .with_eligible_leader_replicas(Some(Vec::new()))
                                .with_last_known_elr(Some(Vec::new()))
                        })
                        .collect(),
                ),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
