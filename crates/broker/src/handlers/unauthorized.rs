//! Authorization of the data-path requests (Produce, Fetch) as Kafka does it: topics
//! the principal may not use are taken out of the request before the handler runs,
//! and answered with TOPIC_AUTHORIZATION_FAILED next to the handler's results. This
//! keeps the produce and fetch handlers themselves free of security code.

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::fetch::error_data;
use crate::cluster::Cluster;
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

const DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;

/// The name of a topic a request names by `name` or (when `by_id`) by `id`; an
/// unknown id has no name and is left for the handler to refuse.
fn topic_name(cluster: &Cluster, name: &str, id: &Uuid, by_id: bool) -> Option<String> {
    if by_id {
        cluster.topic_by_id(id).map(|t| t.name.clone())
    } else {
        Some(name.to_string())
    }
}

/// Removes the topics `session` may not WRITE from `request`; returns their answers.
/// A transactional request whose transactional id the principal may not WRITE is
/// refused whole (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as in Kafka.
pub(super) fn produce(
    cluster: &Cluster,
    session: &Session,
    request: &mut ProduceRequest,
    version: i16,
) -> Vec<TopicProduceResponse> {
    let txn_denied = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| session.check_transactional_id(id).is_err());
    let code = if txn_denied {
        ResponseError::TransactionalIdAuthorizationFailed
    } else {
        DENIED
    };
    let (allowed, denied) = std::mem::take(&mut request.topic_data)
        .into_iter()
        .partition::<Vec<_>, _>(|t| {
            !txn_denied
                && topic_name(cluster, t.name.0.as_str(), &t.topic_id, version >= 13)
                    .is_none_or(|name| session.allows(Operation::Write, &Resource::topic(&name)))
        });
    request.topic_data = allowed;
    denied
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code.code())
                        .with_base_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(partitions)
        })
        .collect()
}

/// Removes the topics `session` may not READ from `request`; returns their answers.
pub(super) fn fetch(
    cluster: &Cluster,
    session: &Session,
    request: &mut FetchRequest,
    version: i16,
) -> Vec<FetchableTopicResponse> {
    let (allowed, denied) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition::<Vec<_>, _>(|t| {
            topic_name(cluster, t.topic.0.as_str(), &t.topic_id, version >= 13)
                .is_none_or(|name| session.allows(Operation::Read, &Resource::topic(&name)))
        });
    request.topics = allowed;
    denied
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    error_data(
                        PartitionData::default().with_partition_index(p.partition),
                        DENIED,
                    )
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic)
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect()
}
