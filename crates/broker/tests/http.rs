//! The HTTP endpoint: health, readiness and Prometheus metrics.

#![allow(missing_docs)]

mod support;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, GroupId, OffsetCommitRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_broker::BrokerConfig;
use support::{batch, http_get as get, Client};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start_with(BrokerConfig::ephemeral(dir.path())).await;
    let http = broker.http_addr().expect("http enabled");
    assert_eq!(get(http, "/healthz").await.0, 200);
    assert_eq!(get(http, "/readyz").await.0, 200);

    let mut client = Client::connect(broker.kafka_addr()).await;
    let created = client
        .send(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s("measured")))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let produce =
        ProduceRequest::default()
            .with_acks(1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s("measured")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&[
                        (None, Some(b"a"), 1),
                        (None, Some(b"b"), 2),
                        (None, Some(b"c"), 3),
                    ])))])]);
    assert_eq!(
        client.send(9, &produce).await.responses[0].partition_responses[0].error_code,
        0
    );
    let init = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let pid = client.send(4, &init).await.producer_id.0;
    let idempotent = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s("measured")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(support::producer_batch(
                    &[(None, Some(b"d"), 4)],
                    pid,
                    0,
                    0,
                )))])]);
    assert_eq!(
        client.send(9, &idempotent).await.responses[0].partition_responses[0].error_code,
        0
    );
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("readers")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("measured")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    assert_eq!(
        client.send(8, &commit).await.topics[0].partitions[0].error_code,
        0
    );
    // An open transaction holds the last stable offset back.
    let init_txn = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(s(
            "metered",
        ))))
        .with_transaction_timeout_ms(60_000);
    let txn = client.send(4, &init_txn).await;
    let add = kafka_protocol::messages::AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(kafka_protocol::messages::TransactionalId(s(
            "metered",
        )))
        .with_v3_and_below_producer_id(txn.producer_id)
        .with_v3_and_below_producer_epoch(txn.producer_epoch)
        .with_v3_and_below_topics(vec![
            kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s("measured")))
                .with_partitions(vec![0]),
        ]);
    client.send(3, &add).await;
    let transactional = ProduceRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(s(
            "metered",
        ))))
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s("measured")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(support::txn_batch(
                    &[(None, Some(b"e"), 5)],
                    txn.producer_id.0,
                    txn.producer_epoch,
                    0,
                )))])]);
    assert_eq!(
        client.send(9, &transactional).await.responses[0].partition_responses[0].error_code,
        0
    );

    let (status, metrics) = get(http, "/metrics").await;
    assert_eq!(status, 200);
    // Creating the topic synced the metadata log at least once.
    let flushes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("strom_log_flush_duration_seconds_count "))
        .and_then(|v| v.parse().ok())
        .expect("flush histogram exported");
    assert!(flushes >= 1, "flushes counted: {flushes}");
    for line in [
        r#"strom_produced_records_total{topic="measured"} 5"#,
        r#"strom_partition_log_end_offset{topic="measured",partition="0"} 5"#,
        r#"strom_partition_last_stable_offset{topic="measured",partition="0"} 4"#,
        r#"strom_idempotent_producers{topic="measured",partition="0"} 2"#,
        r#"strom_transactions{state="Ongoing"} 1"#,
        r#"strom_partition_log_start_offset{topic="measured",partition="0"} 0"#,
        r#"strom_consumer_group_lag{group="readers",topic="measured",partition="0"} 4"#,
        r#"strom_requests_total{api="Produce",version="9"} 3"#,
        r#"strom_request_duration_seconds_count{api="CreateTopics"} 1"#,
        "strom_connections_open 1",
        "# EOF",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }
    broker.shutdown().await.expect("shutdown");
}
