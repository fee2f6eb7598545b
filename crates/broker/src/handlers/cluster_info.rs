//! DescribeCluster and DescribeLogDirs: what admin tools show about brokers and disks.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::metadata::CLUSTER_OPERATIONS;
use super::str_bytes;
use crate::cluster::Cluster;
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// DescribeCluster's endpoint types (KIP-919): brokers, or controllers.
const ENDPOINT_BROKERS: i8 = 1;

pub(super) fn describe_cluster(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let node = BrokerId(cluster.identity.node_id);
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(cluster.identity.cluster_id.clone()))
        .with_controller_id(node)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            i32::MIN
        });
    if request.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "strom nodes are brokers; ask for endpoint type 1",
            )));
    }
    response.with_brokers(vec![DescribeClusterBroker::default()
        .with_broker_id(node)
        .with_host(str_bytes(session.listener.advertised_host.clone()))
        .with_port(session.listener.advertised_port)])
}

pub(super) fn describe_log_dirs(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if let Err(code) = session.check(Operation::Describe, &Resource::cluster()) {
        return DescribeLogDirsResponse::default().with_error_code(code.code());
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let topics = cluster
        .topics()
        .into_iter()
        .filter_map(|topic| {
            let partitions: Vec<_> = topic
                .partitions
                .iter()
                .filter(|p| match &wanted {
                    None => true,
                    Some(w) => w
                        .iter()
                        .any(|(name, parts)| *name == topic.name && parts.contains(&p.index)),
                })
                .map(|p| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(p.log.size_bytes() as i64)
                        .with_offset_lag(0)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = std::fs::canonicalize(cluster.data_dir())
        .unwrap_or_else(|_| cluster.data_dir().to_path_buf());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(dir.display().to_string()))
        .with_topics(topics)
        // Unknown, as Kafka reports when it cannot tell.
        .with_total_bytes(-1)
        .with_usable_bytes(-1)])
}
