//! The broker's resource limits, each reached by a test client: the client gets its
//! Kafka error (or a closed connection), and other clients keep being served.
//! Waits are on observable state (a counter, a response), never on time.

#![allow(missing_docs)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, FetchRequest, FetchResponse, GroupId,
    JoinGroupRequest, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_broker::{BrokerConfig, BrokerHandle};
use support::Client;

/// Failure guard of the waits below; reaching it fails the test.
const GUARD: Duration = Duration::from_secs(20);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn start(dir: &std::path::Path, configure: impl FnOnce(&mut BrokerConfig)) -> BrokerHandle {
    let mut config = BrokerConfig {
        http_addr: None,
        ..BrokerConfig::ephemeral(dir)
    };
    configure(&mut config);
    support::start_with(config).await
}

/// A connection from `source` (a loopback address) that the broker has served once.
async fn served_from(source: [u8; 4], broker: SocketAddr) -> Option<Client> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    let stream = socket.connect(broker).await.expect("connect");
    let mut client = Client::over(stream);
    client
        .try_send(3, &ApiVersionsRequest::default())
        .await
        .map(|_| client)
}

/// Creates a one-partition topic.
async fn create_topic(client: &mut Client, topic: &str) {
    let request =
        CreateTopicsRequest::default().with_topics(vec![support::creatable_topic(topic, 1, &[])]);
    assert_eq!(client.send(7, &request).await.topics[0].error_code, 0);
}

/// Waits (bounded by [`GUARD`]) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(GUARD, async {
        while !done() {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen within {GUARD:?}"));
}

#[tokio::test]
async fn max_connections_closes_the_next_connection_and_serves_the_open_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| c.connections_max = 2).await;
    let addr = broker.kafka_addr();
    let mut first = served_from([127, 0, 0, 1], addr)
        .await
        .expect("first served");
    let second = served_from([127, 0, 0, 1], addr)
        .await
        .expect("second served");
    assert!(
        served_from([127, 0, 0, 1], addr).await.is_none(),
        "a third connection is closed"
    );
    assert_eq!(
        broker.stats().connections_refused.load(Ordering::Relaxed),
        1
    );
    assert!(
        first
            .try_send(3, &ApiVersionsRequest::default())
            .await
            .is_some(),
        "open connections are still served"
    );
    // Once one closes, its place is free again.
    drop(second);
    until("the closed connection's place is freed", || {
        broker.stats().connections_open.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(served_from([127, 0, 0, 1], addr).await.is_some());
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn max_connections_per_ip_refuses_one_address_and_serves_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| c.connections_per_ip_max = 2).await;
    let addr = broker.kafka_addr();
    let _a = served_from([127, 0, 0, 1], addr).await.expect("served");
    let _b = served_from([127, 0, 0, 1], addr).await.expect("served");
    assert!(served_from([127, 0, 0, 1], addr).await.is_none());
    assert!(
        served_from([127, 0, 0, 2], addr).await.is_some(),
        "another address is not limited by the first one's connections"
    );
    assert_eq!(
        broker.stats().connections_refused.load(Ordering::Relaxed),
        1
    );
    broker.shutdown().await.expect("shutdown");
}

fn topic_name(text: &str) -> TopicName {
    TopicName(s(text))
}

#[tokio::test]
async fn a_request_beyond_queued_max_request_bytes_waits_until_earlier_ones_are_answered() {
    const FRAME_MAX: usize = 32 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| {
        c.request_bytes_max = FRAME_MAX;
        c.queued_request_bytes_max = FRAME_MAX;
    })
    .await;
    let addr = broker.kafka_addr();
    let mut admin = Client::connect(addr).await;
    create_topic(&mut admin, "budget").await;

    // A: a long-poll fetch on the empty partition, ~30 KB (a long rack id), held
    // until data arrives.
    let mut a = Client::connect(addr).await;
    let fetch = FetchRequest::default()
        .with_max_wait_ms(GUARD.as_millis() as i32)
        .with_min_bytes(1)
        .with_rack_id(s(&"r".repeat(30_000)))
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name("budget"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let fetch_id = a.send_only(12, &fetch).await;
    // B: the partition's latest offset, padded to ~10 KB with unknown topics: it
    // does not fit beside A.
    let mut b = Client::connect(addr).await;
    let mut topics = vec![ListOffsetsTopic::default()
        .with_name(topic_name("budget"))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1)])];
    topics.extend((0..40).map(|i| {
        ListOffsetsTopic::default()
            .with_name(topic_name(&format!("{i:0>240}")))
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)])
    }));
    let list_id = b
        .send_only(
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_topics(topics),
        )
        .await;
    let stats = broker.stats();
    until("B waits for the request budget", || {
        stats.requests_waited_for_budget.load(Ordering::Relaxed) == 1
    })
    .await;
    // Nothing read over the network gets past B now (the budget is first come,
    // first served): wake A from inside the process, which frees the budget for B.
    let wake = broker.internal_topic("budget", &[]).expect("topic handle");
    tokio::task::spawn_blocking(move || wake.append(&[(None, Some(b"wake".to_vec()))]))
        .await
        .expect("append task")
        .expect("append");
    let fetched: FetchResponse = a.receive::<FetchRequest>(12, fetch_id).await;
    let data = fetched.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    assert_eq!(support::values(&data), [b"wake".to_vec()]);
    // B was read only after A was answered, so it sees the record that woke A.
    let listed: ListOffsetsResponse = b.receive::<ListOffsetsRequest>(7, list_id).await;
    assert_eq!(listed.topics[0].partitions[0].offset, 1);
    assert_eq!(stats.requests_waited_for_budget.load(Ordering::Relaxed), 1);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn group_max_size_refuses_a_new_member_with_group_max_size_reached_in_both_protocols() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| {
        c.group_size_max = 1;
        c.group_initial_rebalance_delay = Duration::ZERO;
    })
    .await;
    let addr = broker.kafka_addr();
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s("full")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription"))])
    };
    let mut first = Client::connect(addr).await;
    let joined = first.send(3, &join("")).await;
    assert_eq!(joined.error_code, 0);
    let mut second = Client::connect(addr).await;
    let refused = second.send(3, &join("")).await;
    assert_eq!(
        refused.error_code,
        ResponseError::GroupMaxSizeReached.code()
    );
    // The member inside is still served.
    let again = first.send(3, &join(joined.member_id.as_str())).await;
    assert_eq!(again.error_code, 0);
    // The same bound holds for KIP-848 groups.
    use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
    create_topic(&mut first, "subscribed").await;
    let heartbeat = |member: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("full-848")))
            .with_member_id(s(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic_name("subscribed")]))
            .with_topic_partitions(Some(Vec::new()))
    };
    let member = uuid_like(1);
    let joined = first.send(0, &heartbeat(&member)).await;
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let refused = second.send(0, &heartbeat(&uuid_like(2))).await;
    assert_eq!(
        refused.error_code,
        ResponseError::GroupMaxSizeReached.code()
    );
    let rejoined = first
        .send(
            0,
            &heartbeat(joined.member_id.as_deref().unwrap_or(&member)),
        )
        .await;
    assert_eq!(rejoined.error_code, 0, "a member already in the group");
    broker.shutdown().await.expect("shutdown");
}

/// A member id of the form clients generate (KIP-1082: 22 characters or more).
fn uuid_like(n: u8) -> String {
    format!("member-{n:0>20}")
}

/// Produce of one record by producer `pid` (epoch 0) at `sequence` to partition 0 of
/// `topic`; returns the partition's error code.
async fn produce_as(client: &mut Client, topic: &str, pid: i64, sequence: i32) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::ProduceRequest;
    let records =
        support::producer_batch(&[(None, Some(b"v".as_slice()), 1_000)], pid, 0, sequence);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    client.send(9, &request).await.responses[0].partition_responses[0].error_code
}

/// A new idempotent producer id.
async fn producer_id(client: &mut Client) -> i64 {
    use kafka_protocol::messages::InitProducerIdRequest;
    let request = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
    client.send(4, &request).await.producer_id.0
}

#[tokio::test]
async fn an_idle_producer_id_expires_and_its_next_batch_must_start_a_new_sequence() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::DescribeProducersRequest;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| {
        c.producer_id_expiration = Duration::from_millis(1)
    })
    .await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "expiring").await;
    let pid = producer_id(&mut client).await;
    assert_eq!(produce_as(&mut client, "expiring", pid, 0).await, 0);
    let describe = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name("expiring"))
        .with_partition_indexes(vec![0])]);
    let mut observer = Client::connect(broker.kafka_addr()).await;
    tokio::time::timeout(GUARD, async {
        loop {
            let producers = observer.send(0, &describe).await;
            if producers.topics[0].partitions[0]
                .active_producers
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the idle producer id expires");
    assert_eq!(
        produce_as(&mut client, "expiring", pid, 1).await,
        ResponseError::OutOfOrderSequenceNumber.code(),
        "the broker no longer knows sequence 0"
    );
    assert_eq!(
        produce_as(&mut client, "expiring", pid, 0).await,
        0,
        "a new sequence is accepted"
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_partition_at_its_producer_id_bound_forgets_the_least_recent_producer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| c.producer_ids_per_partition_max = 1).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "crowded").await;
    let (first, second) = (
        producer_id(&mut client).await,
        producer_id(&mut client).await,
    );
    assert_eq!(produce_as(&mut client, "crowded", first, 0).await, 0);
    assert_eq!(
        produce_as(&mut client, "crowded", second, 0).await,
        0,
        "room is made"
    );
    assert_eq!(
        produce_as(&mut client, "crowded", first, 1).await,
        ResponseError::OutOfOrderSequenceNumber.code(),
        "the first producer was forgotten"
    );
    assert_eq!(
        produce_as(&mut client, "crowded", second, 1).await,
        0,
        "the second goes on"
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn at_the_transactional_id_bound_an_idle_id_makes_room_and_busy_ones_do_not() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, InitProducerIdRequest, ProducerId, TransactionalId,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path(), |c| c.transactional_ids_max = 1).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topic(&mut client, "txn-bound").await;
    let init = |id: &str| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(60_000)
    };
    let first = client.send(4, &init("first")).await;
    assert_eq!(first.error_code, 0);
    let second = client.send(4, &init("second")).await;
    assert_eq!(second.error_code, 0, "the idle first id made room");
    // The second id opens a transaction: now nothing can make room.
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("second")))
        .with_v3_and_below_producer_id(second.producer_id)
        .with_v3_and_below_producer_epoch(second.producer_epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name("txn-bound"))
            .with_partitions(vec![0])]);
    let added = client.send(3, &add).await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let third = client.send(4, &init("third")).await;
    assert_eq!(
        third.error_code,
        ResponseError::ConcurrentTransactions.code()
    );
    // The busy id is still served.
    let again = client.send(4, &init("second")).await;
    assert_eq!(again.error_code, 0);
    assert_eq!(again.producer_id, ProducerId(second.producer_id.0));
    broker.shutdown().await.expect("shutdown");
}
