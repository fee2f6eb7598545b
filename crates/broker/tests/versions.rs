//! Every (API, version) the broker advertises, each answered correctly. The table comes
//! from the broker itself (ApiVersions v3), so a version added to it is tested without
//! touching this file, and an API added without a request here fails loudly.
//!
//! For each version the test sends a sensible request (and a few that must fail with a
//! specific error code), decodes the response at that same version with the
//! `kafka-protocol` crate, and checks what it says. The codec refuses to encode a
//! response that sets a field its version lacks; the broker then closes the connection,
//! which shows up here as a missing response. All failures are collected and reported
//! together, one line per (API, version).
//!
//! The consumer-group checks run side by side, because a group's first rebalance waits
//! out the coordinator's initial delay (`group.initial.rebalance.delay.ms`, 3 s); the
//! others run one at a time, as some build on records the earlier ones produced.

#![allow(missing_docs)]

mod single_node;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, ConsumerProtocolSubscription,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeLogDirsRequest, FetchRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    IncrementalAlterConfigsRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, ProducerId, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use support::Client;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// Upper bound on one (API, version) check; reaching it is a failure (a hang).
const GUARD: Duration = Duration::from_secs(10);

/// The topic the read-side checks use: two partitions, records in partition 0.
const TOPIC: &str = "versions";

/// Timestamp of the records produced by the Produce checks; the ListOffsets checks
/// produce later ones, so that the newest ListOffsets record has the largest timestamp.
const PRODUCE_TIMESTAMP_MS: i64 = 1_700_000_000_000;
const LIST_OFFSETS_TIMESTAMP_MS: i64 = 1_800_000_000_000;

/// Kafka's config resource types and sources.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// Versions the helpers use for setup and read-back: what current clients send.
/// Each is also checked on its own in the main loop.
const METADATA_V: i16 = 12;
const PRODUCE_V: i16 = 9;
const LIST_OFFSETS_V: i16 = 7;
const CREATE_TOPICS_V: i16 = 7;
const DESCRIBE_CONFIGS_V: i16 = 4;
const JOIN_GROUP_V: i16 = 9;
const SYNC_GROUP_V: i16 = 5;
const HEARTBEAT_V: i16 = 4;
const LEAVE_GROUP_V: i16 = 5;
const OFFSET_COMMIT_V: i16 = 9;
const OFFSET_FETCH_V: i16 = 9;
const DESCRIBE_GROUPS_V: i16 = 5;

/// The topic the group checks commit offsets of and subscribe to: the OffsetCommit
/// check of version v commits partition v of it for the shared stable group.
const GROUPS_TOPIC: &str = "versions-groups";
const GROUPS_TOPIC_PARTITIONS: i32 = 10;

/// The group most group checks share: one member, stable for the whole test, with
/// `STABLE_OFFSET` committed for partition 0 of `GROUPS_TOPIC`.
const STABLE_GROUP: &str = "g-stable";
const STABLE_OFFSET: i64 = 77;

/// What the test's members ask for: within the coordinator's session timeout bounds
/// ([6 s, 30 min]) and longer than the test.
const SESSION_TIMEOUT_MS: i32 = 30_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const PROTOCOL_TYPE: &str = "consumer";
const ASSIGNOR: &str = "range";
/// Version of the consumer-protocol subscription the members send.
const SUBSCRIPTION_V: i16 = 3;
const COMMIT_METADATA: &str = "versions";

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// What every check may rely on.
struct Ctx {
    addr: SocketAddr,
    node_id: i32,
    cluster_id: String,
    topic_id: Uuid,
    /// `(api key, min, max)` as the broker advertises them.
    advertised: Vec<(i16, i16, i16)>,
    /// The member of `STABLE_GROUP`, joined by the first check that needs it.
    stable: OnceCell<Member>,
}

impl Ctx {
    /// The member of the shared stable group; the first caller joins it (waiting out
    /// the initial rebalance delay) while the others wait for it.
    async fn stable(&self) -> &Member {
        self.stable
            .get_or_init(|| async {
                let mut client = Client::connect(self.addr).await;
                let member = join_and_sync(&mut client, STABLE_GROUP).await;
                commit(
                    &mut client,
                    STABLE_GROUP,
                    &member.member_id,
                    member.generation,
                    GROUPS_TOPIC,
                    &[(0, STABLE_OFFSET)],
                )
                .await;
                member
            })
            .await
    }
}

/// A member of a group whose rebalance completed.
#[derive(Debug, Clone)]
struct Member {
    group: String,
    member_id: String,
    generation: i32,
    /// What the leader assigned it.
    assignment: Bytes,
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn name(text: &str) -> TopicName {
    TopicName(s(text))
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

#[tokio::test]
async fn every_advertised_version_answers_correctly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let ctx = Arc::new(setup(broker.kafka_addr()).await);

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut concurrent = Vec::new();
    for &(key, min, max) in &ctx.advertised {
        let api = ApiKey::try_from(key).expect("advertised key is a Kafka API");
        for version in min..=max {
            checked += 1;
            // Its own task, so that a failed assertion is reported and the loop goes on.
            let task = tokio::spawn(tokio::time::timeout(
                GUARD,
                check(Arc::clone(&ctx), api, version),
            ));
            if is_group_api(api) {
                concurrent.push((api, version, task));
            } else {
                failures.extend(failure(api, version, task.await));
            }
        }
    }
    for (api, version, task) in concurrent {
        failures.extend(failure(api, version, task.await));
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} advertised versions failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    broker.shutdown().await.expect("shutdown");
}

/// The consumer-group APIs, whose checks run concurrently.
fn is_group_api(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::OffsetDelete
            | ApiKey::DescribeGroups
            | ApiKey::ListGroups
            | ApiKey::DeleteGroups
            | ApiKey::ConsumerGroupHeartbeat
            | ApiKey::ConsumerGroupDescribe
    )
}

/// The failure line of a finished check, if it failed.
fn failure(
    api: ApiKey,
    version: i16,
    result: Result<Result<(), tokio::time::error::Elapsed>, tokio::task::JoinError>,
) -> Option<String> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(format!("{api:?} v{version}: no answer within {GUARD:?}")),
        Err(error) => Some(format!("{api:?} v{version}: {}", reason(error))),
    }
}

/// Why a check's task failed, in words.
fn reason(error: tokio::task::JoinError) -> String {
    let Ok(payload) = error.try_into_panic() else {
        return "check cancelled".into();
    };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|m| m.to_string()))
        .unwrap_or_else(|| "panicked".into());
    if message == "response frame" {
        "the broker closed the connection instead of answering (a response field the \
         version lacks makes the encoder refuse; see the broker's `connection closed` log)"
            .into()
    } else {
        message
    }
}

/// Creates the shared topics, with records in partition 0 of `TOPIC`, and reads the
/// cluster's ids.
async fn setup(addr: SocketAddr) -> Ctx {
    let mut client = Client::connect(addr).await;
    let versions = client.send(3, &ApiVersionsRequest::default()).await;
    assert_eq!(versions.error_code, 0);
    let advertised = versions
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let topic_id = create_topic(&mut client, TOPIC, 2).await;
    create_topic(&mut client, GROUPS_TOPIC, GROUPS_TOPIC_PARTITIONS).await;
    let base = produce(
        &mut client,
        TOPIC,
        0,
        &[b"one", b"two", b"three"],
        PRODUCE_TIMESTAMP_MS,
    )
    .await;
    assert_eq!(base, 0);
    let metadata = client
        .send(METADATA_V, &metadata_request(METADATA_V, Some(&[TOPIC])))
        .await;
    assert_eq!(metadata.topics[0].topic_id, topic_id);
    Ctx {
        addr,
        node_id: metadata.brokers[0].node_id.0,
        cluster_id: metadata
            .cluster_id
            .expect("cluster id")
            .as_str()
            .to_string(),
        topic_id,
        advertised,
        stable: OnceCell::new(),
    }
}

async fn check(ctx: Arc<Ctx>, api: ApiKey, version: i16) {
    let mut client = Client::connect(ctx.addr).await;
    let client = &mut client;
    match api {
        ApiKey::Metadata => metadata(&ctx, client, version).await,
        ApiKey::Produce => produce_check(&ctx, client, version).await,
        ApiKey::Fetch => fetch(&ctx, client, version).await,
        ApiKey::ListOffsets => list_offsets(client, version).await,
        ApiKey::CreateTopics => create_topics(client, version).await,
        ApiKey::DeleteTopics => delete_topics(client, version).await,
        ApiKey::CreatePartitions => create_partitions(client, version).await,
        ApiKey::DeleteRecords => delete_records(client, version).await,
        ApiKey::DescribeConfigs => describe_configs(&ctx, client, version).await,
        ApiKey::AlterConfigs => alter_configs(&ctx, client, version).await,
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs(&ctx, client, version).await,
        ApiKey::DescribeCluster => describe_cluster(&ctx, client, version).await,
        ApiKey::DescribeLogDirs => describe_log_dirs(client, version).await,
        ApiKey::ApiVersions => api_versions(&ctx, client, version).await,
        ApiKey::FindCoordinator => find_coordinator(&ctx, client, version).await,
        ApiKey::JoinGroup => join_group(client, version).await,
        ApiKey::SyncGroup => sync_group(&ctx, client, version).await,
        ApiKey::Heartbeat => heartbeat(&ctx, client, version).await,
        ApiKey::LeaveGroup => leave_group(client, version).await,
        ApiKey::OffsetCommit => offset_commit(&ctx, client, version).await,
        ApiKey::OffsetFetch => offset_fetch(&ctx, client, version).await,
        ApiKey::OffsetDelete => offset_delete(&ctx, client, version).await,
        ApiKey::DescribeGroups => describe_groups(&ctx, client, version).await,
        ApiKey::ListGroups => list_groups(&ctx, client, version).await,
        ApiKey::DeleteGroups => delete_groups(&ctx, client, version).await,
        ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat(&ctx, client, version).await,
        ApiKey::ConsumerGroupDescribe => consumer_group_describe(&ctx, client, version).await,
        ApiKey::InitProducerId => init_producer_id(client, version).await,
        ApiKey::DescribeProducers => describe_producers(client, version).await,
        ApiKey::AddPartitionsToTxn => add_partitions_to_txn(client, version).await,
        ApiKey::AddOffsetsToTxn => add_offsets_to_txn(client, version).await,
        ApiKey::EndTxn => end_txn(client, version).await,
        ApiKey::TxnOffsetCommit => txn_offset_commit(client, version).await,
        ApiKey::DescribeTransactions => describe_transactions(client, version).await,
        ApiKey::ListTransactions => list_transactions(client, version).await,
        ApiKey::SaslHandshake => sasl_handshake(client, version).await,
        ApiKey::SaslAuthenticate => sasl_authenticate(client, version).await,
        ApiKey::CreateAcls => create_acls(client, version).await,
        ApiKey::DescribeAcls => describe_acls(client, version).await,
        ApiKey::DeleteAcls => delete_acls(client, version).await,
        ApiKey::DescribeUserScramCredentials => {
            describe_user_scram_credentials(client, version).await
        }
        ApiKey::AlterUserScramCredentials => alter_user_scram_credentials(client, version).await,
        ApiKey::DescribeTopicPartitions => {
            single_node::describe_topic_partitions(client, TOPIC, ctx.node_id).await
        }
        ApiKey::ElectLeaders => single_node::elect_leaders(client, version, TOPIC).await,
        ApiKey::AlterReplicaLogDirs => {
            single_node::alter_replica_log_dirs(client, version, TOPIC).await
        }
        ApiKey::AlterPartitionReassignments => {
            single_node::alter_partition_reassignments(client, version, TOPIC, ctx.node_id).await
        }
        ApiKey::ListPartitionReassignments => {
            single_node::list_partition_reassignments(client, version).await
        }
        ApiKey::DescribeQuorum => {
            single_node::describe_quorum(client, version, ctx.node_id, ctx.addr.port()).await
        }
        ApiKey::ListConfigResources => {
            single_node::list_config_resources(client, version, TOPIC, ctx.node_id).await
        }
        other => panic!("{other:?} is advertised but this test has no request for it; add one"),
    }
}

// ---------------------------------------------------------------------------------
// Helpers at the reference versions.

/// A Metadata request for `topics` (all topics when `None`), never auto-creating.
fn metadata_request(version: i16, topics: Option<&[&str]>) -> MetadataRequest {
    let topics = match topics {
        Some(names) => Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect(),
        ),
        // Version 0 has no null: an empty list means all topics there.
        None if version == 0 => Some(Vec::new()),
        None => None,
    };
    let request = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    }
}

/// The topic's Metadata entry (at the reference version).
async fn topic_metadata(client: &mut Client, topic: &str) -> MetadataResponseTopic {
    let mut response = client
        .send(METADATA_V, &metadata_request(METADATA_V, Some(&[topic])))
        .await;
    assert_eq!(response.topics.len(), 1);
    response.topics.remove(0)
}

fn creatable(topic: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

/// Creates `topic`; returns its id.
async fn create_topic(client: &mut Client, topic: &str, partitions: i32) -> Uuid {
    let response = client
        .send(
            CREATE_TOPICS_V,
            &CreateTopicsRequest::default()
                .with_topics(vec![creatable(topic, partitions)])
                .with_timeout_ms(5_000),
        )
        .await;
    let result = &response.topics[0];
    assert_eq!(
        result.error_code, 0,
        "create {topic}: {:?}",
        result.error_message
    );
    result.topic_id
}

fn produce_request(
    version: i16,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    values: &[&[u8]],
    timestamp_ms: i64,
    acks: i16,
) -> ProduceRequest {
    let records: Vec<_> = values
        .iter()
        .map(|v| (None, Some(*v), timestamp_ms))
        .collect();
    let data =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(support::batch(&records)))]);
    // Version 13 names topics by id only.
    let data = if version >= 13 {
        data.with_topic_id(topic_id)
    } else {
        data.with_name(name(topic))
    };
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![data])
}

/// Produces `values` as one batch; returns its base offset.
async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    values: &[&[u8]],
    timestamp_ms: i64,
) -> i64 {
    let request = produce_request(
        PRODUCE_V,
        topic,
        Uuid::nil(),
        partition,
        values,
        timestamp_ms,
        -1,
    );
    let response = client.send(PRODUCE_V, &request).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0, "produce to {topic}");
    partition.base_offset
}

fn list_offsets_request(topic: &str, partitions: &[(i32, i64)]) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|(index, timestamp)| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*index)
                            .with_timestamp(*timestamp)
                    })
                    .collect(),
            )])
}

/// The offset ListOffsets (at `version`) gives for `timestamp` in one partition.
async fn list_offset(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let mut response = client
        .send(
            version,
            &list_offsets_request(topic, &[(partition, timestamp)]),
        )
        .await;
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name.0.as_str(), topic);
    assert_eq!(response.topics[0].partitions.len(), 1);
    response.topics[0].partitions.remove(0)
}

/// The log end offset of a partition.
async fn latest(client: &mut Client, topic: &str, partition: i32) -> i64 {
    let answer = list_offset(client, LIST_OFFSETS_V, topic, partition, -1).await;
    assert_eq!(answer.error_code, 0);
    answer.offset
}

/// The latest offset (the high watermark) once it reached `expected`, or what it is
/// after a failure guard: under the default `always` flush policy a record produced
/// with acks 0 or 1 is visible once the flush its produce started has completed.
async fn latest_reaching(client: &mut Client, topic: &str, partition: i32, expected: i64) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let offset = latest(client, topic, partition).await;
        if offset >= expected || std::time::Instant::now() > deadline {
            return offset;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The topic's configs, as DescribeConfigs reports them at the reference version.
async fn topic_configs(
    client: &mut Client,
    topic: &str,
) -> BTreeMap<String, DescribeConfigsResourceResult> {
    let response = client
        .send(
            DESCRIBE_CONFIGS_V,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(s(topic)),
            ]),
        )
        .await;
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "describe {topic}");
    result
        .configs
        .iter()
        .map(|c| (c.name.as_str().to_string(), c.clone()))
        .collect()
}

fn value_of(configs: &BTreeMap<String, DescribeConfigsResourceResult>, key: &str) -> (String, i8) {
    let config = configs
        .get(key)
        .unwrap_or_else(|| panic!("{key} is described"));
    let value = config.value.as_ref().expect("a value").as_str().to_string();
    (value, config.config_source)
}

fn group_id(group: &str) -> GroupId {
    GroupId(s(group))
}

/// The consumer-protocol subscription every member sends (version prefix, then the
/// struct): `GROUPS_TOPIC`.
fn subscription() -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_V);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![s(GROUPS_TOPIC)])
        .encode(&mut buf, SUBSCRIPTION_V)
        .expect("encode subscription");
    buf.freeze()
}

fn join_request(version: i16, group: &str, member_id: &str) -> JoinGroupRequest {
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
        .with_member_id(s(member_id))
        .with_protocol_type(s(PROTOCOL_TYPE))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s(ASSIGNOR))
            .with_metadata(subscription())]);
    if version >= 8 {
        request.with_reason(Some(s("versions test")))
    } else {
        request
    }
}

/// Joins `group` as a new member at `version`. From version 4 the first JoinGroup only
/// hands out a member id (MEMBER_ID_REQUIRED) and the second, `pause` later, joins
/// with it. Answered when the rebalance completes, after the coordinator's initial
/// delay.
async fn join(
    client: &mut Client,
    version: i16,
    group: &str,
    pause: Duration,
) -> JoinGroupResponse {
    let mut member_id = String::new();
    if version >= 4 {
        let first = client
            .send(version, &join_request(version, group, ""))
            .await;
        assert_eq!(
            first.error_code,
            code(ResponseError::MemberIdRequired),
            "first join of {group}"
        );
        assert!(
            !first.member_id.is_empty(),
            "MEMBER_ID_REQUIRED brings an id"
        );
        assert_eq!(first.generation_id, -1);
        member_id = first.member_id.to_string();
        tokio::time::sleep(pause).await;
    }
    let joined = client
        .send(version, &join_request(version, group, &member_id))
        .await;
    assert_eq!(joined.error_code, 0, "join {group}");
    assert!(!joined.member_id.is_empty(), "member id");
    if version >= 4 {
        assert_eq!(joined.member_id.as_str(), member_id, "the id it was given");
    }
    joined
}

fn sync_request(version: i16, group: &str, member_id: &str, generation: i32) -> SyncGroupRequest {
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(s(member_id))
        .with_generation_id(generation);
    if version >= 5 {
        request
            .with_protocol_type(Some(s(PROTOCOL_TYPE)))
            .with_protocol_name(Some(s(ASSIGNOR)))
    } else {
        request
    }
}

/// The leader's SyncGroup (at the reference version), assigning `assignment` to itself.
async fn sync_as_leader(
    client: &mut Client,
    group: &str,
    member_id: &str,
    generation: i32,
    assignment: &Bytes,
) {
    let request = sync_request(SYNC_GROUP_V, group, member_id, generation).with_assignments(vec![
        SyncGroupRequestAssignment::default()
            .with_member_id(s(member_id))
            .with_assignment(assignment.clone()),
    ]);
    let synced = client.send(SYNC_GROUP_V, &request).await;
    assert_eq!(synced.error_code, 0, "sync {group}");
    assert_eq!(
        &synced.assignment, assignment,
        "{group}: the leader's own share"
    );
}

/// Joins `group` (empty until now) and completes its rebalance as its only member.
/// Commits an offset first (partition 1 of `GROUPS_TOPIC`), so that the group exists
/// before its first member does (the JoinGroup check covers a group without one).
async fn join_and_sync(client: &mut Client, group: &str) -> Member {
    commit(client, group, "", -1, GROUPS_TOPIC, &[(1, 0)]).await;
    let joined = join(client, JOIN_GROUP_V, group, Duration::ZERO).await;
    let member_id = joined.member_id.to_string();
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    let assignment = Bytes::from(format!("assignment of {member_id}"));
    sync_as_leader(client, group, &member_id, joined.generation_id, &assignment).await;
    Member {
        group: group.to_string(),
        member_id,
        generation: joined.generation_id,
        assignment,
    }
}

fn heartbeat_request(group: &str, member_id: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(s(member_id))
        .with_generation_id(generation)
}

/// A LeaveGroup of one member: by `member_id` before version 3, as a member identity
/// from it.
fn leave_request(version: i16, group: &str, member_id: &str) -> LeaveGroupRequest {
    let request = LeaveGroupRequest::default().with_group_id(group_id(group));
    if version < 3 {
        return request.with_member_id(s(member_id));
    }
    let member = MemberIdentity::default().with_member_id(s(member_id));
    let member = if version >= 5 {
        member.with_reason(Some(s("versions test")))
    } else {
        member
    };
    request.with_members(vec![member])
}

/// An OffsetCommit of `offsets` (partition, offset) of one topic, with
/// `COMMIT_METADATA` and (where the version has it) leader epoch 0.
fn commit_request(
    version: i16,
    group: &str,
    member_id: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64)],
) -> OffsetCommitRequest {
    let partitions = offsets
        .iter()
        .map(|&(index, offset)| {
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(index)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(s(COMMIT_METADATA)));
            if version >= 6 {
                partition.with_committed_leader_epoch(0)
            } else {
                partition
            }
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(partitions)])
}

/// Commits at the reference version; every partition must be accepted. A generation
/// of -1 and no member id commit for a group nobody is in (a "simple" consumer).
async fn commit(
    client: &mut Client,
    group: &str,
    member_id: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64)],
) {
    let request = commit_request(
        OFFSET_COMMIT_V,
        group,
        member_id,
        generation,
        topic,
        offsets,
    );
    let response = client.send(OFFSET_COMMIT_V, &request).await;
    assert_eq!(response.topics.len(), 1);
    for partition in &response.topics[0].partitions {
        assert_eq!(
            partition.error_code, 0,
            "commit {group} {topic}-{}",
            partition.partition_index
        );
    }
}

/// The committed offsets of `partitions` (-1 where none is), read at the reference
/// version.
async fn committed(client: &mut Client, group: &str, topic: &str, partitions: &[i32]) -> Vec<i64> {
    let request =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(name(topic))
                .with_partition_indexes(partitions.to_vec())]))]);
    let response = client.send(OFFSET_FETCH_V, &request).await;
    assert_eq!(response.groups.len(), 1);
    let answer = &response.groups[0];
    assert_eq!(answer.error_code, 0, "offsets of {group}");
    assert_eq!(answer.topics.len(), 1);
    let found = &answer.topics[0].partitions;
    let indexes: Vec<i32> = found.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, partitions, "the partitions asked for");
    found
        .iter()
        .map(|p| {
            assert_eq!(
                p.error_code, 0,
                "offset of {group} {topic}-{}",
                p.partition_index
            );
            p.committed_offset
        })
        .collect()
}

/// The group as DescribeGroups (at the reference version) shows it.
async fn describe_group(client: &mut Client, group: &str) -> DescribedGroup {
    let mut response = client
        .send(
            DESCRIBE_GROUPS_V,
            &DescribeGroupsRequest::default().with_groups(vec![group_id(group)]),
        )
        .await;
    assert_eq!(response.groups.len(), 1);
    response.groups.remove(0)
}

// ---------------------------------------------------------------------------------
// One check per API.

async fn metadata(ctx: &Ctx, client: &mut Client, version: i16) {
    let mut request = metadata_request(version, None);
    if version >= 8 {
        request = request.with_include_topic_authorized_operations(true);
    }
    if (8..=10).contains(&version) {
        request = request.with_include_cluster_authorized_operations(true);
    }
    let response = client.send(version, &request).await;
    assert_eq!(response.brokers.len(), 1, "brokers");
    let broker = &response.brokers[0];
    assert_eq!(broker.node_id.0, ctx.node_id);
    assert_eq!(broker.port, i32::from(ctx.addr.port()));
    assert_eq!(broker.host.as_str(), ctx.addr.ip().to_string());
    if version >= 1 {
        assert_eq!(response.controller_id.0, ctx.node_id, "controller");
    }
    if version >= 2 {
        assert_eq!(
            response.cluster_id.as_ref().map(|c| c.as_str()),
            Some(ctx.cluster_id.as_str())
        );
    }
    if (8..=10).contains(&version) {
        assert!(
            response.cluster_authorized_operations > 0,
            "cluster operations were requested"
        );
    }
    let topic = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(TOPIC))
        .expect("all topics include the test topic");
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.partitions.len(), 2);
    for (index, partition) in topic.partitions.iter().enumerate() {
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.partition_index, index as i32);
        assert_eq!(partition.leader_id.0, ctx.node_id);
        assert_eq!(partition.replica_nodes.len(), 1);
        assert_eq!(partition.isr_nodes.len(), 1);
    }
    if version >= 8 {
        assert!(
            topic.topic_authorized_operations > 0,
            "topic operations were requested"
        );
    }
    if version >= 10 {
        assert_eq!(topic.topic_id, ctx.topic_id);
    }

    // One named topic.
    let named = client
        .send(version, &metadata_request(version, Some(&[TOPIC])))
        .await;
    assert_eq!(named.topics.len(), 1);
    assert_eq!(named.topics[0].error_code, 0);
    assert_eq!(named.topics[0].partitions.len(), 2);

    // A missing topic, when the request may say "do not create it".
    if version >= 4 {
        let missing = client
            .send(
                version,
                &metadata_request(version, Some(&["no-such-topic"])),
            )
            .await;
        assert_eq!(
            missing.topics[0].error_code,
            code(ResponseError::UnknownTopicOrPartition)
        );
    }
}

async fn produce_check(ctx: &Ctx, client: &mut Client, version: i16) {
    for acks in [1, -1] {
        let end = latest(client, TOPIC, 0).await;
        let value = format!("produce v{version} acks={acks}");
        let request = produce_request(
            version,
            TOPIC,
            ctx.topic_id,
            0,
            &[value.as_bytes()],
            PRODUCE_TIMESTAMP_MS,
            acks,
        );
        let response = client.send(version, &request).await;
        assert_eq!(response.responses.len(), 1);
        let topic = &response.responses[0];
        if version >= 13 {
            assert_eq!(topic.topic_id, ctx.topic_id);
        } else {
            assert_eq!(topic.name.0.as_str(), TOPIC);
        }
        assert_eq!(topic.partition_responses.len(), 1);
        let partition = &topic.partition_responses[0];
        assert_eq!(partition.index, 0);
        assert_eq!(
            partition.error_code, 0,
            "acks={acks}: {:?}",
            partition.error_message
        );
        assert_eq!(partition.base_offset, end, "acks={acks}: base offset");
        assert_eq!(partition.log_append_time_ms, -1, "create time");
        if version >= 5 {
            assert_eq!(partition.log_start_offset, 0);
        }
        assert_eq!(latest_reaching(client, TOPIC, 0, end + 1).await, end + 1);
    }

    // acks=0 gets no response at all: the next response on the connection is the
    // next request's.
    let end = latest(client, TOPIC, 0).await;
    let request = produce_request(
        version,
        TOPIC,
        ctx.topic_id,
        0,
        &[b"acks=0"],
        PRODUCE_TIMESTAMP_MS,
        0,
    );
    client.send_only(version, &request).await;
    assert_eq!(
        latest_reaching(client, TOPIC, 0, end + 1).await,
        end + 1,
        "acks=0 appended"
    );

    // Errors: a partition that does not exist, and an empty record set.
    let mut request = produce_request(version, TOPIC, ctx.topic_id, 7, &[b"x"], 0, -1);
    request.topic_data[0].partition_data.push(
        PartitionProduceData::default()
            .with_index(1)
            .with_records(Some(Default::default())),
    );
    let response = client.send(version, &request).await;
    let partitions = &response.responses[0].partition_responses;
    assert_eq!(partitions.len(), 2);
    // Kafka answers UNKNOWN_TOPIC_ID only when the id itself is unknown; a missing
    // partition of a known topic is UNKNOWN_TOPIC_OR_PARTITION at every version.
    assert_eq!(
        (partitions[0].index, partitions[0].error_code),
        (7, code(ResponseError::UnknownTopicOrPartition)),
        "partition 7 of an existing topic"
    );
    assert_eq!(
        (partitions[1].index, partitions[1].error_code),
        (1, code(ResponseError::CorruptMessage)),
        "empty record set"
    );
    assert_eq!(partitions[0].base_offset, -1);
    if version >= 8 {
        assert!(partitions[1].error_message.is_some(), "error message");
    }

    // A topic that does not exist: by id from version 13, by name before.
    let request = produce_request(
        version,
        "no-such-topic",
        Uuid::from_u128(7),
        0,
        &[b"x"],
        0,
        -1,
    );
    let response = client.send(version, &request).await;
    let expected = if version >= 13 {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        code(expected),
        "unknown topic"
    );
}

async fn fetch(ctx: &Ctx, client: &mut Client, version: i16) {
    let end = latest(client, TOPIC, 0).await;
    let partition = |index: i32| {
        FetchPartition::default()
            .with_partition(index)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20)
    };
    let topic =
        FetchTopic::default().with_partitions(vec![partition(0), partition(1), partition(9)]);
    let topic = if version >= 13 {
        topic.with_topic_id(ctx.topic_id)
    } else {
        topic.with_topic(name(TOPIC))
    };
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_topics(vec![topic]);
    let response = client.send(version, &request).await;
    if version >= 7 {
        assert_eq!(response.error_code, 0);
        assert_eq!(response.session_id, 0, "strom creates no fetch sessions");
    }
    assert_eq!(response.responses.len(), 1);
    let topic = &response.responses[0];
    if version >= 13 {
        assert_eq!(topic.topic_id, ctx.topic_id);
    } else {
        assert_eq!(topic.topic.0.as_str(), TOPIC);
    }
    assert_eq!(topic.partitions.len(), 3);
    let (full, empty, missing) = (
        &topic.partitions[0],
        &topic.partitions[1],
        &topic.partitions[2],
    );
    assert_eq!((full.partition_index, full.error_code), (0, 0));
    assert_eq!(full.high_watermark, end);
    if version >= 4 {
        assert_eq!(full.last_stable_offset, end);
    }
    if version >= 5 {
        assert_eq!(full.log_start_offset, 0);
    }
    let records = support::records_of(full.records.as_ref().expect("records"));
    assert_eq!(records.len() as i64, end, "every record from offset 0");
    assert_eq!(records[0].value.as_deref(), Some(&b"one"[..]));
    assert_eq!(records[2].value.as_deref(), Some(&b"three"[..]));
    assert_eq!((empty.partition_index, empty.error_code), (1, 0));
    assert_eq!(empty.high_watermark, 0);
    assert!(empty.records.as_ref().is_none_or(|r| r.is_empty()));
    assert_eq!(
        (missing.partition_index, missing.error_code),
        (9, code(ResponseError::UnknownTopicOrPartition))
    );

    // A topic that does not exist: by id from version 13, by name before.
    let unknown = FetchTopic::default().with_partitions(vec![partition(0)]);
    let (unknown, expected) = if version >= 13 {
        (
            unknown.with_topic_id(Uuid::from_u128(7)),
            ResponseError::UnknownTopicId,
        )
    } else {
        (
            unknown.with_topic(name("no-such-topic")),
            ResponseError::UnknownTopicOrPartition,
        )
    };
    let response = client
        .send(version, &request.with_topics(vec![unknown]))
        .await;
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        code(expected),
        "unknown topic"
    );
}

async fn list_offsets(client: &mut Client, version: i16) {
    let timestamp = LIST_OFFSETS_TIMESTAMP_MS + i64::from(version);
    let base = produce(client, TOPIC, 0, &[b"listed"], timestamp).await;
    // Leader epochs exist from version 4; the only epoch is 0.
    let epoch = if version >= 4 { 0 } else { -1 };
    let cases = [
        ("earliest", -2, 0, -1),
        ("latest", -1, base + 1, -1),
        ("by timestamp", timestamp, base, timestamp),
    ];
    for (what, query, offset, found_timestamp) in cases {
        let answer = list_offset(client, version, TOPIC, 0, query).await;
        assert_eq!(answer.error_code, 0, "{what}");
        assert_eq!(answer.offset, offset, "{what}");
        assert_eq!(answer.timestamp, found_timestamp, "{what}");
        assert_eq!(answer.leader_epoch, epoch, "{what}");
    }
    if version >= 7 {
        let answer = list_offset(client, version, TOPIC, 0, -3).await;
        assert_eq!(answer.error_code, 0, "max timestamp");
        assert_eq!(
            (answer.offset, answer.timestamp),
            (base, timestamp),
            "max timestamp"
        );
    }
    // Both partitions in one request, and one that does not exist.
    let response = client
        .send(version, &list_offsets_request(TOPIC, &[(1, -1), (5, -1)]))
        .await;
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions.len(), 2);
    assert_eq!((partitions[0].error_code, partitions[0].offset), (0, 0));
    assert_eq!(
        partitions[1].error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
}

async fn create_topics(client: &mut Client, version: i16) {
    let topic = format!("created-v{version}");
    // Version 4 introduced "-1: the broker's default" for the replication factor.
    let replication_factor = if version >= 4 { -1 } else { 1 };
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![creatable(&topic, 3)
            .with_replication_factor(replication_factor)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("86400000")))])]);
    let response = client.send(version, &request).await;
    assert_eq!(response.topics.len(), 1);
    let result = &response.topics[0];
    assert_eq!(result.name.0.as_str(), topic);
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    if version >= 5 {
        assert_eq!(result.num_partitions, 3);
        assert_eq!(result.replication_factor, 1);
        let configs = result.configs.as_ref().expect("configs from v5");
        let retention = configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .expect("retention.ms");
        assert_eq!(
            retention.value.as_ref().map(|v| v.as_str()),
            Some("86400000")
        );
        assert_eq!(retention.config_source, SOURCE_DYNAMIC_TOPIC);
    }
    let metadata = topic_metadata(client, &topic).await;
    assert_eq!(metadata.error_code, 0);
    assert_eq!(metadata.partitions.len(), 3);
    if version >= 7 {
        assert!(!result.topic_id.is_nil());
        assert_eq!(result.topic_id, metadata.topic_id);
    }

    // Again: it exists now. And a replication factor one node cannot give.
    let again = client.send(version, &request).await;
    assert_eq!(
        again.topics[0].error_code,
        code(ResponseError::TopicAlreadyExists)
    );
    let replicated = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![
            creatable(&format!("replicated-v{version}"), 1).with_replication_factor(3)
        ]);
    let refused = client.send(version, &replicated).await;
    assert_eq!(
        refused.topics[0].error_code,
        code(ResponseError::InvalidReplicationFactor)
    );
    if version >= 1 {
        assert!(refused.topics[0].error_message.is_some(), "error message");
    }

    // Validate only (from version 1): answered as if created, but nothing is.
    if version >= 1 {
        let validated = format!("validated-v{version}");
        let response = client
            .send(
                version,
                &CreateTopicsRequest::default()
                    .with_timeout_ms(5_000)
                    .with_validate_only(true)
                    .with_topics(vec![creatable(&validated, 2)]),
            )
            .await;
        assert_eq!(response.topics[0].error_code, 0, "validate only");
        assert_eq!(
            topic_metadata(client, &validated).await.error_code,
            code(ResponseError::UnknownTopicOrPartition)
        );
    }
}

async fn delete_topics(client: &mut Client, version: i16) {
    let by_name = format!("deleted-v{version}");
    create_topic(client, &by_name, 1).await;
    let request = DeleteTopicsRequest::default().with_timeout_ms(5_000);
    let (request, expected) = if version >= 6 {
        // Version 6 names topics by name or by id.
        let by_id = format!("deleted-by-id-v{version}");
        let id = create_topic(client, &by_id, 1).await;
        let request = request.with_topics(vec![
            DeleteTopicState::default().with_name(Some(name(&by_name))),
            DeleteTopicState::default().with_topic_id(id),
            DeleteTopicState::default().with_topic_id(Uuid::from_u128(7)),
        ]);
        (request, vec![by_name, by_id])
    } else {
        let request = request.with_topic_names(vec![name(&by_name), name("never-created")]);
        (request, vec![by_name])
    };
    let response = client.send(version, &request).await;
    assert_eq!(response.responses.len(), expected.len() + 1);
    for (result, topic) in response.responses.iter().zip(&expected) {
        assert_eq!(
            result.error_code, 0,
            "delete {topic}: {:?}",
            result.error_message
        );
        assert_eq!(
            result.name.as_ref().map(|n| n.0.as_str()),
            Some(topic.as_str())
        );
        assert_eq!(
            topic_metadata(client, topic).await.error_code,
            code(ResponseError::UnknownTopicOrPartition),
            "{topic} is gone"
        );
    }
    let unknown = &response.responses[expected.len()];
    let expected_error = if version >= 6 {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    assert_eq!(unknown.error_code, code(expected_error), "unknown topic");
}

async fn create_partitions(client: &mut Client, version: i16) {
    let topic = format!("grown-v{version}");
    create_topic(client, &topic, 1).await;
    let grow = |count: i32, validate_only: bool| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(5_000)
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(&topic))
                .with_count(count)])
    };
    let response = client.send(version, &grow(3, false)).await;
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.results[0].name.0.as_str(), topic);
    assert_eq!(
        response.results[0].error_code, 0,
        "{:?}",
        response.results[0].error_message
    );
    assert_eq!(topic_metadata(client, &topic).await.partitions.len(), 3);

    let validated = client.send(version, &grow(5, true)).await;
    assert_eq!(validated.results[0].error_code, 0, "validate only");
    assert_eq!(topic_metadata(client, &topic).await.partitions.len(), 3);

    let shrink = client.send(version, &grow(2, false)).await;
    assert_eq!(
        shrink.results[0].error_code,
        code(ResponseError::InvalidPartitions)
    );
    assert!(shrink.results[0].error_message.is_some(), "error message");
}

async fn delete_records(client: &mut Client, version: i16) {
    let topic = format!("trimmed-v{version}");
    create_topic(client, &topic, 1).await;
    produce(client, &topic, 0, &[b"a", b"b", b"c", b"d", b"e"], 0).await;
    let delete = |offset: i64| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(&topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(offset)])])
    };
    let response = client.send(version, &delete(3)).await;
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name.0.as_str(), topic);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(
        (
            partition.partition_index,
            partition.error_code,
            partition.low_watermark
        ),
        (0, 0, 3)
    );
    let earliest = list_offset(client, LIST_OFFSETS_V, &topic, 0, -2).await;
    assert_eq!(earliest.offset, 3);

    let beyond = client.send(version, &delete(50)).await;
    assert_eq!(
        beyond.topics[0].partitions[0].error_code,
        code(ResponseError::OffsetOutOfRange)
    );
}

async fn describe_configs(ctx: &Ctx, client: &mut Client, version: i16) {
    let documentation = version >= 3;
    let resource = |resource_type: i8, resource_name: &str| {
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(resource_name))
    };
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(documentation)
        .with_resources(vec![
            resource(RESOURCE_TOPIC, TOPIC),
            resource(RESOURCE_BROKER, &ctx.node_id.to_string()),
            resource(RESOURCE_TOPIC, TOPIC).with_configuration_keys(Some(vec![s("retention.ms")])),
            resource(RESOURCE_TOPIC, "no-such-topic"),
        ]);
    let response = client.send(version, &request).await;
    assert_eq!(response.results.len(), 4);
    let (topic, broker, filtered, missing) = (
        &response.results[0],
        &response.results[1],
        &response.results[2],
        &response.results[3],
    );

    assert_eq!(topic.error_code, 0, "{:?}", topic.error_message);
    assert_eq!(
        (topic.resource_type, topic.resource_name.as_str()),
        (RESOURCE_TOPIC, TOPIC)
    );
    let names: BTreeSet<&str> = topic.configs.iter().map(|c| c.name.as_str()).collect();
    for key in ["retention.ms", "cleanup.policy", "segment.bytes"] {
        assert!(names.contains(key), "{key} is described");
    }
    for config in &topic.configs {
        let key = config.name.as_str();
        assert!(config.value.is_some(), "{key} has a value");
        assert_eq!(config.config_source, SOURCE_DEFAULT, "{key} is a default");
        assert!(
            !config.synonyms.is_empty(),
            "{key}: synonyms were requested"
        );
        if documentation {
            assert!(config.documentation.is_some(), "{key}: documentation");
            assert_ne!(config.config_type, 0, "{key}: type");
        }
    }

    assert_eq!(broker.error_code, 0, "{:?}", broker.error_message);
    assert_eq!(broker.resource_type, RESOURCE_BROKER);
    let partitions = broker
        .configs
        .iter()
        .find(|c| c.name.as_str() == "num.partitions")
        .expect("num.partitions");
    assert_eq!(partitions.value.as_ref().map(|v| v.as_str()), Some("1"));
    assert!(partitions.read_only);

    assert_eq!(filtered.error_code, 0);
    assert_eq!(filtered.configs.len(), 1);
    assert_eq!(filtered.configs[0].name.as_str(), "retention.ms");

    assert_eq!(
        missing.error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );
}

async fn alter_configs(ctx: &Ctx, client: &mut Client, version: i16) {
    let topic = format!("altered-v{version}");
    create_topic(client, &topic, 1).await;
    let config = |key: &str, value: &str| {
        AlterableConfig::default()
            .with_name(s(key))
            .with_value(Some(s(value)))
    };
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configs(vec![
                config("retention.ms", "1234"),
                config("segment.ms", "3600000"),
            ]),
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(s(&ctx.node_id.to_string()))
            .with_configs(vec![config("num.partitions", "4")]),
    ]);
    let response = client.send(version, &request).await;
    assert_eq!(response.responses.len(), 2);
    let altered = &response.responses[0];
    assert_eq!(altered.error_code, 0, "{:?}", altered.error_message);
    assert_eq!(
        (altered.resource_type, altered.resource_name.as_str()),
        (RESOURCE_TOPIC, topic.as_str())
    );
    let configs = topic_configs(client, &topic).await;
    assert_eq!(
        value_of(&configs, "retention.ms"),
        ("1234".into(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(
        value_of(&configs, "segment.ms"),
        ("3600000".into(), SOURCE_DYNAMIC_TOPIC)
    );
    // Broker configs are static.
    let refused = &response.responses[1];
    assert_eq!(refused.error_code, code(ResponseError::InvalidRequest));
    assert!(refused.error_message.is_some(), "error message");
}

async fn incremental_alter_configs(ctx: &Ctx, client: &mut Client, version: i16) {
    let topic = format!("incremented-v{version}");
    create_topic(client, &topic, 1).await;
    let op = |key: &str, operation: i8, value: Option<&str>| {
        incremental::AlterableConfig::default()
            .with_name(s(key))
            .with_config_operation(operation)
            .with_value(value.map(s))
    };
    let resource = |configs| {
        incremental::AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(&topic))
            .with_configs(configs)
    };
    let set = IncrementalAlterConfigsRequest::default().with_resources(vec![
        resource(vec![
            op("retention.ms", 0, Some("4321")),
            op("segment.ms", 0, Some("60000")),
        ]),
        incremental::AlterConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(s(&ctx.node_id.to_string()))
            .with_configs(vec![op("num.partitions", 0, Some("4"))]),
    ]);
    let response = client.send(version, &set).await;
    assert_eq!(response.responses.len(), 2);
    let altered = &response.responses[0];
    assert_eq!(altered.error_code, 0, "{:?}", altered.error_message);
    assert_eq!(
        (altered.resource_type, altered.resource_name.as_str()),
        (RESOURCE_TOPIC, topic.as_str())
    );
    assert_eq!(
        response.responses[1].error_code,
        code(ResponseError::InvalidRequest),
        "broker configs are static"
    );
    let configs = topic_configs(client, &topic).await;
    assert_eq!(
        value_of(&configs, "retention.ms"),
        ("4321".into(), SOURCE_DYNAMIC_TOPIC)
    );

    // DELETE goes back to the default; an unknown config is refused.
    let delete = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource(vec![op("retention.ms", 1, None)])]);
    let response = client.send(version, &delete).await;
    assert_eq!(response.responses[0].error_code, 0);
    let configs = topic_configs(client, &topic).await;
    assert_eq!(value_of(&configs, "retention.ms").1, SOURCE_DEFAULT);
    assert_eq!(
        value_of(&configs, "segment.ms"),
        ("60000".into(), SOURCE_DYNAMIC_TOPIC)
    );
    let unknown = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource(vec![op("no.such.config", 0, Some("1"))])]);
    let response = client.send(version, &unknown).await;
    assert_eq!(
        response.responses[0].error_code,
        code(ResponseError::InvalidConfig)
    );
}

async fn describe_cluster(ctx: &Ctx, client: &mut Client, version: i16) {
    let request =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let response = client.send(version, &request).await;
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    assert_eq!(response.cluster_id.as_str(), ctx.cluster_id);
    assert_eq!(response.controller_id.0, ctx.node_id);
    assert!(
        response.cluster_authorized_operations > 0,
        "operations were requested"
    );
    assert_eq!(response.brokers.len(), 1);
    let broker = &response.brokers[0];
    assert_eq!(broker.broker_id.0, ctx.node_id);
    assert_eq!(broker.port, i32::from(ctx.addr.port()));
    assert_eq!(broker.host.as_str(), ctx.addr.ip().to_string());
    if version >= 1 {
        assert_eq!(response.endpoint_type, 1, "brokers");
        // Controllers (2): strom has no separate ones.
        let controllers = client
            .send(
                version,
                &DescribeClusterRequest::default().with_endpoint_type(2),
            )
            .await;
        assert_eq!(
            controllers.error_code,
            code(ResponseError::MismatchedEndpointType)
        );
    }
}

async fn describe_log_dirs(client: &mut Client, version: i16) {
    // Null asks for every topic; an empty list for none.
    let all = client
        .send(
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
    if version >= 3 {
        assert_eq!(all.error_code, 0);
    }
    assert_eq!(all.results.len(), 1, "one data directory");
    let dir = &all.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(!dir.log_dir.is_empty());
    if version >= 4 {
        assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1), "unknown");
    }
    let topic = dir
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == TOPIC)
        .expect("the test topic is in the data directory");
    let indexes: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, vec![0, 1]);
    assert!(
        topic.partitions[0].partition_size > 0,
        "partition 0 has records"
    );

    let one = client
        .send(
            version,
            &DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(name(TOPIC))
                    .with_partitions(vec![1]),
            ])),
        )
        .await;
    let topics = &one.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].partitions.len(), 1);
    assert_eq!(topics[0].partitions[0].partition_index, 1);

    let none = client
        .send(
            version,
            &DescribeLogDirsRequest::default().with_topics(Some(Vec::new())),
        )
        .await;
    assert_eq!(none.results.len(), 1);
    assert!(none.results[0].topics.is_empty(), "no topics asked for");
}

async fn api_versions(ctx: &Ctx, client: &mut Client, version: i16) {
    let request = if version >= 3 {
        ApiVersionsRequest::default()
            .with_client_software_name(s("strom-tests"))
            .with_client_software_version(s("0.1.0"))
    } else {
        ApiVersionsRequest::default()
    };
    let response = client.send(version, &request).await;
    assert_eq!(response.error_code, 0);
    let table: Vec<(i16, i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert_eq!(table, ctx.advertised, "the same table at every version");
    if version >= 1 {
        assert_eq!(response.throttle_time_ms, 0);
    }
}

async fn find_coordinator(ctx: &Ctx, client: &mut Client, version: i16) {
    let group = format!("g-FindCoordinator-{version}");
    let host = ctx.addr.ip().to_string();
    let port = i32::from(ctx.addr.port());
    if version >= 4 {
        // Batched keys: one coordinator each.
        let other = format!("{group}-other");
        let request = FindCoordinatorRequest::default()
            .with_key_type(KEY_GROUP)
            .with_coordinator_keys(vec![s(&group), s(&other)]);
        let response = client.send(version, &request).await;
        assert_eq!(response.coordinators.len(), 2);
        for (coordinator, key) in response.coordinators.iter().zip([&group, &other]) {
            assert_eq!(coordinator.key.as_str(), key);
            assert_eq!(
                coordinator.error_code, 0,
                "{key}: {:?}",
                coordinator.error_message
            );
            assert_eq!(coordinator.node_id.0, ctx.node_id);
            assert_eq!(coordinator.host.as_str(), host);
            assert_eq!(coordinator.port, port);
        }
        // This node coordinates transactions too.
        let request = FindCoordinatorRequest::default()
            .with_key_type(KEY_TRANSACTION)
            .with_coordinator_keys(vec![s("a-transactional-id")]);
        let response = client.send(version, &request).await;
        assert_eq!(response.coordinators.len(), 1);
        assert_eq!(
            response.coordinators[0].error_code, 0,
            "transaction coordinator"
        );
        assert_eq!(response.coordinators[0].node_id.0, ctx.node_id);
        return;
    }
    // Version 0 has no key type: always a group.
    let response = client
        .send(
            version,
            &FindCoordinatorRequest::default().with_key(s(&group)),
        )
        .await;
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    assert_eq!(response.node_id.0, ctx.node_id);
    assert_eq!(response.host.as_str(), host);
    assert_eq!(response.port, port);
    if version >= 1 {
        let request = FindCoordinatorRequest::default()
            .with_key(s("a-transactional-id"))
            .with_key_type(KEY_TRANSACTION);
        let response = client.send(version, &request).await;
        assert_eq!(response.error_code, 0, "transaction coordinator");
        assert_eq!(response.node_id.0, ctx.node_id);
    }
}

/// A group's whole life at this JoinGroup version: join, sync, heartbeat, rejoin (a new
/// generation), commit, leave.
async fn join_group(client: &mut Client, version: i16) {
    let group = format!("g-JoinGroup-{version}");
    let refused = client
        .send(
            version,
            &join_request(version, &group, "").with_session_timeout_ms(1_000),
        )
        .await;
    assert_eq!(
        refused.error_code,
        code(ResponseError::InvalidSessionTimeout),
        "a session timeout below the coordinator's minimum"
    );

    // A member may come back with the id MEMBER_ID_REQUIRED gave it any time within
    // its session timeout; this one takes a little while (a few of the coordinator's
    // 100 ms ticks).
    let joined = join(client, version, &group, Duration::from_millis(300)).await;
    let member_id = joined.member_id.to_string();
    let check_joined = |joined: &JoinGroupResponse, generation: i32| {
        assert_eq!(joined.error_code, 0);
        assert_eq!(joined.generation_id, generation, "generation");
        assert_eq!(joined.member_id.as_str(), member_id);
        assert_eq!(joined.leader.as_str(), member_id, "the only member leads");
        assert_eq!(joined.protocol_name.as_deref(), Some(ASSIGNOR), "protocol");
        if version >= 7 {
            assert_eq!(joined.protocol_type.as_deref(), Some(PROTOCOL_TYPE));
        }
        if version >= 9 {
            assert!(!joined.skip_assignment, "the leader assigns");
        }
        assert_eq!(joined.members.len(), 1, "the leader gets every member");
        let member = &joined.members[0];
        assert_eq!(member.member_id.as_str(), member_id);
        assert_eq!(member.group_instance_id, None);
        assert_eq!(member.metadata, subscription(), "the member's subscription");
    };
    check_joined(&joined, 1);
    let assignment = Bytes::from_static(b"all of it");
    sync_as_leader(client, &group, &member_id, 1, &assignment).await;
    let beat = client
        .send(HEARTBEAT_V, &heartbeat_request(&group, &member_id, 1))
        .await;
    assert_eq!(beat.error_code, 0, "heartbeat in the stable group");

    // A consumer of another kind cannot join.
    let alien = client
        .send(
            version,
            &join_request(version, &group, "").with_protocol_type(s("connect")),
        )
        .await;
    assert_eq!(
        alien.error_code,
        code(ResponseError::InconsistentGroupProtocol),
        "another protocol type"
    );

    // The leader rejoins: a new generation, at once (the group is not empty, so no
    // initial delay).
    let rejoined = client
        .send(version, &join_request(version, &group, &member_id))
        .await;
    check_joined(&rejoined, 2);
    sync_as_leader(client, &group, &member_id, 2, &assignment).await;
    let offset = 10 + i64::from(version);
    commit(client, &group, &member_id, 2, GROUPS_TOPIC, &[(0, offset)]).await;
    assert_eq!(
        committed(client, &group, GROUPS_TOPIC, &[0]).await,
        vec![offset]
    );

    let left = client
        .send(
            LEAVE_GROUP_V,
            &leave_request(LEAVE_GROUP_V, &group, &member_id),
        )
        .await;
    assert_eq!(left.members.len(), 1);
    assert_eq!(left.members[0].error_code, 0, "leave");
    // Its offsets keep the group, empty.
    let described = describe_group(client, &group).await;
    assert_eq!(described.group_state.as_str(), "Empty");
    assert!(described.members.is_empty());
}

async fn sync_group(ctx: &Ctx, client: &mut Client, version: i16) {
    let member = ctx.stable().await;
    let (group, member_id) = (member.group.as_str(), member.member_id.as_str());
    // A member of a stable group gets its assignment again.
    let response = client
        .send(
            version,
            &sync_request(version, group, member_id, member.generation),
        )
        .await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.assignment, member.assignment, "assignment");
    if version >= 5 {
        assert_eq!(response.protocol_type.as_deref(), Some(PROTOCOL_TYPE));
        assert_eq!(response.protocol_name.as_deref(), Some(ASSIGNOR));
    }

    let unknown = client
        .send(
            version,
            &sync_request(version, group, "nobody", member.generation),
        )
        .await;
    assert_eq!(
        unknown.error_code,
        code(ResponseError::UnknownMemberId),
        "unknown member"
    );
    let stale = client
        .send(
            version,
            &sync_request(version, group, member_id, member.generation + 1),
        )
        .await;
    assert_eq!(
        stale.error_code,
        code(ResponseError::IllegalGeneration),
        "another generation"
    );
    if version >= 5 {
        let other = client
            .send(
                version,
                &sync_request(version, group, member_id, member.generation)
                    .with_protocol_name(Some(s("roundrobin"))),
            )
            .await;
        assert_eq!(
            other.error_code,
            code(ResponseError::InconsistentGroupProtocol),
            "another protocol"
        );
    }
}

async fn heartbeat(ctx: &Ctx, client: &mut Client, version: i16) {
    let member = ctx.stable().await;
    let (group, member_id) = (member.group.as_str(), member.member_id.as_str());
    let cases = [
        (
            member_id,
            member.generation,
            0,
            "member of the stable group",
        ),
        (
            member_id,
            member.generation + 1,
            code(ResponseError::IllegalGeneration),
            "another generation",
        ),
        (
            "nobody",
            member.generation,
            code(ResponseError::UnknownMemberId),
            "unknown member",
        ),
    ];
    for (id, generation, expected, what) in cases {
        let response = client
            .send(version, &heartbeat_request(group, id, generation))
            .await;
        assert_eq!(response.error_code, expected, "{what}");
        if version >= 1 {
            assert_eq!(response.throttle_time_ms, 0);
        }
    }
}

async fn leave_group(client: &mut Client, version: i16) {
    let group = format!("g-LeaveGroup-{version}");
    // Its offset (committed by join_and_sync) keeps the group once it is empty.
    let member = join_and_sync(client, &group).await;
    let check = |response: &kafka_protocol::messages::LeaveGroupResponse, expected: i16| {
        if version >= 3 {
            assert_eq!(response.error_code, 0, "top level");
            assert_eq!(response.members.len(), 1);
            let answer = &response.members[0];
            assert_eq!(answer.member_id.as_str(), member.member_id);
            assert_eq!(answer.group_instance_id, None);
            assert_eq!(answer.error_code, expected, "member");
        } else {
            assert_eq!(response.error_code, expected);
        }
    };
    let left = client
        .send(version, &leave_request(version, &group, &member.member_id))
        .await;
    check(&left, 0);
    let described = describe_group(client, &group).await;
    assert_eq!(described.group_state.as_str(), "Empty", "after the leave");
    assert!(described.members.is_empty());
    let beat = client
        .send(
            HEARTBEAT_V,
            &heartbeat_request(&group, &member.member_id, member.generation),
        )
        .await;
    assert_eq!(
        beat.error_code,
        code(ResponseError::UnknownMemberId),
        "gone"
    );
    let again = client
        .send(version, &leave_request(version, &group, &member.member_id))
        .await;
    check(&again, code(ResponseError::UnknownMemberId));
}

async fn offset_commit(ctx: &Ctx, client: &mut Client, version: i16) {
    let member = ctx.stable().await;
    let (group, member_id) = (member.group.as_str(), member.member_id.as_str());
    let partition = i32::from(version);
    let offset = 1_000 + i64::from(version);

    // The stable group's member at its generation.
    let request = commit_request(
        version,
        group,
        member_id,
        member.generation,
        GROUPS_TOPIC,
        &[(partition, offset)],
    );
    let response = client.send(version, &request).await;
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name.0.as_str(), GROUPS_TOPIC);
    let answers: Vec<(i32, i16)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(answers, vec![(partition, 0)], "member commit");
    let fetched = client
        .send(
            OFFSET_FETCH_V,
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(name(GROUPS_TOPIC))
                    .with_partition_indexes(vec![partition])]))]),
        )
        .await;
    let read = &fetched.groups[0].topics[0].partitions[0];
    assert_eq!(read.committed_offset, offset);
    assert_eq!(read.metadata.as_deref(), Some(COMMIT_METADATA));
    let epoch = if version >= 6 { 0 } else { -1 };
    assert_eq!(read.committed_leader_epoch, epoch, "leader epoch");

    // Refused: another generation, an unknown member, and no member at all (only a
    // group nobody is in takes those).
    let refusals = [
        (
            member_id,
            member.generation + 1,
            ResponseError::IllegalGeneration,
        ),
        ("nobody", member.generation, ResponseError::UnknownMemberId),
        ("", -1, ResponseError::UnknownMemberId),
    ];
    for (id, generation, expected) in refusals {
        let request = commit_request(
            version,
            group,
            id,
            generation,
            GROUPS_TOPIC,
            &[(partition, 1)],
        );
        let response = client.send(version, &request).await;
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            code(expected),
            "member {id:?} generation {generation}"
        );
    }
    assert_eq!(
        committed(client, group, GROUPS_TOPIC, &[partition]).await,
        vec![offset],
        "refused commits change nothing"
    );

    // A simple consumer (assign() only): generation -1, no member id, a group nobody
    // is in. A topic that does not exist is refused per partition.
    let simple = format!("g-OffsetCommit-{version}");
    let mut request = commit_request(version, &simple, "", -1, TOPIC, &[(0, 2), (1, 0)]);
    request.topics.push(
        OffsetCommitRequestTopic::default()
            .with_name(name("no-such-topic"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)]),
    );
    let response = client.send(version, &request).await;
    assert_eq!(response.topics.len(), 2);
    let answers: Vec<(i32, i16)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(answers, vec![(0, 0), (1, 0)], "simple consumer commit");
    assert_eq!(response.topics[1].name.0.as_str(), "no-such-topic");
    assert_eq!(
        response.topics[1].partitions[0].error_code,
        code(ResponseError::UnknownTopicOrPartition),
        "unknown topic"
    );
    assert_eq!(committed(client, &simple, TOPIC, &[0, 1]).await, vec![2, 0]);

    // A generation for a group that does not exist: ILLEGAL_GENERATION, and
    // GROUP_ID_NOT_FOUND from version 9.
    let missing = format!("g-OffsetCommit-{version}-missing");
    let request = commit_request(version, &missing, "someone", 1, TOPIC, &[(0, 1)]);
    let response = client.send(version, &request).await;
    let expected = if version >= 9 {
        ResponseError::GroupIdNotFound
    } else {
        ResponseError::IllegalGeneration
    };
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        code(expected),
        "generation 1 of a group that does not exist"
    );
}

async fn offset_fetch(ctx: &Ctx, client: &mut Client, version: i16) {
    let group = format!("g-OffsetFetch-{version}");
    let missing = format!("g-OffsetFetch-{version}-missing");
    let offset = 100 + i64::from(version);
    commit(client, &group, "", -1, GROUPS_TOPIC, &[(0, offset)]).await;
    let stable = ctx.stable().await;
    let epoch = if version >= 5 { 0 } else { -1 };
    // (partition, offset, leader epoch, metadata, error) as answered.
    type Answer = (i32, i64, i32, Option<String>, i16);
    let expected_named: Vec<Answer> = vec![
        (0, offset, epoch, Some(COMMIT_METADATA.into()), 0),
        (1, -1, -1, Some(String::new()), 0),
    ];
    let nothing: Vec<Answer> = vec![(0, -1, -1, Some(String::new()), 0)];

    if version >= 8 {
        let entry = |group: &str, partitions: Option<&[i32]>| {
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(partitions.map(|p| {
                    vec![OffsetFetchRequestTopics::default()
                        .with_name(name(GROUPS_TOPIC))
                        .with_partition_indexes(p.to_vec())]
                }))
        };
        let request = OffsetFetchRequest::default()
            .with_require_stable(true)
            .with_groups(vec![
                entry(&group, Some(&[0, 1])),
                entry(&stable.group, None),
                entry(&missing, Some(&[0])),
                entry(&missing, None),
            ]);
        let response = client.send(version, &request).await;
        assert_eq!(response.groups.len(), 4);
        let answers = |index: usize| -> Vec<(String, Vec<Answer>)> {
            let answer = &response.groups[index];
            assert_eq!(answer.error_code, 0, "group {index}");
            answer
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            (
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_ref().map(|m| m.to_string()),
                                p.error_code,
                            )
                        })
                        .collect();
                    (t.name.0.to_string(), partitions)
                })
                .collect()
        };
        let ids: Vec<&str> = response
            .groups
            .iter()
            .map(|g| g.group_id.as_str())
            .collect();
        assert_eq!(ids, [&group, &stable.group, &missing, &missing]);
        assert_eq!(
            answers(0),
            vec![(GROUPS_TOPIC.to_string(), expected_named)],
            "named partitions"
        );
        let all = answers(1);
        assert_eq!(all.len(), 1, "the stable group commits one topic");
        assert_eq!(all[0].0, GROUPS_TOPIC);
        assert!(
            all[0]
                .1
                .contains(&(0, STABLE_OFFSET, 0, Some(COMMIT_METADATA.into()), 0)),
            "every committed partition: {:?}",
            all[0].1
        );
        assert_eq!(
            answers(2),
            vec![(GROUPS_TOPIC.to_string(), nothing)],
            "a group without offsets"
        );
        assert!(answers(3).is_empty(), "a group without offsets, all topics");
        return;
    }

    let request = |group: &str, partitions: Option<&[i32]>| {
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(partitions.map(|p| {
                vec![OffsetFetchRequestTopic::default()
                    .with_name(name(GROUPS_TOPIC))
                    .with_partition_indexes(p.to_vec())]
            }));
        if version >= 7 {
            request.with_require_stable(true)
        } else {
            request
        }
    };
    let answers = |response: &kafka_protocol::messages::OffsetFetchResponse| {
        if version >= 2 {
            assert_eq!(response.error_code, 0);
        }
        response
            .topics
            .iter()
            .map(|t| {
                let partitions: Vec<Answer> = t
                    .partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata.as_ref().map(|m| m.to_string()),
                            p.error_code,
                        )
                    })
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect::<Vec<_>>()
    };
    let named = client.send(version, &request(&group, Some(&[0, 1]))).await;
    assert_eq!(
        answers(&named),
        vec![(GROUPS_TOPIC.to_string(), expected_named)],
        "named partitions"
    );
    let none = client.send(version, &request(&missing, Some(&[0]))).await;
    assert_eq!(
        answers(&none),
        vec![(GROUPS_TOPIC.to_string(), nothing)],
        "a group without offsets"
    );
    // Null topics (from version 2): every committed partition.
    if version >= 2 {
        let all = client.send(version, &request(&stable.group, None)).await;
        let all = answers(&all);
        assert_eq!(all.len(), 1, "the stable group commits one topic");
        assert_eq!(all[0].0, GROUPS_TOPIC);
        assert!(
            all[0]
                .1
                .contains(&(0, STABLE_OFFSET, epoch, Some(COMMIT_METADATA.into()), 0)),
            "every committed partition: {:?}",
            all[0].1
        );
        let empty = client.send(version, &request(&missing, None)).await;
        assert!(answers(&empty).is_empty(), "a group without offsets");
    }
}

async fn offset_delete(ctx: &Ctx, client: &mut Client, version: i16) {
    let request = |group: &str, topic: &str, partitions: &[i32]| {
        OffsetDeleteRequest::default()
            .with_group_id(group_id(group))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| OffsetDeleteRequestPartition::default().with_partition_index(p))
                        .collect(),
                )])
    };
    // A group nobody is in: the offset goes.
    let group = format!("g-OffsetDelete-{version}");
    commit(client, &group, "", -1, TOPIC, &[(0, 5), (1, 6)]).await;
    let response = client.send(version, &request(&group, TOPIC, &[0])).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name.0.as_str(), TOPIC);
    let answers: Vec<(i32, i16)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(answers, vec![(0, 0)]);
    assert_eq!(
        committed(client, &group, TOPIC, &[0, 1]).await,
        vec![-1, 6],
        "partition 0 deleted, 1 kept"
    );

    // The stable group's member subscribes to GROUPS_TOPIC: its offsets stay.
    let stable = ctx.stable().await;
    let response = client
        .send(version, &request(&stable.group, GROUPS_TOPIC, &[0]))
        .await;
    assert_eq!(response.error_code, 0);
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        code(ResponseError::GroupSubscribedToTopic),
        "a topic the group consumes"
    );
    assert_eq!(
        committed(client, &stable.group, GROUPS_TOPIC, &[0]).await,
        vec![STABLE_OFFSET]
    );

    let missing = format!("g-OffsetDelete-{version}-missing");
    let response = client.send(version, &request(&missing, TOPIC, &[0])).await;
    assert_eq!(
        response.error_code,
        code(ResponseError::GroupIdNotFound),
        "a group that does not exist"
    );
}

async fn describe_groups(ctx: &Ctx, client: &mut Client, version: i16) {
    let stable = ctx.stable().await;
    let missing = format!("g-DescribeGroups-{version}-missing");
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![group_id(&stable.group), group_id(&missing)]);
    let request = if version >= 3 {
        request.with_include_authorized_operations(true)
    } else {
        request
    };
    let response = client.send(version, &request).await;
    assert_eq!(response.groups.len(), 2);
    let (described, dead) = (&response.groups[0], &response.groups[1]);

    assert_eq!(described.error_code, 0);
    assert_eq!(described.group_id.as_str(), stable.group);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.protocol_type.as_str(), PROTOCOL_TYPE);
    assert_eq!(described.protocol_data.as_str(), ASSIGNOR);
    assert_eq!(described.members.len(), 1);
    let member = &described.members[0];
    assert_eq!(member.member_id.as_str(), stable.member_id);
    assert_eq!(member.group_instance_id, None);
    assert_eq!(member.client_id.as_str(), "strom-tests");
    assert!(
        member
            .client_host
            .as_str()
            .contains(&ctx.addr.ip().to_string()),
        "client host {:?}",
        member.client_host
    );
    assert_eq!(member.member_metadata, subscription(), "metadata");
    assert_eq!(member.member_assignment, stable.assignment, "assignment");

    // A group that does not exist is Dead; version 6 also says GROUP_ID_NOT_FOUND.
    assert_eq!(dead.group_id.as_str(), missing);
    assert_eq!(dead.group_state.as_str(), "Dead");
    assert!(dead.members.is_empty());
    let expected = if version >= 6 {
        code(ResponseError::GroupIdNotFound)
    } else {
        0
    };
    assert_eq!(dead.error_code, expected, "a group that does not exist");
    if version >= 3 {
        assert!(
            described.authorized_operations > 0,
            "operations were requested: {}",
            described.authorized_operations
        );
    }
}

async fn list_groups(ctx: &Ctx, client: &mut Client, version: i16) {
    let stable = ctx.stable().await;
    // A group with offsets only, nobody in it.
    let simple = format!("g-ListGroups-{version}");
    commit(client, &simple, "", -1, TOPIC, &[(0, 1)]).await;
    let list = |states: &[&str], types: &[&str]| {
        let request = ListGroupsRequest::default();
        let request = if version >= 4 {
            request.with_states_filter(states.iter().map(|t| s(t)).collect())
        } else {
            request
        };
        if version >= 5 {
            request.with_types_filter(types.iter().map(|t| s(t)).collect())
        } else {
            request
        }
    };
    let ids = |response: &kafka_protocol::messages::ListGroupsResponse| {
        assert_eq!(response.error_code, 0);
        response
            .groups
            .iter()
            .map(|g| g.group_id.to_string())
            .collect::<BTreeSet<_>>()
    };

    let all = client.send(version, &list(&[], &[])).await;
    let find = |id: &str| {
        all.groups
            .iter()
            .find(|g| g.group_id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} is listed"))
    };
    let (listed, listed_simple) = (find(&stable.group), find(&simple));
    assert_eq!(listed.protocol_type.as_str(), PROTOCOL_TYPE);
    assert_eq!(listed_simple.protocol_type.as_str(), "", "no protocol");
    if version >= 4 {
        assert_eq!(listed.group_state.as_str(), "Stable");
        assert_eq!(listed_simple.group_state.as_str(), "Empty");
    }
    if version >= 5 {
        assert_eq!(listed.group_type.as_str(), "classic");
        assert_eq!(listed_simple.group_type.as_str(), "classic");
    }

    if version >= 4 {
        let stable_only = ids(&client.send(version, &list(&["Stable"], &[])).await);
        assert!(stable_only.contains(&stable.group), "Stable lists it");
        assert!(!stable_only.contains(&simple), "Stable leaves out Empty");
        let empty_only = ids(&client.send(version, &list(&["Empty"], &[])).await);
        assert!(empty_only.contains(&simple), "Empty lists it");
        assert!(
            !empty_only.contains(&stable.group),
            "Empty leaves out Stable"
        );
    }
    if version >= 5 {
        let classic = ids(&client.send(version, &list(&[], &["classic"])).await);
        assert!(classic.contains(&stable.group) && classic.contains(&simple));
        let consumer = ids(&client.send(version, &list(&[], &["consumer"])).await);
        assert!(
            !consumer.contains(&stable.group) && !consumer.contains(&simple),
            "classic groups are not consumer (KIP-848) groups: {consumer:?}"
        );
    }
}

async fn delete_groups(ctx: &Ctx, client: &mut Client, version: i16) {
    let stable = ctx.stable().await;
    let simple = format!("g-DeleteGroups-{version}");
    let missing = format!("g-DeleteGroups-{version}-missing");
    commit(client, &simple, "", -1, TOPIC, &[(0, 3)]).await;
    let delete = |groups: &[&str]| {
        DeleteGroupsRequest::default()
            .with_groups_names(groups.iter().map(|g| group_id(g)).collect())
    };
    let response = client
        .send(version, &delete(&[&stable.group, &simple, &missing]))
        .await;
    let results: Vec<(String, i16)> = response
        .results
        .iter()
        .map(|r| (r.group_id.to_string(), r.error_code))
        .collect();
    assert_eq!(
        results,
        vec![
            (stable.group.clone(), code(ResponseError::NonEmptyGroup)),
            (simple.clone(), 0),
            (missing.clone(), code(ResponseError::GroupIdNotFound)),
        ]
    );
    assert_eq!(
        committed(client, &simple, TOPIC, &[0]).await,
        vec![-1],
        "its offsets went with it"
    );
    assert_eq!(
        describe_group(client, &simple).await.group_state.as_str(),
        "Dead"
    );
    assert_eq!(
        describe_group(client, &stable.group)
            .await
            .group_state
            .as_str(),
        "Stable",
        "a group with members stays"
    );
    let again = client.send(version, &delete(&[&simple])).await;
    assert_eq!(
        again.results[0].error_code,
        code(ResponseError::GroupIdNotFound),
        "deleted already"
    );
}

// ---------------------------------------------------------------------------------
// The new consumer group protocol (KIP-848).

/// Joins `group` with a fresh member subscribed to the test topic; returns the
/// member id, its epoch and its assignment (partitions of the test topic).
async fn consumer_group_join(
    ctx: &Ctx,
    client: &mut Client,
    version: i16,
    group: &str,
) -> (String, i32, Vec<i32>) {
    use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
    // From v1 the client picks its member id; v0 lets the broker pick it.
    let member_id = if version >= 1 {
        Uuid::new_v4().to_string()
    } else {
        String::new()
    };
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(s(group)))
        .with_member_id(s(&member_id))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name(TOPIC)]))
        .with_topic_partitions(Some(Vec::new()));
    let response = client.send(version, &join).await;
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    assert!(response.member_epoch >= 1);
    assert!(response.heartbeat_interval_ms > 0);
    let id = response.member_id.expect("member id").to_string();
    if version >= 1 {
        assert_eq!(id, member_id, "v1 keeps the client's member id");
    }
    let assignment = response
        .assignment
        .expect("a joining member gets its assignment");
    assert_eq!(assignment.topic_partitions.len(), 1);
    assert_eq!(assignment.topic_partitions[0].topic_id, ctx.topic_id);
    (
        id,
        response.member_epoch,
        assignment.topic_partitions[0].partitions.clone(),
    )
}

async fn consumer_group_heartbeat(ctx: &Ctx, client: &mut Client, version: i16) {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
    let group = format!("g-ConsumerGroupHeartbeat-{version}");
    let (member, epoch, partitions) = consumer_group_join(ctx, client, version, &group).await;
    assert_eq!(partitions, [0, 1], "alone, the member gets every partition");
    let beat = |epoch: i32, member: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(s(&group)))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic_id(ctx.topic_id)
                .with_partitions(vec![0, 1])]))
    };
    let steady = client.send(version, &beat(epoch, &member)).await;
    assert_eq!((steady.error_code, steady.member_epoch), (0, epoch));
    let fenced = client.send(version, &beat(epoch + 5, &member)).await;
    assert_eq!(fenced.error_code, 110, "FENCED_MEMBER_EPOCH");
    let stranger = client.send(version, &beat(1, "nobody")).await;
    assert_eq!(stranger.error_code, 25, "UNKNOWN_MEMBER_ID");
    let left = client.send(version, &beat(-1, &member)).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
}

async fn consumer_group_describe(ctx: &Ctx, client: &mut Client, version: i16) {
    use kafka_protocol::messages::ConsumerGroupDescribeRequest;
    let group = format!("g-ConsumerGroupDescribe-{version}");
    let (member, epoch, _) = consumer_group_join(ctx, client, 1, &group).await;
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![
        kafka_protocol::messages::GroupId(s(&group)),
        kafka_protocol::messages::GroupId(s("g-never")),
    ]);
    let response = client.send(version, &request).await;
    let described = &response.groups[0];
    assert_eq!(described.error_code, 0);
    assert_eq!(described.group_epoch, epoch);
    assert_eq!(described.assignor_name.as_str(), "uniform");
    assert_eq!(described.members.len(), 1);
    let m = &described.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.member_epoch),
        (member.as_str(), epoch)
    );
    assert_eq!(m.subscribed_topic_names[0].0.as_str(), TOPIC);
    assert_eq!(
        m.assignment.topic_partitions[0].topic_name.0.as_str(),
        TOPIC
    );
    assert_eq!(m.assignment.topic_partitions[0].partitions, [0, 1]);
    assert_eq!(response.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");
}

// ---------------------------------------------------------------------------------
// Idempotent producers.

async fn init_producer_id(client: &mut Client, version: i16) {
    use kafka_protocol::messages::InitProducerIdRequest;
    let idempotent = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let first = client.send(version, &idempotent).await;
    let second = client.send(version, &idempotent).await;
    assert_eq!((first.error_code, second.error_code), (0, 0));
    assert!(first.producer_id.0 >= 0);
    assert_ne!(first.producer_id, second.producer_id, "a new id each time");
    assert_eq!(first.producer_epoch, 0);
    // A transactional id keeps its producer id; each InitProducerId bumps the epoch,
    // fencing the previous producer.
    let id = format!("init-{version}");
    let (pid, epoch) = init_txn(client, &id).await;
    let again = client.send(version, &txn_init_request(&id)).await;
    assert_eq!(again.error_code, 0);
    assert_eq!(
        (again.producer_id.0, again.producer_epoch),
        (pid, epoch + 1)
    );
    let too_long = txn_init_request(&id).with_transaction_timeout_ms(15 * 60 * 1000 + 1);
    assert_eq!(
        client.send(version, &too_long).await.error_code,
        code(ResponseError::InvalidTransactionTimeout)
    );
    if version >= 3 {
        // KIP-360: a producer presents its id and epoch. The previous epoch is a retry
        // of the last InitProducerId (answered again, not bumped); an older one is fenced.
        let third = client.send(version, &txn_init_request(&id)).await;
        assert_eq!(third.producer_epoch, epoch + 2);
        let retry = txn_init_request(&id)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch + 1);
        let retried = client.send(version, &retry).await;
        assert_eq!((retried.error_code, retried.producer_epoch), (0, epoch + 2));
        let stale = txn_init_request(&id)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch);
        let fenced = if version >= 4 {
            ResponseError::ProducerFenced
        } else {
            ResponseError::InvalidProducerEpoch
        };
        assert_eq!(client.send(version, &stale).await.error_code, code(fenced));
    }
}

async fn describe_producers(client: &mut Client, version: i16) {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        DescribeProducersRequest, InitProducerIdRequest, ProduceRequest,
    };
    let topic = format!("producers-{version}");
    create_topic(client, &topic, 1).await;
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let pid = client.send(4, &init).await.producer_id.0;
    let records = [(None, Some(&b"a"[..]), 1), (None, Some(&b"b"[..]), 2)];
    let produce =
        ProduceRequest::default()
            .with_acks(1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(&topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(support::producer_batch(&records, pid, 0, 0)))])]);
    let produced = client.send(9, &produce).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name(&topic))
        .with_partition_indexes(vec![0, 5])]);
    let response = client.send(version, &request).await;
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    let producer = &partitions[0].active_producers[0];
    assert_eq!(
        (
            producer.producer_id.0,
            producer.producer_epoch,
            producer.last_sequence
        ),
        (pid, 0, 1)
    );
    assert_eq!(partitions[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

// ---------------------------------------------------------------------------------
// Transactions.

/// InitProducerId for transactional id `id` (one minute timeout).
fn txn_init_request(id: &str) -> kafka_protocol::messages::InitProducerIdRequest {
    kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(s(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// A transactional producer for `id`: (producer id, epoch).
async fn init_txn(client: &mut Client, id: &str) -> (i64, i16) {
    let response = client.send(4, &txn_init_request(id)).await;
    assert_eq!(response.error_code, 0, "InitProducerId {id}");
    (response.producer_id.0, response.producer_epoch)
}

/// The classic AddPartitionsToTxn request (v0–3) for partitions of `topic`.
fn add_partitions_request(
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partitions: Vec<i32>,
) -> kafka_protocol::messages::AddPartitionsToTxnRequest {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    kafka_protocol::messages::AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(kafka_protocol::messages::TransactionalId(s(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(name(topic))
            .with_partitions(partitions)])
}

/// Opens a transaction of `id` on partition 0 of a new topic `topic`.
async fn open_txn(client: &mut Client, id: &str, topic: &str) -> (i64, i16) {
    create_topic(client, topic, 1).await;
    let (pid, epoch) = init_txn(client, id).await;
    let added = client
        .send(3, &add_partitions_request(id, pid, epoch, topic, vec![0]))
        .await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    (pid, epoch)
}

/// Produces one transactional record to partition 0 of `topic`; returns its error.
async fn produce_txn(
    client: &mut Client,
    id: &str,
    topic: &str,
    pid: i64,
    epoch: i16,
    seq: i32,
) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TransactionalId};
    let records = [(None, Some(&b"t"[..]), 1)];
    let request = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(support::txn_batch(&records, pid, epoch, seq)))])]);
    client.send(9, &request).await.responses[0].partition_responses[0].error_code
}

async fn add_partitions_to_txn(client: &mut Client, version: i16) {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, TransactionalId};
    let id = format!("add-partitions-{version}");
    let topic = format!("add-partitions-{version}");
    create_topic(client, &topic, 2).await;
    let (pid, epoch) = init_txn(client, &id).await;
    if version <= 3 {
        let response = client
            .send(
                version,
                &add_partitions_request(&id, pid, epoch, &topic, vec![0, 1]),
            )
            .await;
        let results = &response.results_by_topic_v3_and_below[0].results_by_partition;
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.partition_error_code == 0));
        // A partition that does not exist fails the whole request.
        let response = client
            .send(
                version,
                &add_partitions_request(&id, pid, epoch, &topic, vec![0, 9]),
            )
            .await;
        let codes: Vec<i16> = response.results_by_topic_v3_and_below[0]
            .results_by_partition
            .iter()
            .map(|r| r.partition_error_code)
            .collect();
        assert_eq!(
            codes,
            [
                code(ResponseError::OperationNotAttempted),
                code(ResponseError::UnknownTopicOrPartition)
            ]
        );
        let fenced = if version >= 2 {
            ResponseError::ProducerFenced
        } else {
            ResponseError::InvalidProducerEpoch
        };
        let response = client
            .send(
                version,
                &add_partitions_request(&id, pid, epoch - 1, &topic, vec![0]),
            )
            .await;
        assert_eq!(
            response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
            code(fenced)
        );
        return;
    }
    // The batched form: verify-only checks without adding, then an add.
    let batched = |verify_only: bool| {
        AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(s(&id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_verify_only(verify_only)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(name(&topic))
                    .with_partitions(vec![1])]),
        ])
    };
    let error_of = |r: &kafka_protocol::messages::AddPartitionsToTxnResponse| {
        r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code
    };
    let verified = client.send(version, &batched(true)).await;
    assert_eq!(error_of(&verified), code(ResponseError::InvalidTxnState));
    let added = client.send(version, &batched(false)).await;
    assert_eq!(
        added.results_by_transaction[0].transactional_id.0.as_str(),
        id
    );
    assert_eq!(error_of(&added), 0);
    assert_eq!(error_of(&client.send(version, &batched(true)).await), 0);
}

async fn add_offsets_to_txn(client: &mut Client, version: i16) {
    use kafka_protocol::messages::{AddOffsetsToTxnRequest, GroupId, TransactionalId};
    let id = format!("add-offsets-{version}");
    let (pid, epoch) = init_txn(client, &id).await;
    let request = |pid: i64| {
        AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s("txn-group")))
    };
    assert_eq!(client.send(version, &request(pid)).await.error_code, 0);
    assert_eq!(
        client.send(version, &request(pid + 1000)).await.error_code,
        code(ResponseError::InvalidProducerIdMapping)
    );
}

fn end_txn_request(
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> kafka_protocol::messages::EndTxnRequest {
    kafka_protocol::messages::EndTxnRequest::default()
        .with_transactional_id(kafka_protocol::messages::TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit)
}

async fn end_txn(client: &mut Client, version: i16) {
    let id = format!("end-{version}");
    let topic = format!("end-{version}");
    create_topic(client, &topic, 1).await;
    let (pid, epoch) = init_txn(client, &id).await;
    // Nothing open: nothing to end.
    let empty = client
        .send(version, &end_txn_request(&id, pid, epoch, true))
        .await;
    assert_eq!(empty.error_code, code(ResponseError::InvalidTxnState));
    let added = client
        .send(3, &add_partitions_request(&id, pid, epoch, &topic, vec![0]))
        .await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(produce_txn(client, &id, &topic, pid, epoch, 0).await, 0);
    let ended = client
        .send(version, &end_txn_request(&id, pid, epoch, true))
        .await;
    assert_eq!(ended.error_code, 0);
    if version >= 5 {
        // Transactions V2: every end bumps the epoch; a retry with the old one gets
        // the same answer; the old epoch can no longer write.
        assert_eq!(
            (ended.producer_id.0, ended.producer_epoch),
            (pid, epoch + 1)
        );
        let retry = client
            .send(version, &end_txn_request(&id, pid, epoch, true))
            .await;
        assert_eq!((retry.error_code, retry.producer_epoch), (0, epoch + 1));
        assert_eq!(
            produce_txn(client, &id, &topic, pid, epoch, 1).await,
            code(ResponseError::InvalidProducerEpoch)
        );
    } else {
        // A retried commit is answered again; aborting a committed one is refused.
        let retry = client
            .send(version, &end_txn_request(&id, pid, epoch, true))
            .await;
        assert_eq!(retry.error_code, 0);
        let abort = client
            .send(version, &end_txn_request(&id, pid, epoch, false))
            .await;
        assert_eq!(abort.error_code, code(ResponseError::InvalidTxnState));
    }
}

async fn txn_offset_commit(client: &mut Client, version: i16) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, GroupId, OffsetFetchRequest, TransactionalId,
        TxnOffsetCommitRequest,
    };
    let id = format!("txn-commit-{version}");
    let topic = format!("txn-commit-{version}");
    let group = format!("txn-commit-{version}");
    let (pid, epoch) = open_txn(client, &id, &topic).await;
    if version < 5 {
        // Classic transactions add the group first; from v5 the commit adds it.
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s(&group)));
        assert_eq!(client.send(1, &add).await.error_code, 0);
    }
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(&id)))
        .with_group_id(GroupId(s(&group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(name(&topic))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(7)])]);
    let response = client.send(version, &request).await;
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    let fetch = |stable: bool| {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_require_stable(stable)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name(&topic))
                .with_partition_indexes(vec![0])]))
    };
    // Pending: read_committed consumers are told to wait, others see the old offset.
    let pending = client.send(7, &fetch(true)).await;
    let partition = &pending.topics[0].partitions[0];
    assert_eq!(
        partition.error_code,
        code(ResponseError::UnstableOffsetCommit)
    );
    let unstable = client.send(7, &fetch(false)).await;
    assert_eq!(unstable.topics[0].partitions[0].committed_offset, -1);
    let ended = client
        .send(3, &end_txn_request(&id, pid, epoch, true))
        .await;
    assert_eq!(ended.error_code, 0);
    let committed = client.send(7, &fetch(true)).await;
    let partition = &committed.topics[0].partitions[0];
    assert_eq!((partition.error_code, partition.committed_offset), (0, 7));
}

async fn describe_transactions(client: &mut Client, version: i16) {
    use kafka_protocol::messages::{DescribeTransactionsRequest, TransactionalId};
    let id = format!("describe-txn-{version}");
    let topic = format!("describe-txn-{version}");
    let (pid, epoch) = open_txn(client, &id, &topic).await;
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(s(&id)),
        TransactionalId(s("no-such-transactional-id")),
    ]);
    let response = client.send(version, &request).await;
    let state = &response.transaction_states[0];
    assert_eq!(state.error_code, 0);
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!((state.producer_id.0, state.producer_epoch), (pid, epoch));
    assert_eq!(state.transaction_timeout_ms, 60_000);
    assert!(state.transaction_start_time_ms > 0);
    assert_eq!(state.topics[0].topic.0.as_str(), topic);
    assert_eq!(state.topics[0].partitions, [0]);
    assert_eq!(
        response.transaction_states[1].error_code,
        code(ResponseError::TransactionalIdNotFound)
    );
}

async fn list_transactions(client: &mut Client, version: i16) {
    use kafka_protocol::messages::ListTransactionsRequest;
    let id = format!("list-txn-{version}");
    let topic = format!("list-txn-{version}");
    let (pid, _) = open_txn(client, &id, &topic).await;
    let request = ListTransactionsRequest::default()
        .with_state_filters(vec![s("Ongoing"), s("Sleeping")])
        .with_producer_id_filters(vec![ProducerId(pid)])
        .with_duration_filter(-1);
    let response = client.send(version, &request).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.unknown_state_filters, [s("Sleeping")]);
    assert_eq!(response.transaction_states.len(), 1);
    let listed = &response.transaction_states[0];
    assert_eq!(listed.transactional_id.0.as_str(), id);
    assert_eq!(listed.transaction_state.as_str(), "Ongoing");
    if version >= 1 {
        // Only transactions running longer than an hour: none.
        let long = request.with_duration_filter(3_600_000);
        assert!(client
            .send(version, &long)
            .await
            .transaction_states
            .is_empty());
    }
}

// ---------------------------------------------------------------------------------
// Security: SASL on a PLAINTEXT listener, ACLs and SCRAM credentials (the broker runs
// without an authorizer here; `security.rs` covers enforcement).

async fn sasl_handshake(client: &mut Client, version: i16) {
    use kafka_protocol::messages::SaslHandshakeRequest;
    let response = client
        .send(
            version,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        )
        .await;
    assert_eq!(
        response.error_code, 34,
        "ILLEGAL_SASL_STATE on a PLAINTEXT listener"
    );
    assert!(response
        .mechanisms
        .iter()
        .any(|m| m.as_str() == "SCRAM-SHA-512"));
}

async fn sasl_authenticate(client: &mut Client, version: i16) {
    use kafka_protocol::messages::SaslAuthenticateRequest;
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0u\0p"));
    let response = client.send(version, &request).await;
    assert_eq!(
        response.error_code, 34,
        "ILLEGAL_SASL_STATE on a PLAINTEXT listener"
    );
}

/// An ACL creation: ALLOW `principal` READ on the literal topic `topic`.
fn acl_creation(
    topic: &str,
    operation: i8,
) -> kafka_protocol::messages::create_acls_request::AclCreation {
    kafka_protocol::messages::create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(s(topic))
        .with_resource_pattern_type(3)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(3)
}

async fn create_acl(client: &mut Client, topic: &str) {
    use kafka_protocol::messages::CreateAclsRequest;
    let request = CreateAclsRequest::default().with_creations(vec![acl_creation(topic, 3)]);
    let response = client.send(3, &request).await;
    assert_eq!(response.results[0].error_code, 0);
}

async fn create_acls(client: &mut Client, version: i16) {
    use kafka_protocol::messages::CreateAclsRequest;
    let topic = format!("acl-create-{version}");
    let request = CreateAclsRequest::default()
        .with_creations(vec![acl_creation(&topic, 3), acl_creation(&topic, 0)]);
    let response = client.send(version, &request).await;
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [0, 42],
        "the second has operation UNKNOWN: INVALID_REQUEST"
    );
}

async fn describe_acls(client: &mut Client, version: i16) {
    use kafka_protocol::messages::DescribeAclsRequest;
    let topic = format!("acl-describe-{version}");
    create_acl(client, &topic).await;
    let filter = DescribeAclsRequest::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(Some(s(&topic)))
        .with_pattern_type_filter(2)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let response = client.send(version, &filter).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.resources.len(), 1);
    let resource = &response.resources[0];
    assert_eq!(
        (resource.resource_name.as_str(), resource.pattern_type),
        (topic.as_str(), 3)
    );
    assert_eq!(resource.acls[0].principal.as_str(), "User:alice");
    assert_eq!(
        (resource.acls[0].operation, resource.acls[0].permission_type),
        (3, 3)
    );
    let bad = filter.with_operation(0);
    assert_eq!(
        client.send(version, &bad).await.error_code,
        42,
        "INVALID_REQUEST"
    );
}

async fn delete_acls(client: &mut Client, version: i16) {
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use kafka_protocol::messages::DeleteAclsRequest;
    let topic = format!("acl-delete-{version}");
    create_acl(client, &topic).await;
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(Some(s(&topic)))
        .with_pattern_type_filter(3)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let request = DeleteAclsRequest::default().with_filters(vec![filter]);
    let first = client.send(version, &request).await;
    assert_eq!(first.filter_results[0].error_code, 0);
    assert_eq!(first.filter_results[0].matching_acls.len(), 1);
    assert_eq!(
        first.filter_results[0].matching_acls[0]
            .resource_name
            .as_str(),
        topic
    );
    let again = client.send(version, &request).await;
    assert!(
        again.filter_results[0].matching_acls.is_empty(),
        "already gone"
    );
}

/// Stores a SCRAM-SHA-256 credential for `user` (4096 iterations).
fn upsertion(
    user: &str,
    iterations: i32,
) -> kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion {
    kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(1)
        .with_iterations(iterations)
        .with_salt(Bytes::from_static(b"salt"))
        .with_salted_password(Bytes::from_static(&[7; 32]))
}

async fn alter_user_scram_credentials(client: &mut Client, version: i16) {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
    use kafka_protocol::messages::AlterUserScramCredentialsRequest;
    let request = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![
            upsertion("alter-ok", 4096),
            upsertion("alter-few", 10),
        ])
        .with_deletions(vec![ScramCredentialDeletion::default()
            .with_name(s("alter-nobody"))
            .with_mechanism(2)]);
    let response = client.send(version, &request).await;
    let results: BTreeMap<String, i16> = response
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(results["alter-ok"], 0);
    assert_eq!(results["alter-few"], 93, "UNACCEPTABLE_CREDENTIAL");
    assert_eq!(results["alter-nobody"], 91, "RESOURCE_NOT_FOUND");
}

async fn describe_user_scram_credentials(client: &mut Client, version: i16) {
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
    };
    let stored = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![upsertion("describe-me", 8192)]);
    assert_eq!(client.send(0, &stored).await.results[0].error_code, 0);
    let request = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
        UserName::default().with_name(s("describe-me")),
        UserName::default().with_name(s("describe-nobody")),
    ]));
    let response = client.send(version, &request).await;
    assert_eq!(response.error_code, 0);
    let me = &response.results[0];
    assert_eq!(me.user.as_str(), "describe-me");
    assert_eq!(
        (
            me.credential_infos[0].mechanism,
            me.credential_infos[0].iterations
        ),
        (1, 8192)
    );
    assert_eq!(response.results[1].error_code, 91, "RESOURCE_NOT_FOUND");
}
