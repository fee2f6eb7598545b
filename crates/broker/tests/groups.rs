//! Consumer groups through an in-process broker: membership, committed offsets and
//! their durability across restarts.

#![allow(missing_docs)]

mod support;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest, DescribeGroupsRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::Client;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn group(id: &str) -> GroupId {
    GroupId(s(id))
}

async fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    assert_eq!(client.send(7, &request).await.topics[0].error_code, 0);
}

fn commit_request(
    group_id: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_metadata(Some(s(&format!("meta-{o}"))))
                    })
                    .collect(),
            )])
}

async fn committed(
    client: &mut Client,
    group_id: &str,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i64, String)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(partitions.to_vec())]));
    let response = client.send(7, &request).await;
    assert_eq!(response.error_code, 0);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.committed_offset,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Joins `group_id` as its only member and completes the rebalance; returns
/// (member id, generation).
async fn join_alone(client: &mut Client, group_id: &str) -> (String, i32) {
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(group(group_id))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription"))])
    };
    let first = client.send(9, &join("")).await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let joined = client.send(9, &join(first.member_id.as_str())).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader, joined.member_id);
    let sync = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(joined.member_id.clone())
            .with_assignment(Bytes::from_static(b"all of it"))]);
    let synced = client.send(5, &sync).await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"all of it"));
    (joined.member_id.to_string(), joined.generation_id)
}

#[tokio::test]
async fn committed_offsets_and_groups_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "events", 3).await;

    // A consumer without a group membership (assign() and commit) uses generation -1.
    let simple = client
        .send(
            8,
            &commit_request("simple", -1, "", "events", &[(0, 10), (2, 7)]),
        )
        .await;
    assert!(simple.topics[0]
        .partitions
        .iter()
        .all(|p| p.error_code == 0));

    let (member, generation) = join_alone(&mut client, "members").await;
    let stale = client
        .send(
            8,
            &commit_request("members", generation + 1, &member, "events", &[(1, 1)]),
        )
        .await;
    assert_eq!(
        stale.topics[0].partitions[0].error_code, 22,
        "ILLEGAL_GENERATION"
    );
    let stranger = client
        .send(
            8,
            &commit_request("members", generation, "nobody", "events", &[(1, 1)]),
        )
        .await;
    assert_eq!(
        stranger.topics[0].partitions[0].error_code, 25,
        "UNKNOWN_MEMBER_ID"
    );
    let ok = client
        .send(
            8,
            &commit_request("members", generation, &member, "events", &[(1, 42), (9, 1)]),
        )
        .await;
    let codes: Vec<i16> = ok.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [0, 3], "partition 9 does not exist");

    let non_empty = client
        .send(
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![group("members")]),
        )
        .await;
    assert_eq!(non_empty.results[0].error_code, 68, "NON_EMPTY_GROUP");
    broker.shutdown().await.expect("shutdown");

    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(
        committed(&mut client, "simple", "events", &[0, 1, 2]).await,
        [
            (10, "meta-10".to_string()),
            (-1, String::new()),
            (7, "meta-7".to_string())
        ]
    );
    assert_eq!(
        committed(&mut client, "members", "events", &[1]).await,
        [(42, "meta-42".to_string())]
    );
    // The group itself came back: its member may go on heartbeating.
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(group("members"))
        .with_generation_id(generation)
        .with_member_id(s(&member));
    assert_eq!(client.send(4, &heartbeat).await.error_code, 0);
    let described = client
        .send(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![group("members"), group("never")]),
        )
        .await;
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(
        described.groups[0].members[0].member_assignment,
        Bytes::from_static(b"all of it")
    );
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");

    // Deleting the topic deletes its committed offsets; deleting the group the rest.
    let deleted = client
        .send(
            6,
            &DeleteTopicsRequest::default().with_topics(vec![
                kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(s("events")))),
            ]),
        )
        .await;
    assert_eq!(deleted.responses[0].error_code, 0);
    assert_eq!(
        committed(&mut client, "simple", "events", &[0]).await,
        [(-1, String::new())]
    );
    let gone = client
        .send(
            2,
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![group("simple"), group("unknown")]),
        )
        .await;
    let codes: Vec<i16> = gone.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 69], "deleted, GROUP_ID_NOT_FOUND");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_group_its_members_left_stays_empty_after_a_restart() {
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::LeaveGroupRequest;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let (member, _) = join_alone(&mut client, "leavers").await;
    let leave = LeaveGroupRequest::default()
        .with_group_id(group("leavers"))
        .with_members(vec![MemberIdentity::default().with_member_id(s(&member))]);
    let left = client.send(5, &leave).await;
    assert_eq!(left.members[0].error_code, 0);
    let described = client
        .send(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![group("leavers")]),
        )
        .await;
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
    broker.shutdown().await.expect("shutdown");

    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let described = client
        .send(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![group("leavers")]),
        )
        .await;
    let state = described.groups[0].group_state.as_str();
    assert!(
        state == "Empty" || state == "Dead",
        "the member that left is not back: {state}"
    );
    assert!(described.groups[0].members.is_empty());
    broker.shutdown().await.expect("shutdown");
}
