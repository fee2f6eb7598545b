//! Compacted topics through the broker: the cleaner thread compacts them, key-less
//! records are refused, fetches cross the gaps, and the cleaner's state is served
//! at `/v1/topics/{topic}/cleaner` and in `/metrics`. (Its own test binary: the flush
//! histogram of `/metrics` is process-wide, see `http.rs`.)

#![allow(missing_docs)]

mod support;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_broker::BrokerConfig;
use support::{batch, http_get as get, Client};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

#[tokio::test]
async fn the_cleaner_compacts_a_topic_and_reports_it() {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::FetchRequest;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::ephemeral(dir.path());
    config.cleaner.backoff = std::time::Duration::from_millis(20);
    let broker = support::start_with(config).await;
    let http = broker.http_addr().expect("http enabled");
    let mut client = Client::connect(broker.kafka_addr()).await;
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "1024"),
        ("min.cleanable.dirty.ratio", "0"),
    ];
    let created = client
        .send(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(s("kv")))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                )]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let produce = |key: &'static [u8], value: Vec<u8>| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s("kv")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&[(Some(key), Some(&value), 1)])))])])
    };
    // 40 updates of one key, 300 bytes each: several 1 KiB segments.
    for i in 0..40u8 {
        let response = client.send(9, &produce(b"k", vec![i; 300])).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    // A record without a key is refused on a compacted topic.
    let keyless = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s("kv")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[(None, Some(b"v"), 1)])))])]);
    let response = client.send(9, &keyless).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 87,
        "INVALID_RECORD"
    );

    // Failure guard only: the cleaner wakes every 20 ms and the checkpoint each second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let (code, body) = get(http, "/v1/topics/kv/cleaner").await;
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).expect("json");
        // The run is counted just after the partition records its cleaning.
        let counted = get(http, "/metrics")
            .await
            .1
            .lines()
            .any(|l| l.starts_with("strom_log_cleaner_runs_total ") && !l.ends_with(" 0"));
        if !status[0]["last_cleaned_ms"].is_null() && counted {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never cleaned: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status[0]["partition"], 0);
    assert!(status[0]["failed"].is_null());
    assert_eq!(get(http, "/v1/topics/nope/cleaner").await.0, 404);

    // A fetch from offset 0 (now a gap) returns the latest value first.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s("kv")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.send(12, &fetch).await;
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let values = support::values(&records);
    assert!(
        !values.is_empty() && values.len() < 40,
        "compacted: {}",
        values.len()
    );
    let metrics = get(http, "/metrics").await.1;
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with(r#"strom_partition_cleaner_dirty_ratio{topic="kv",partition="0"}"#))
    );
    broker.shutdown().await.expect("shutdown");
}
