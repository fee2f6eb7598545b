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

#![allow(missing_docs)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeLogDirsRequest, FetchRequest, IncrementalAlterConfigsRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use support::Client;
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

/// What every check may rely on.
struct Ctx {
    addr: SocketAddr,
    node_id: i32,
    cluster_id: String,
    topic_id: Uuid,
    /// `(api key, min, max)` as the broker advertises them.
    advertised: Vec<(i16, i16, i16)>,
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
    for &(key, min, max) in &ctx.advertised {
        let api = ApiKey::try_from(key).expect("advertised key is a Kafka API");
        for version in min..=max {
            checked += 1;
            // Its own task, so that a failed assertion is reported and the loop goes on.
            let task = tokio::spawn(check(Arc::clone(&ctx), api, version));
            match tokio::time::timeout(GUARD, task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => failures.push(format!("{api:?} v{version}: {}", reason(error))),
                Err(_) => failures.push(format!("{api:?} v{version}: no answer within {GUARD:?}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} advertised versions failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    broker.shutdown().await.expect("shutdown");
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

/// Creates the shared topic with records in partition 0 and reads the cluster's ids.
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
        assert_eq!(latest(client, TOPIC, 0).await, end + 1);
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
    assert_eq!(latest(client, TOPIC, 0).await, end + 1, "acks=0 appended");

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
