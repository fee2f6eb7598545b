//! Replica placement and the metadata quorum, answered truthfully for a single node:
//! ElectLeaders (this node already leads every partition: ELECTION_NOT_NEEDED),
//! AlterReplicaLogDirs (the data directory is the only log dir), AlterPartitionReassignments
//! (the only possible assignment is this node, which every partition already has),
//! ListPartitionReassignments (none is ever in progress) and DescribeQuorum (this node
//! is the only voter and the leader of the metadata log).

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::describe_quorum_response::{self, Node, PartitionData, ReplicaState};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, BrokerId, DescribeQuorumRequest,
    DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Shared;
use crate::cluster::metadata_log::METADATA_TOPIC;
use crate::cluster::Cluster;
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// Whether `session` may do `operation` to the cluster; the error code if not.
fn cluster_access(session: &Session, operation: Operation) -> Result<(), ResponseError> {
    if session.allows(operation, &Resource::cluster()) {
        Ok(())
    } else {
        Err(ResponseError::ClusterAuthorizationFailed)
    }
}

/// Whether partition `index` of `topic` exists.
fn exists(cluster: &Cluster, topic: &str, index: i32) -> bool {
    cluster
        .topic(topic)
        .is_some_and(|t| t.partition(index).is_some())
}

pub(super) fn elect_leaders(
    cluster: &Cluster,
    session: &Session,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let access = cluster_access(session, Operation::Alter);
    // Null asks for every partition; none needs an election, and Kafka lists only
    // the partitions it elected.
    let results = request
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|wanted| {
            let partition_result = wanted
                .partitions
                .iter()
                .map(|&index| {
                    let (code, message) = match access {
                        Err(code) => (code.code(), None),
                        Ok(()) if exists(cluster, &wanted.topic, index) => (
                            ResponseError::ElectionNotNeeded.code(),
                            Some("This node is the only replica and already the leader."),
                        ),
                        Ok(()) => (
                            ResponseError::UnknownTopicOrPartition.code(),
                            Some("The partition does not exist."),
                        ),
                    };
                    PartitionResult::default()
                        .with_partition_id(index)
                        .with_error_code(code)
                        .with_error_message(message.map(str_bytes))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(wanted.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    // v0 has no top-level error: the partitions carry it.
    let code = access.err().filter(|_| version >= 1);
    ElectLeadersResponse::default()
        .with_error_code(code.map_or(0, |c| c.code()))
        .with_replica_election_results(results)
}

pub(super) fn alter_replica_log_dirs(
    cluster: &Cluster,
    session: &Session,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let access = cluster_access(session, Operation::Alter);
    let data_dir = std::fs::canonicalize(cluster.data_dir()).ok();
    let results = request
        .dirs
        .into_iter()
        .flat_map(|dir| {
            let known = std::fs::canonicalize(dir.path.as_str()).ok();
            let is_data_dir = known.is_some() && known == data_dir;
            dir.topics
                .into_iter()
                .map(move |topic| (is_data_dir, topic))
        })
        .map(|(is_data_dir, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .map(|&index| {
                    let code = match access {
                        Err(code) => code.code(),
                        // Already there: the data directory holds every partition.
                        Ok(()) if !is_data_dir => ResponseError::LogDirNotFound.code(),
                        Ok(()) if exists(cluster, &topic.name, index) => 0,
                        Ok(()) => ResponseError::UnknownTopicOrPartition.code(),
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            AlterReplicaLogDirTopicResult::default()
                .with_topic_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterReplicaLogDirsResponse::default().with_results(results)
}

pub(super) fn alter_partition_reassignments(
    cluster: &Cluster,
    session: &Session,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change);
    if let Err(code) = cluster_access(session, Operation::Alter) {
        return response.with_error_code(code.code());
    }
    let node = BrokerId(cluster.identity.node_id);
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let present = exists(cluster, &topic.name, wanted.partition_index);
                    let refusal = match &wanted.replicas {
                        _ if !present => Some((
                            ResponseError::UnknownTopicOrPartition,
                            "The partition does not exist.".to_string(),
                        )),
                        // A cancellation: nothing is ever being reassigned.
                        None => Some((
                            ResponseError::NoReassignmentInProgress,
                            "No reassignment is in progress for this partition.".to_string(),
                        )),
                        // Already the assignment: done at once.
                        Some(replicas) if replicas.as_slice() == [node] => None,
                        Some(replicas) => Some((
                            ResponseError::InvalidReplicaAssignment,
                            format!(
                                "This single-node cluster has only broker {}; the assignment {:?} names others or none.",
                                node.0,
                                replicas.iter().map(|b| b.0).collect::<Vec<_>>()
                            ),
                        )),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(wanted.partition_index)
                        .with_error_code(refusal.as_ref().map_or(0, |(code, _)| code.code()))
                        .with_error_message(refusal.map(|(_, message)| str_bytes(message)))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    response.with_responses(responses)
}

pub(super) fn list_partition_reassignments(
    session: &Session,
    _request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    // Kafka lists only ongoing reassignments, and a single node never has one.
    match cluster_access(session, Operation::Describe) {
        Ok(()) => ListPartitionReassignmentsResponse::default(),
        Err(code) => ListPartitionReassignmentsResponse::default().with_error_code(code.code()),
    }
}

pub(super) fn describe_quorum(
    shared: &Shared,
    session: &Session,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let failed =
        |code: ResponseError| DescribeQuorumResponse::default().with_error_code(code.code());
    if let Err(code) = cluster_access(session, Operation::Describe) {
        return failed(code);
    }
    // Kafka answers for its metadata partition only, with a top-level error otherwise.
    let asks_for_metadata = matches!(request.topics.as_slice(), [topic]
        if topic.topic_name.as_str() == METADATA_TOPIC
            && matches!(topic.partitions.as_slice(), [p] if p.partition_index == 0));
    if !asks_for_metadata {
        return failed(ResponseError::UnknownTopicOrPartition);
    }
    let cluster = &shared.cluster;
    let node = BrokerId(cluster.identity.node_id);
    let end_offset = cluster.metadata_end_offset() as i64;
    // The leader has trivially fetched and caught up with itself (v1+ reports when).
    let now_ms = if version >= 1 {
        strom_log::now_ms()
    } else {
        -1
    };
    let voter = ReplicaState::default()
        .with_replica_id(node)
        .with_log_end_offset(end_offset)
        .with_last_fetch_timestamp(now_ms)
        .with_last_caught_up_timestamp(now_ms);
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(node)
        .with_leader_epoch(1)
        .with_high_watermark(end_offset)
        .with_current_voters(vec![voter]);
    let listeners = shared
        .listeners
        .iter()
        .map(|l| {
            describe_quorum_response::Listener::default()
                .with_name(str_bytes(l.name.clone()))
                .with_host(str_bytes(l.advertised_host.clone()))
                .with_port(u16::try_from(l.advertised_port).unwrap_or_default())
        })
        .collect();
    // Nodes and their listeners exist from v2 (KIP-853).
    let nodes = if version >= 2 {
        vec![Node::default().with_node_id(node).with_listeners(listeners)]
    } else {
        Vec::new()
    };
    DescribeQuorumResponse::default()
        .with_topics(vec![describe_quorum_response::TopicData::default()
            .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}
