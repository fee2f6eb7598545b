//! Version checks of the APIs a single node answers about replicas, the metadata
//! quorum and config resources (part of `versions.rs`).

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest, BrokerId,
    DescribeLogDirsRequest, DescribeQuorumRequest, DescribeTopicPartitionsRequest,
    ElectLeadersRequest, ListConfigResourcesRequest, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::support::Client;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// `topic` (two partitions, on `node`) is described in pages of one partition.
pub async fn describe_topic_partitions(client: &mut Client, topic: &str, node: i32) {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![
            TopicRequest::default().with_name(name("no-such-topic")),
            TopicRequest::default().with_name(name(topic)),
        ])
        .with_response_partition_limit(2000);
    let response = client.send(0, &request).await;
    assert_eq!(response.topics.len(), 2);
    let missing = &response.topics[0];
    assert_eq!(
        missing.name.as_ref().map(|n| n.as_str()),
        Some("no-such-topic")
    );
    assert_eq!(
        missing.error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
    let described = &response.topics[1];
    assert_eq!(described.error_code, 0);
    assert!(!described.topic_id.is_nil());
    let partitions: Vec<_> = described
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(partitions, [0, 1]);
    for p in &described.partitions {
        assert_eq!(p.leader_id, BrokerId(node));
        assert_eq!(p.replica_nodes, [BrokerId(node)]);
        assert_eq!(p.isr_nodes, [BrokerId(node)]);
    }
    assert!(response.next_cursor.is_none());
    // One partition per page: the cursor walks the topic.
    let first = client
        .send(
            0,
            &request
                .clone()
                .with_topics(vec![TopicRequest::default().with_name(name(topic))])
                .with_response_partition_limit(1),
        )
        .await;
    assert_eq!(first.topics[0].partitions.len(), 1);
    let cursor = first.next_cursor.expect("more partitions");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        (topic, 1)
    );
    let second = client
        .send(
            0,
            &DescribeTopicPartitionsRequest::default()
                .with_topics(vec![TopicRequest::default().with_name(name(topic))])
                .with_response_partition_limit(1)
                .with_cursor(Some(
                    Cursor::default()
                        .with_topic_name(name(topic))
                        .with_partition_index(1),
                )),
        )
        .await;
    assert_eq!(second.topics[0].partitions[0].partition_index, 1);
    assert!(second.next_cursor.is_none());
}

pub async fn elect_leaders(client: &mut Client, version: i16, topic: &str) {
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(name(topic))
            .with_partitions(vec![0, 1, 9])]));
    let response = client.send(version, &request).await;
    assert_eq!(response.error_code, 0);
    let codes: Vec<_> = response.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    let not_needed = code(ResponseError::ElectionNotNeeded);
    assert_eq!(
        codes,
        [
            (0, not_needed),
            (1, not_needed),
            (9, code(ResponseError::UnknownTopicOrPartition))
        ]
    );
    let all = client
        .send(version, &request.with_topic_partitions(None))
        .await;
    assert!(
        all.replica_election_results.is_empty(),
        "nothing was elected"
    );
}

pub async fn alter_replica_log_dirs(client: &mut Client, version: i16, topic: &str) {
    let dirs = client
        .send(
            1,
            &DescribeLogDirsRequest::default().with_topics(Some(Vec::new())),
        )
        .await;
    let data_dir = dirs.results[0].log_dir.clone();
    let move_to = |path: StrBytes| {
        AlterReplicaLogDir::default()
            .with_path(path)
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![0, 7])])
    };
    let response = client
        .send(
            version,
            &AlterReplicaLogDirsRequest::default().with_dirs(vec![
                move_to(data_dir),
                move_to(StrBytes::from_static_str("/no/such/log/dir")),
            ]),
        )
        .await;
    let codes: Vec<Vec<i16>> = response
        .results
        .iter()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    assert_eq!(
        codes,
        [
            vec![0, code(ResponseError::UnknownTopicOrPartition)],
            vec![code(ResponseError::LogDirNotFound); 2],
        ]
    );
}

pub async fn alter_partition_reassignments(
    client: &mut Client,
    version: i16,
    topic: &str,
    node: i32,
) {
    let partition = |index: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                partition(0, Some(vec![node])),
                partition(1, Some(vec![node, node + 1])),
                partition(0, None),
                partition(5, Some(vec![node])),
            ]),
    ]);
    let response = client.send(version, &request).await;
    assert_eq!(response.error_code, 0);
    let codes: Vec<_> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        [
            0,
            code(ResponseError::InvalidReplicaAssignment),
            code(ResponseError::NoReassignmentInProgress),
            code(ResponseError::UnknownTopicOrPartition),
        ]
    );
}

pub async fn list_partition_reassignments(client: &mut Client, version: i16) {
    let response = client
        .send(
            version,
            &ListPartitionReassignmentsRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(response.error_code, 0);
    assert!(response.topics.is_empty(), "a single node never reassigns");
}

pub async fn describe_quorum(client: &mut Client, version: i16, node: i32, port: u16) {
    let request = |topic: &str| {
        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(name(topic))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
    };
    let response = client.send(version, &request("__cluster_metadata")).await;
    assert_eq!(response.error_code, 0);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.leader_id, BrokerId(node));
    assert!(partition.high_watermark > 0, "topics were created");
    let voters: Vec<_> = partition
        .current_voters
        .iter()
        .map(|v| v.replica_id)
        .collect();
    assert_eq!(voters, [BrokerId(node)]);
    assert!(partition.observers.is_empty());
    assert_eq!(
        partition.current_voters[0].log_end_offset,
        partition.high_watermark
    );
    if version >= 1 {
        assert!(partition.current_voters[0].last_caught_up_timestamp > 0);
    }
    if version >= 2 {
        assert_eq!(response.nodes.len(), 1);
        assert_eq!(response.nodes[0].listeners[0].port, port);
    }
    let other = client.send(version, &request("versions")).await;
    assert_eq!(
        other.error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
}

pub async fn list_config_resources(client: &mut Client, version: i16, topic: &str, node: i32) {
    let all = client
        .send(version, &ListConfigResourcesRequest::default())
        .await;
    assert_eq!(all.error_code, 0);
    if version == 0 {
        assert!(
            all.config_resources.is_empty(),
            "no client metrics subscriptions"
        );
        return;
    }
    let listed: Vec<_> = all
        .config_resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.to_string()))
        .collect();
    assert!(listed.contains(&(2, topic.to_string())), "{listed:?}");
    assert!(listed.contains(&(4, node.to_string())), "{listed:?}");
    let brokers = client
        .send(
            version,
            &ListConfigResourcesRequest::default().with_resource_types(vec![4]),
        )
        .await;
    assert_eq!(brokers.config_resources.len(), 1);
    let unknown = client
        .send(
            version,
            &ListConfigResourcesRequest::default().with_resource_types(vec![99]),
        )
        .await;
    assert_ne!(unknown.error_code, 0);
}
