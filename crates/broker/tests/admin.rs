//! Metadata and topic administration through an in-process broker.

#![allow(missing_docs)]

mod support;

use std::collections::HashMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    alter_configs_request, AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::{batch, Client};

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn creatable(topic: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

async fn create(
    client: &mut Client,
    topic: CreatableTopic,
    validate_only: bool,
) -> (i16, Option<String>) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_validate_only(validate_only);
    let response = client.send(7, &request).await;
    let result = &response.topics[0];
    (
        result.error_code,
        result.error_message.as_ref().map(|m| m.to_string()),
    )
}

async fn metadata(
    client: &mut Client,
    topics: Option<&[&str]>,
    auto_create: bool,
) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(auto_create)
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect()
        }));
    client.send(12, &request).await
}

async fn topic_configs(client: &mut Client, topic: &str) -> HashMap<String, (String, i8)> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))]);
    let response = client.send(4, &request).await;
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            assert!(
                c.documentation.as_ref().is_some_and(|d| !d.is_empty()),
                "{} has documentation",
                c.name
            );
            (
                c.name.to_string(),
                (
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    c.config_source,
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn metadata_lists_the_broker_and_creates_topics_on_demand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let all = metadata(&mut client, None, false).await;
    assert_eq!(all.brokers.len(), 1);
    assert_eq!(all.brokers[0].port, i32::from(broker.kafka_addr().port()));
    assert_eq!(all.controller_id, all.brokers[0].node_id);
    assert!(all.cluster_id.as_ref().is_some_and(|id| id.len() == 22));
    assert!(
        all.topics.is_empty(),
        "the metadata log is not a visible topic"
    );

    let refused = metadata(&mut client, Some(&["later"]), false).await;
    assert_eq!(
        refused.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let created = metadata(&mut client, Some(&["later"]), true).await;
    let topic = &created.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.partitions.len(), 1);
    assert_eq!(topic.partitions[0].leader_id, all.brokers[0].node_id);
    assert!(!topic.topic_id.is_nil());

    let invalid = metadata(&mut client, Some(&["bad/name"]), true).await;
    assert_eq!(invalid.topics[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    let reserved = metadata(&mut client, Some(&["__cluster_metadata"]), true).await;
    assert_eq!(reserved.topics[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn create_topics_validates_like_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(
        create(&mut client, creatable("events", 4, &[]), false)
            .await
            .0,
        0
    );
    assert_eq!(
        create(&mut client, creatable("events", 4, &[]), false)
            .await
            .0,
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        create(&mut client, creatable("events.x", 1, &[]), false)
            .await
            .0,
        0
    );
    let (code, message) = create(&mut client, creatable("events_x", 1, &[]), false).await;
    assert_eq!(code, 17, "collides with events.x: {message:?}");
    assert_eq!(
        create(&mut client, creatable("a b", 1, &[]), false).await.0,
        17
    );
    assert_eq!(
        create(&mut client, creatable(&"x".repeat(250), 1, &[]), false)
            .await
            .0,
        17
    );
    assert_eq!(
        create(&mut client, creatable("zero", 0, &[]), false)
            .await
            .0,
        37,
        "INVALID_PARTITIONS"
    );
    let replicated = creatable("replicated", 1, &[]).with_replication_factor(3);
    assert_eq!(
        create(&mut client, replicated, false).await.0,
        38,
        "INVALID_REPLICATION_FACTOR"
    );
    let (code, message) = create(
        &mut client,
        creatable("conf", 1, &[("retention.ms", "soon")]),
        false,
    )
    .await;
    assert_eq!(code, 40, "INVALID_CONFIG");
    assert!(message.is_some_and(|m| m.contains("retention.ms")));
    assert_eq!(
        create(
            &mut client,
            creatable("conf", 1, &[("no.such", "1")]),
            false
        )
        .await
        .0,
        40
    );

    assert_eq!(
        create(&mut client, creatable("dry", 2, &[]), true).await.0,
        0
    );
    let listed = metadata(&mut client, None, false).await;
    let names: Vec<String> = listed
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(
        names,
        ["events", "events.x"],
        "validate_only created nothing"
    );
    assert_eq!(listed.topics[0].partitions.len(), 4);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn configs_are_described_with_defaults_and_altered_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create(
        &mut client,
        creatable("conf", 1, &[("retention.bytes", "1000000")]),
        false,
    )
    .await;
    let configs = topic_configs(&mut client, "conf").await;
    assert_eq!(
        configs["retention.ms"],
        ("604800000".to_string(), 5),
        "default, DEFAULT_CONFIG"
    );
    assert_eq!(configs["cleanup.policy"], ("delete".to_string(), 5));
    assert_eq!(configs["max.message.bytes"], ("1048588".to_string(), 5));
    assert_eq!(configs["segment.bytes"], ("1073741824".to_string(), 5));
    assert_eq!(
        configs["message.timestamp.type"],
        ("CreateTime".to_string(), 5)
    );
    assert_eq!(
        configs["retention.bytes"],
        ("1000000".to_string(), 1),
        "override, DYNAMIC_TOPIC_CONFIG"
    );

    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("conf"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("3600000"))),
                AlterableConfig::default()
                    .with_name(s("retention.bytes"))
                    .with_config_operation(1),
            ]),
    ]);
    let response = client.send(1, &incremental).await;
    assert_eq!(
        response.responses[0].error_code, 0,
        "{:?}",
        response.responses[0].error_message
    );
    let configs = topic_configs(&mut client, "conf").await;
    assert_eq!(configs["retention.ms"], ("3600000".to_string(), 1));
    assert_eq!(configs["retention.bytes"], ("-1".to_string(), 5));

    let bad = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("conf"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("min.cleanable.dirty.ratio"))
                .with_config_operation(0)
                .with_value(Some(s("1.5")))]),
    ]);
    let response = client.send(1, &bad).await;
    assert_eq!(response.responses[0].error_code, 40, "INVALID_CONFIG");

    // APPEND adds compaction to the delete policy.
    let append = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("conf"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("cleanup.policy"))
                .with_config_operation(2)
                .with_value(Some(s("compact")))]),
    ]);
    let response = client.send(1, &append).await;
    assert_eq!(response.responses[0].error_code, 0);
    let configs = topic_configs(&mut client, "conf").await;
    assert_eq!(configs["cleanup.policy"], ("delete,compact".to_string(), 1));

    // AlterConfigs replaces the whole set.
    let replace = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("conf"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(s("segment.ms"))
                .with_value(Some(s("60000")))]),
    ]);
    let response = client.send(2, &replace).await;
    assert_eq!(response.responses[0].error_code, 0);
    broker.shutdown().await.expect("shutdown");

    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let configs = topic_configs(&mut client, "conf").await;
    assert_eq!(
        configs["segment.ms"],
        ("60000".to_string(), 1),
        "kept across a restart"
    );
    assert_eq!(configs["retention.ms"].1, 5, "replaced by AlterConfigs");

    let broker_configs =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))]);
    let response = client.send(4, &broker_configs).await;
    let names: Vec<String> = response.results[0]
        .configs
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    for expected in [
        "log.retention.ms",
        "num.partitions",
        "auto.create.topics.enable",
        "message.max.bytes",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn topics_grow_lose_records_and_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create(&mut client, creatable("grow", 1, &[]), false).await;
    let grow = |count: i32| {
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("grow"))
            .with_count(count)])
    };
    assert_eq!(client.send(3, &grow(3)).await.results[0].error_code, 0);
    assert_eq!(
        client.send(3, &grow(2)).await.results[0].error_code,
        37,
        "INVALID_PARTITIONS"
    );
    assert_eq!(
        metadata(&mut client, Some(&["grow"]), false).await.topics[0]
            .partitions
            .len(),
        3
    );

    // acks=all: DeleteRecords may go up to the high watermark, which under the
    // default `always` policy is the flushed offset.
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("grow"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(2)
                .with_records(Some(batch(&[
                    (None, Some(b"a"), 1),
                    (None, Some(b"b"), 2),
                    (None, Some(b"c"), 3),
                ])))])]);
    assert_eq!(
        client.send(9, &produce).await.responses[0].partition_responses[0].error_code,
        0
    );
    let delete_records = |offset: i64| {
        DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name("grow"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(2)
                .with_offset(offset)])])
    };
    let response = client.send(2, &delete_records(2)).await;
    let result = &response.topics[0].partitions[0];
    assert_eq!((result.error_code, result.low_watermark), (0, 2));
    let response = client.send(2, &delete_records(9)).await;
    assert_eq!(
        response.topics[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE"
    );

    let delete = DeleteTopicsRequest::default().with_topic_names(vec![name("grow"), name("never")]);
    let response = client.send(5, &delete).await;
    let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 3]);
    assert!(metadata(&mut client, None, false).await.topics.is_empty());
    broker.shutdown().await.expect("shutdown");

    // Deleted for good, and the name is free again.
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert!(metadata(&mut client, None, false).await.topics.is_empty());
    assert_eq!(
        create(&mut client, creatable("grow", 1, &[]), false)
            .await
            .0,
        0
    );
    broker.shutdown().await.expect("shutdown");
}
