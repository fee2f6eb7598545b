//! Transactions through an in-process broker, at the protocol level: what
//! read_committed and read_uncommitted consumers see, timeouts, fencing, refused
//! writes, and state that survives a restart. Real clients drive the same paths in
//! tests/compat.

#![allow(missing_docs)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, CreateTopicsRequest, EndTxnRequest, FetchRequest,
    InitProducerIdRequest, ProduceRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use support::{batch, txn_batch, values, Client};

const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn name(topic: &str) -> TopicName {
    TopicName(s(topic))
}

async fn create_topic(client: &mut Client, topic: &str) {
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let response = client.send(5, &request).await;
    assert_eq!(response.topics[0].error_code, 0);
}

/// A transactional producer, as a client drives it (classic protocol versions).
struct TxnProducer {
    id: String,
    pid: i64,
    epoch: i16,
    sequence: i32,
}

impl TxnProducer {
    async fn init(client: &mut Client, id: &str, timeout_ms: i32) -> Self {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(timeout_ms);
        let response = client.send(4, &request).await;
        assert_eq!(response.error_code, 0);
        TxnProducer {
            id: id.to_string(),
            pid: response.producer_id.0,
            epoch: response.producer_epoch,
            sequence: 0,
        }
    }

    async fn add_partition(&self, client: &mut Client, topic: &str) -> i16 {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(&self.id)))
            .with_v3_and_below_producer_id(ProducerId(self.pid))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![0])]);
        let response = client.send(3, &request).await;
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    }

    /// Writes `values` as one transactional batch; returns the partition's error.
    async fn produce(&mut self, client: &mut Client, topic: &str, values: &[&str]) -> i16 {
        let records: Vec<_> = values
            .iter()
            .map(|v| (None, Some(v.as_bytes()), 1))
            .collect();
        let records = txn_batch(&records, self.pid, self.epoch, self.sequence);
        let error = produce(client, topic, Some(&self.id), records).await;
        if error == 0 {
            self.sequence += values.len() as i32;
        }
        error
    }

    async fn end(&self, client: &mut Client, commit: bool) -> i16 {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&self.id)))
            .with_producer_id(ProducerId(self.pid))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        client.send(3, &request).await.error_code
    }
}

async fn produce(client: &mut Client, topic: &str, txn_id: Option<&str>, records: Bytes) -> i16 {
    let request = ProduceRequest::default()
        .with_transactional_id(txn_id.map(|id| TransactionalId(s(id))))
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    client.send(9, &request).await.responses[0].partition_responses[0].error_code
}

async fn fetch(client: &mut Client, topic: &str, isolation: i8) -> PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut response = client.send(12, &request).await;
    response.responses.remove(0).partitions.remove(0)
}

/// Values of the data records (control batches' markers left out), as a consumer
/// sees them before it filters aborted transactions.
fn data_values(partition: &PartitionData) -> Vec<String> {
    let records = partition.records.clone().unwrap_or_default();
    support::records_of(&records)
        .into_iter()
        .filter(|r| !r.control)
        .map(|r| String::from_utf8(r.value.map(|v| v.to_vec()).unwrap_or_default()).expect("utf8"))
        .collect()
}

#[tokio::test]
async fn read_committed_stops_at_open_transactions_and_learns_of_aborted_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let topic = "isolation";
    create_topic(&mut client, topic).await;
    assert_eq!(
        produce(
            &mut client,
            topic,
            None,
            batch(&[(None, Some(b"plain-0"), 1)])
        )
        .await,
        0
    );
    let mut aborted = TxnProducer::init(&mut client, "aborting", 60_000).await;
    let mut committed = TxnProducer::init(&mut client, "committing", 60_000).await;
    assert_eq!(aborted.add_partition(&mut client, topic).await, 0);
    assert_eq!(committed.add_partition(&mut client, topic).await, 0);
    assert_eq!(
        aborted.produce(&mut client, topic, &["a-1", "a-2"]).await,
        0
    );
    assert_eq!(committed.produce(&mut client, topic, &["c-1"]).await, 0);
    assert_eq!(
        produce(
            &mut client,
            topic,
            None,
            batch(&[(None, Some(b"plain-1"), 1)])
        )
        .await,
        0
    );

    // Both open: read_committed stops at the first open transaction's first record.
    let open = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(open.last_stable_offset, 1);
    assert_eq!(open.high_watermark, 5);
    assert_eq!(data_values(&open), ["plain-0"]);
    let everything = fetch(&mut client, topic, READ_UNCOMMITTED).await;
    assert_eq!(data_values(&everything).len(), 5);
    assert_eq!(everything.aborted_transactions, None);

    assert_eq!(aborted.end(&mut client, false).await, 0);
    let still_open = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(
        still_open.last_stable_offset, 3,
        "the committing one is still open"
    );
    assert_eq!(committed.end(&mut client, true).await, 0);

    let decided = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(decided.last_stable_offset, decided.high_watermark);
    assert_eq!(decided.high_watermark, 7, "five records and two markers");
    let list = decided
        .aborted_transactions
        .clone()
        .expect("a list for read_committed");
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].producer_id.0, list[0].first_offset),
        (aborted.pid, 1)
    );
    assert_eq!(
        data_values(&decided),
        ["plain-0", "a-1", "a-2", "c-1", "plain-1"],
        "the consumer drops a-1 and a-2 using the aborted list"
    );

    // The same after a restart: the open/aborted state is rebuilt from the log.
    broker.shutdown().await.expect("shutdown");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let again = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(again.last_stable_offset, 7);
    assert_eq!(again.aborted_transactions, decided.aborted_transactions);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_open_transaction_stays_open_across_a_restart_and_can_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let topic = "restart-open";
    create_topic(&mut client, topic).await;
    let mut producer = TxnProducer::init(&mut client, "restart-open", 60_000).await;
    assert_eq!(producer.add_partition(&mut client, topic).await, 0);
    assert_eq!(producer.produce(&mut client, topic, &["x"]).await, 0);
    broker.shutdown().await.expect("shutdown");

    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(
        fetch(&mut client, topic, READ_COMMITTED)
            .await
            .last_stable_offset,
        0
    );
    assert_eq!(producer.produce(&mut client, topic, &["y"]).await, 0);
    assert_eq!(producer.end(&mut client, true).await, 0);
    let done = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(done.last_stable_offset, 3);
    assert_eq!(data_values(&done), ["x", "y"]);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_expired_transaction_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let topic = "expiring";
    create_topic(&mut client, topic).await;
    let mut producer = TxnProducer::init(&mut client, "expiring", 300).await;
    assert_eq!(producer.add_partition(&mut client, topic).await, 0);
    assert_eq!(producer.produce(&mut client, topic, &["late"]).await, 0);
    // The coordinator's ticker aborts it; wait for the marker (no fixed sleep).
    let mut decided = fetch(&mut client, topic, READ_COMMITTED).await;
    for _ in 0..200 {
        if decided.last_stable_offset == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        decided = fetch(&mut client, topic, READ_COMMITTED).await;
    }
    assert_eq!(decided.last_stable_offset, 2, "aborted by the timeout");
    assert_eq!(decided.aborted_transactions.map(|a| a.len()), Some(1));
    assert_eq!(
        producer.end(&mut client, true).await,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        producer.produce(&mut client, topic, &["later"]).await,
        ResponseError::InvalidProducerEpoch.code()
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_new_producer_aborts_the_open_transaction_and_fences_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let topic = "fencing";
    create_topic(&mut client, topic).await;
    let mut old = TxnProducer::init(&mut client, "fencing", 60_000).await;
    assert_eq!(old.add_partition(&mut client, topic).await, 0);
    assert_eq!(old.produce(&mut client, topic, &["zombie"]).await, 0);
    let mut new = TxnProducer::init(&mut client, "fencing", 60_000).await;
    assert_eq!(new.pid, old.pid);
    assert!(new.epoch > old.epoch);
    // The old producer's transaction was aborted, and it can do nothing more.
    let after = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(after.last_stable_offset, after.high_watermark);
    assert_eq!(after.aborted_transactions.map(|a| a.len()), Some(1));
    assert_eq!(
        old.produce(&mut client, topic, &["zombie-2"]).await,
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(
        old.end(&mut client, true).await,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        old.add_partition(&mut client, topic).await,
        ResponseError::ProducerFenced.code()
    );
    // The new one works.
    assert_eq!(new.add_partition(&mut client, topic).await, 0);
    assert_eq!(new.produce(&mut client, topic, &["fresh"]).await, 0);
    assert_eq!(new.end(&mut client, true).await, 0);
    let done = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(data_values(&done), ["zombie", "fresh"]);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn writes_outside_a_transaction_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let topic = "refused";
    create_topic(&mut client, topic).await;
    let mut producer = TxnProducer::init(&mut client, "refused", 60_000).await;
    // Transactional records to a partition not added to a transaction.
    assert_eq!(
        producer.produce(&mut client, topic, &["no"]).await,
        ResponseError::InvalidTxnState.code()
    );
    // Transactional records without the request's transactional id.
    let records = txn_batch(&[(None, Some(b"no"), 1)], producer.pid, producer.epoch, 0);
    assert_eq!(
        produce(&mut client, topic, None, records).await,
        ResponseError::InvalidTxnState.code()
    );
    // Ending a transaction that is not open.
    assert_eq!(
        producer.end(&mut client, true).await,
        ResponseError::InvalidTxnState.code()
    );
    // A control batch (a forged commit marker) from a client.
    let mut forged = bytes::BytesMut::from(&batch(&[(None, Some(b"m"), 1)])[..]);
    forged[21..23].copy_from_slice(&0x30i16.to_be_bytes());
    let crc = crc32c(&forged[21..]);
    forged[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        produce(&mut client, topic, None, forged.freeze()).await,
        ResponseError::InvalidRecord.code()
    );
    let partition = fetch(&mut client, topic, READ_UNCOMMITTED).await;
    assert_eq!(partition.high_watermark, 0, "nothing was written");
    assert!(values(&partition.records.unwrap_or_default()).is_empty());
    broker.shutdown().await.expect("shutdown");
}

/// CRC-32C (Castagnoli), bitwise: enough for one forged test batch.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn transactions_v2_add_partitions_implicitly_and_bump_the_epoch_at_every_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let topic = "v2";
    create_topic(&mut client, topic).await;
    let mut producer = TxnProducer::init(&mut client, "v2", 60_000).await;
    let first_epoch = producer.epoch;
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        // Produce v12+: no AddPartitionsToTxn, the partition joins the transaction.
        let value = format!("round-{round}");
        let records = txn_batch(
            &[(None, Some(value.as_bytes()), 1)],
            producer.pid,
            producer.epoch,
            0,
        );
        let request = ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s("v2"))))
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]);
        let produced = client.send(12, &request).await;
        assert_eq!(
            produced.responses[0].partition_responses[0].error_code, 0,
            "round {round}"
        );
        let end = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s("v2")))
            .with_producer_id(ProducerId(producer.pid))
            .with_producer_epoch(producer.epoch)
            .with_committed(commit);
        let ended = client.send(5, &end).await;
        assert_eq!(ended.error_code, 0);
        assert_eq!(
            ended.producer_epoch,
            producer.epoch + 1,
            "bumped at the end"
        );
        // A late write of the finished transaction cannot join the next one.
        let late = txn_batch(&[(None, Some(b"late"), 1)], producer.pid, producer.epoch, 1);
        let late_request = ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s("v2"))))
            .with_acks(-1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(late))])]);
        let refused = client.send(12, &late_request).await;
        assert_eq!(
            refused.responses[0].partition_responses[0].error_code,
            ResponseError::InvalidProducerEpoch.code()
        );
        producer.epoch = ended.producer_epoch;
    }
    assert_eq!(producer.epoch, first_epoch + 3);
    let decided = fetch(&mut client, topic, READ_COMMITTED).await;
    assert_eq!(decided.last_stable_offset, decided.high_watermark);
    assert_eq!(
        decided.aborted_transactions.as_ref().map(|a| a.len()),
        Some(1)
    );
    assert_eq!(data_values(&decided), ["round-0", "round-1", "round-2"]);
    broker.shutdown().await.expect("shutdown");
}
