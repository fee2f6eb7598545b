//! Produce, fetch and list offsets through an in-process broker, with the requests
//! and responses encoded by the `kafka-protocol` crate.
//!
//! The broker runs with the default `always` flush policy, under which readers see
//! only flushed records: tests that read what they just produced produce with
//! acks=all (visible once answered); acks=1 records appear after a background flush.

#![allow(missing_docs)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::{batch, records_of, values, Client};

const PRODUCE_V: i16 = 9;
const FETCH_V: i16 = 12;

/// Returns once `n` fetches wait for data in `broker` (a failure guard of 30 s).
async fn fetches_waiting(broker: &strom_broker::BrokerHandle, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while broker
        .stats()
        .fetches_waiting
        .load(std::sync::atomic::Ordering::Relaxed)
        != n
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} fetches never waited"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

async fn create_topic(client: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        )]);
    let response = client.send(7, &request).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> PartitionProduceResponse {
    let response = client
        .send(PRODUCE_V, &produce_request(topic, partition, records, acks))
        .await;
    response.responses[0].partition_responses[0].clone()
}

fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

async fn fetch(client: &mut Client, topic: &str, partition: i32, offset: i64) -> PartitionData {
    let response = client
        .send(FETCH_V, &fetch_request(topic, partition, offset, 0, 0))
        .await;
    assert_eq!(response.error_code, 0);
    response.responses[0].partitions[0].clone()
}

fn value_batch(values: &[&str]) -> Bytes {
    let records: Vec<_> = values
        .iter()
        .map(|v| (None, Some(v.as_bytes()), 1_000))
        .collect();
    batch(&records)
}

fn strings(records: &Option<Bytes>) -> Vec<String> {
    values(records.as_ref().expect("records"))
        .into_iter()
        .map(|v| String::from_utf8(v).expect("utf8"))
        .collect()
}

#[tokio::test]
async fn produced_batches_are_fetched_in_order_with_offsets_and_watermarks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "orders", 3, &[]).await;
    for partition in 0..3 {
        let first = produce(
            &mut client,
            "orders",
            partition,
            value_batch(&["a", "b"]),
            1,
        )
        .await;
        assert_eq!((first.error_code, first.base_offset), (0, 0));
        let second = produce(&mut client, "orders", partition, value_batch(&["c"]), -1).await;
        assert_eq!((second.error_code, second.base_offset), (0, 2));
        assert_eq!(second.log_append_time_ms, -1);
    }
    for partition in 0..3 {
        let data = fetch(&mut client, "orders", partition, 0).await;
        assert_eq!(data.error_code, 0);
        assert_eq!(data.high_watermark, 3);
        assert_eq!(data.last_stable_offset, 3);
        assert_eq!(data.log_start_offset, 0);
        assert_eq!(strings(&data.records), ["a", "b", "c"]);
        let offsets: Vec<i64> = records_of(data.records.as_ref().expect("records"))
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, [0, 1, 2]);
        // From the middle of the first batch: whole batches, starting with the one
        // that holds the offset (clients skip the records before it).
        let middle = fetch(&mut client, "orders", partition, 2).await;
        assert_eq!(strings(&middle.records), ["c"]);
        let end = fetch(&mut client, "orders", partition, 3).await;
        assert_eq!(end.error_code, 0);
        assert_eq!(end.records.as_ref().map(Bytes::len), Some(0));
    }
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn acks_zero_is_not_answered_and_still_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "quiet", 1, &[]).await;
    client
        .send_only(
            PRODUCE_V,
            &produce_request("quiet", 0, value_batch(&["x"]), 0),
        )
        .await;
    // The next response on the connection is the fetch's (support checks the
    // correlation id), so the produce got none.
    let data = fetch(&mut client, "quiet", 0, 0).await;
    assert_eq!(strings(&data.records), ["x"]);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_waiting_fetch_is_woken_by_an_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut consumer = Client::connect(broker.kafka_addr()).await;
    let mut producer = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut producer, "live", 1, &[]).await;
    // Waits up to 60 s for one byte; only an append can end it with data.
    let id = consumer
        .send_only(FETCH_V, &fetch_request("live", 0, 0, 60_000, 1))
        .await;
    // The append must come while the fetch waits, not before it reads.
    fetches_waiting(&broker, 1).await;
    produce(&mut producer, "live", 0, value_batch(&["ping"]), 1).await;
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        consumer.receive::<FetchRequest>(FETCH_V, id),
    )
    .await
    .expect("the append must end the wait");
    assert_eq!(
        strings(&response.responses[0].partitions[0].records),
        ["ping"]
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_fetch_without_enough_data_answers_empty_after_max_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "idle", 1, &[]).await;
    produce(&mut client, "idle", 0, value_batch(&["only"]), -1).await;
    // min_bytes far above what exists: answered when max_wait ends, with what there is.
    let response = client
        .send(FETCH_V, &fetch_request("idle", 0, 0, 100, 1 << 30))
        .await;
    assert_eq!(
        strings(&response.responses[0].partitions[0].records),
        ["only"]
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn fetch_limits_return_whole_batches_and_at_least_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "big", 2, &[]).await;
    let payload = "v".repeat(1000);
    for partition in 0..2 {
        for _ in 0..3 {
            produce(&mut client, "big", partition, value_batch(&[&payload]), -1).await;
        }
    }
    let both = |max_bytes: i32, partition_max: i32| {
        FetchRequest::default()
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("big"))
                .with_partitions(
                    (0..2)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_partition_max_bytes(partition_max)
                        })
                        .collect(),
                )])
    };
    // A tiny limit still returns the first batch of the first partition (KIP-74), and
    // nothing of the second, whose first batch does not fit.
    let tiny = client.send(FETCH_V, &both(10, 10)).await;
    let parts = &tiny.responses[0].partitions;
    assert_eq!(strings(&parts[0].records).len(), 1);
    assert_eq!(strings(&parts[1].records).len(), 0);
    assert_eq!(parts[1].high_watermark, 3);
    // Per-partition limit of two batches' worth.
    let per_partition = client.send(FETCH_V, &both(1 << 20, 2200)).await;
    for part in &per_partition.responses[0].partitions {
        assert_eq!(strings(&part.records).len(), 2);
    }
    // The response limit cuts the second partition.
    let response_limited = client.send(FETCH_V, &both(3500, 1 << 20)).await;
    let parts = &response_limited.responses[0].partitions;
    assert_eq!(strings(&parts[0].records).len(), 3);
    assert_eq!(strings(&parts[1].records).len(), 0);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn produce_errors_use_kafka_codes_per_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "small", 1, &[("max.message.bytes", "200")]).await;

    let too_large = produce(&mut client, "small", 0, value_batch(&[&"x".repeat(500)]), 1).await;
    assert_eq!(too_large.error_code, 10, "MESSAGE_TOO_LARGE");

    let mut corrupt = value_batch(&["payload"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let bad_crc = produce(&mut client, "small", 0, Bytes::from(corrupt), 1).await;
    assert_eq!(bad_crc.error_code, 2, "CORRUPT_MESSAGE");

    let unknown_topic = produce(&mut client, "nope", 0, value_batch(&["x"]), 1).await;
    assert_eq!(unknown_topic.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let unknown_partition = produce(&mut client, "small", 7, value_batch(&["x"]), 1).await;
    assert_eq!(
        unknown_partition.error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    let bad_acks = produce(&mut client, "small", 0, value_batch(&["x"]), 2).await;
    assert_eq!(bad_acks.error_code, 21, "INVALID_REQUIRED_ACKS");

    // Several partitions in one request fail or succeed independently.
    let mixed = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("small"))
            .with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(value_batch(&["ok"]))),
                PartitionProduceData::default()
                    .with_index(3)
                    .with_records(Some(value_batch(&["no"]))),
            ])]);
    let response = client.send(PRODUCE_V, &mixed).await;
    let codes: Vec<i16> = response.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [0, 3]);

    // Nothing but the good batch was written (acks=all: visible once answered, as
    // readers see only flushed records under the default `always` policy).
    let data = fetch(&mut client, "small", 0, 0).await;
    assert_eq!(strings(&data.records), ["ok"]);
    assert_eq!(data.high_watermark, 1);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(
        &mut client,
        "stamped",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let produced = produce(&mut client, "stamped", 0, value_batch(&["a", "b"]), -1).await;
    assert!(
        produced.log_append_time_ms > 1_000,
        "{}",
        produced.log_append_time_ms
    );
    let data = fetch(&mut client, "stamped", 0, 0).await;
    let records = data.records.expect("records");
    for record in records_of(&records) {
        assert_eq!(
            record.timestamp_type,
            kafka_protocol::records::TimestampType::LogAppend
        );
    }
    // Readers take every record's time from the batch's max timestamp (bytes 35..43).
    let max_timestamp = i64::from_be_bytes(records[35..43].try_into().expect("8 bytes"));
    assert_eq!(max_timestamp, produced.log_append_time_ms);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn fetch_reports_out_of_range_offsets_and_unknown_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "ranged", 1, &[]).await;
    produce(&mut client, "ranged", 0, value_batch(&["a"]), -1).await;
    let beyond = fetch(&mut client, "ranged", 0, 5).await;
    assert_eq!(beyond.error_code, 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!(beyond.high_watermark, 1);
    let negative = fetch(&mut client, "ranged", 0, -3).await;
    assert_eq!(negative.error_code, 1, "OFFSET_OUT_OF_RANGE");
    let unknown = fetch(&mut client, "missing", 0, 0).await;
    assert_eq!(unknown.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    // KIP-227: strom creates no sessions; a full fetch asking for one gets id 0,
    // and a session strom never created is not found.
    let new_session = fetch_request("ranged", 0, 0, 0, 0)
        .with_session_id(0)
        .with_session_epoch(0);
    let response = client.send(FETCH_V, &new_session).await;
    assert_eq!((response.error_code, response.session_id), (0, 0));
    assert_eq!(strings(&response.responses[0].partitions[0].records), ["a"]);
    let stale = fetch_request("ranged", 0, 0, 0, 0)
        .with_session_id(42)
        .with_session_epoch(3);
    let response = client.send(FETCH_V, &stale).await;
    assert_eq!(response.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    let bad_epoch = fetch_request("ranged", 0, 0, 0, 0)
        .with_session_id(0)
        .with_session_epoch(2);
    let response = client.send(FETCH_V, &bad_epoch).await;
    assert_eq!(response.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn list_offsets_finds_earliest_latest_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "timed", 1, &[]).await;
    produce(
        &mut client,
        "timed",
        0,
        batch(&[(None, Some(b"a"), 1_000), (None, Some(b"b"), 5_000)]),
        -1,
    )
    .await;
    produce(
        &mut client,
        "timed",
        0,
        batch(&[(None, Some(b"c"), 3_000)]),
        -1,
    )
    .await;
    let query = |timestamp: i64| {
        ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("timed"))
            .with_partitions(vec![
                ListOffsetsPartition::default().with_timestamp(timestamp)
            ])])
    };
    let mut ask = async |timestamp: i64| {
        let response = client.send(8, &query(timestamp)).await;
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        (p.offset, p.timestamp)
    };
    assert_eq!(ask(-2).await.0, 0, "earliest");
    assert_eq!(ask(-1).await.0, 3, "latest");
    assert_eq!(
        ask(2_000).await,
        (1, 5_000),
        "first record at or after 2000"
    );
    assert_eq!(ask(5_001).await, (-1, -1), "nothing that new");
    assert_eq!(ask(-3).await, (1, 5_000), "max timestamp");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn topics_and_data_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "kept", 2, &[("retention.ms", "-1")]).await;
    produce(&mut client, "kept", 1, value_batch(&["one", "two"]), -1).await;
    broker.shutdown().await.expect("shutdown");
    assert!(
        dir.path().join(".clean-shutdown").exists(),
        "graceful shutdown marks the data clean"
    );

    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let data = fetch(&mut client, "kept", 1, 0).await;
    assert_eq!(strings(&data.records), ["one", "two"]);
    assert_eq!(data.high_watermark, 2);
    let again = produce(&mut client, "kept", 1, value_batch(&["three"]), 1).await;
    assert_eq!(again.base_offset, 2);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn shutdown_answers_waiting_fetches_instead_of_dropping_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "waiting", 1, &[]).await;
    let id = client
        .send_only(FETCH_V, &fetch_request("waiting", 0, 0, 60_000, 1))
        .await;
    fetches_waiting(&broker, 1).await;
    let stopping = tokio::spawn(broker.shutdown());
    // Without the early answer the fetch would outlive the drain timeout and its
    // connection would be closed with no response.
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        client.receive::<FetchRequest>(FETCH_V, id),
    )
    .await
    .expect("answered during shutdown");
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    stopping.await.expect("join").expect("shutdown");
}

async fn init_producer_id(client: &mut Client) -> (i64, i16) {
    use kafka_protocol::messages::InitProducerIdRequest;
    let response = client
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .await;
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

#[tokio::test]
async fn idempotent_producers_are_written_once_and_in_sequence_even_across_a_restart() {
    use support::producer_batch;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "once", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut client).await;
    let (other, _) = init_producer_id(&mut client).await;
    assert_ne!(pid, other, "every producer gets its own id");

    let records = |values: &[&'static str]| -> Vec<support::RecordSpec<'static>> {
        values
            .iter()
            .map(|v| (None, Some(v.as_bytes()), 1_000))
            .collect()
    };
    let first = producer_batch(&records(&["a", "b"]), pid, epoch, 0);
    let sent = produce(&mut client, "once", 0, first.clone(), -1).await;
    assert_eq!((sent.error_code, sent.base_offset), (0, 0));
    // The retry of a batch that was written is acknowledged with its first offsets.
    let retry = produce(&mut client, "once", 0, first.clone(), -1).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    // A gap in the sequence is refused.
    let gap = produce(
        &mut client,
        "once",
        0,
        producer_batch(&records(&["x"]), pid, epoch, 5),
        -1,
    )
    .await;
    assert_eq!(gap.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let next = produce(
        &mut client,
        "once",
        0,
        producer_batch(&records(&["c"]), pid, epoch, 2),
        -1,
    )
    .await;
    assert_eq!((next.error_code, next.base_offset), (0, 2));
    // An older epoch of the same producer is fenced.
    let bumped = produce(
        &mut client,
        "once",
        0,
        producer_batch(&records(&["d"]), pid, epoch + 1, 0),
        -1,
    )
    .await;
    assert_eq!(bumped.error_code, 0);
    let stale = produce(
        &mut client,
        "once",
        0,
        producer_batch(&records(&["e"]), pid, epoch, 3),
        -1,
    )
    .await;
    assert_eq!(stale.error_code, 47, "INVALID_PRODUCER_EPOCH");
    broker.shutdown().await.expect("shutdown");

    // After a restart the producer state is rebuilt from the log: still a duplicate.
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let retry = produce(
        &mut client,
        "once",
        0,
        producer_batch(&records(&["d"]), pid, epoch + 1, 0),
        -1,
    )
    .await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 3));
    let data = fetch(&mut client, "once", 0, 0).await;
    assert_eq!(strings(&data.records), ["a", "b", "c", "d"]);
    let (after_restart, _) = init_producer_id(&mut client).await;
    assert!(after_restart > other, "ids are not reused after a restart");
    broker.shutdown().await.expect("shutdown");
}
