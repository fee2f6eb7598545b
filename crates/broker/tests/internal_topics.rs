//! Topics the embedding process writes through the broker's storage (`_schemas`):
//! their topic configs apply to the owner's appends as to Produce.

#![allow(missing_docs)]

mod support;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_log::{BatchHeader, Compression};
use support::Client;

#[tokio::test]
async fn an_internal_topic_stores_the_owners_batches_in_its_compression_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let topic = broker
        .internal_topic("_owned", &[("compression.type", "zstd")])
        .expect("handle");
    let records = vec![
        (Some(b"k".to_vec()), Some(b"first value".to_vec())),
        (None, Some(b"second value".to_vec())),
    ];
    let written = records.clone();
    let reader = topic.clone();
    let read = tokio::task::spawn_blocking(move || {
        topic.append(&written).expect("append");
        reader.read_all().expect("read")
    })
    .await
    .expect("task");
    assert_eq!(read, records);
    // A client fetching the topic gets a zstd batch.
    let mut client = Client::connect(broker.kafka_addr()).await;
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("_owned")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.send(12, &fetch).await;
    let bytes = response.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let header = BatchHeader::parse(&bytes).expect("a valid batch");
    assert_eq!(header.compression(), Compression::Zstd);
    assert_eq!(header.record_count, 2);
    broker.shutdown().await.expect("shutdown");
}
