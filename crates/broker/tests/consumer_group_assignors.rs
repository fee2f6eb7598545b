//! The new consumer group protocol's server-side assignors through an in-process
//! broker: members that ask for `range` in their ConsumerGroupHeartbeat converge on
//! an assignment that keeps partition n of co-partitioned topics on one member, move
//! only what a join takes, report the assignor in ConsumerGroupDescribe, and an
//! unknown assignor is refused. Transactional commits of such members are checked
//! against their member epoch (a stale epoch is ILLEGAL_GENERATION, as in Kafka).

#![allow(missing_docs)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, CreateTopicsRequest, GroupId, InitProducerIdRequest,
    MetadataRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use support::Client;
use uuid::Uuid;

const GROUP: &str = "range-group";
const PARTITIONS: i32 = 6;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Partitions of each topic, by topic id.
type Owned = BTreeMap<Uuid, BTreeSet<i32>>;

async fn create_topics(client: &mut Client, topics: &[&str]) {
    let request = CreateTopicsRequest::default().with_topics(
        topics
            .iter()
            .map(|t| {
                CreatableTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_num_partitions(PARTITIONS)
                    .with_replication_factor(1)
            })
            .collect(),
    );
    let response = client.send(7, &request).await;
    assert!(response.topics.iter().all(|t| t.error_code == 0));
}

async fn topic_ids(client: &mut Client) -> BTreeMap<String, Uuid> {
    let response = client
        .send(12, &MetadataRequest::default().with_topics(None))
        .await;
    response
        .topics
        .iter()
        .filter_map(|t| Some((t.name.as_ref()?.to_string(), t.topic_id)))
        .collect()
}

/// One member as a client drives it: it owns what it was last given.
struct Member {
    id: String,
    epoch: i32,
    owned: Owned,
}

fn heartbeat(member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
}

impl Member {
    async fn join(client: &mut Client, assignor: Option<&str>) -> Member {
        let id = Uuid::new_v4().to_string();
        let request = heartbeat(&id, 0)
            .with_subscribed_topic_names(Some(vec![TopicName(s("left")), TopicName(s("right"))]))
            .with_server_assignor(assignor.map(s))
            .with_topic_partitions(Some(Vec::new()));
        let response = client.send(1, &request).await;
        let mut member = Member {
            id,
            epoch: 0,
            owned: Owned::new(),
        };
        member.apply(&response);
        member
    }

    fn apply(&mut self, response: &ConsumerGroupHeartbeatResponse) {
        assert_eq!(response.error_code, 0, "{:?}", response.error_message);
        self.epoch = response.member_epoch;
        if let Some(assignment) = &response.assignment {
            self.owned = assignment
                .topic_partitions
                .iter()
                .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
                .collect();
        }
    }

    /// Heartbeats with what it owns; returns whether its assignment or epoch changed.
    async fn beat(&mut self, client: &mut Client) -> bool {
        let owned = self
            .owned
            .iter()
            .map(|(id, ps)| {
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect();
        let request = heartbeat(&self.id, self.epoch).with_topic_partitions(Some(owned));
        let response = client.send(1, &request).await;
        let before = (self.epoch, self.owned.clone());
        self.apply(&response);
        before != (self.epoch, self.owned.clone())
    }

    fn partitions(&self, topic: &Uuid) -> BTreeSet<i32> {
        self.owned.get(topic).cloned().unwrap_or_default()
    }
}

/// Heartbeats every member until a whole round changes nothing; after every answer,
/// each member holds the same partition numbers of both topics.
async fn converge(client: &mut Client, members: &mut [Member], left: Uuid, right: Uuid) {
    for _ in 0..20 {
        let mut changed = false;
        for m in members.iter_mut() {
            changed |= m.beat(client).await;
            assert_eq!(
                m.partitions(&left),
                m.partitions(&right),
                "{} holds partition n of one topic without the other",
                m.id
            );
        }
        if !changed {
            let all: Vec<i32> = members.iter().flat_map(|m| m.partitions(&left)).collect();
            assert_eq!(all.len(), PARTITIONS as usize, "every slot owned once");
            return;
        }
    }
    panic!("the group did not converge");
}

#[tokio::test]
async fn members_asking_for_range_get_partition_n_of_both_topics_and_move_only_what_a_join_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topics(&mut client, &["left", "right"]).await;
    let ids = topic_ids(&mut client).await;
    let (left, right) = (ids["left"], ids["right"]);

    let mut members = vec![Member::join(&mut client, Some("range")).await];
    assert_eq!(members[0].partitions(&left).len(), PARTITIONS as usize);
    converge(&mut client, &mut members, left, right).await;
    for joining in 1..3 {
        let before: Vec<Owned> = members.iter().map(|m| m.owned.clone()).collect();
        members.push(Member::join(&mut client, Some("range")).await);
        converge(&mut client, &mut members, left, right).await;
        for (m, was) in members.iter().zip(&before) {
            for t in [left, right] {
                assert!(
                    m.partitions(&t)
                        .is_subset(&was.get(&t).cloned().unwrap_or_default()),
                    "member {joining} joining gave {} partitions it did not have",
                    m.id
                );
            }
        }
    }
    for m in &members {
        assert_eq!(m.partitions(&left).len(), 2, "6 slots over 3 members");
    }

    let described = client
        .send(
            0,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(GROUP))]),
        )
        .await;
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(described.groups[0].assignor_name.as_str(), "range");

    // A member leaves: the others only gain.
    let leaving = members.remove(0);
    let before: Vec<Owned> = members.iter().map(|m| m.owned.clone()).collect();
    let left_response = client.send(1, &heartbeat(&leaving.id, -1)).await;
    assert_eq!(left_response.error_code, 0);
    converge(&mut client, &mut members, left, right).await;
    for (m, was) in members.iter().zip(&before) {
        assert!(was[&left].is_subset(&m.partitions(&left)), "{} lost", m.id);
    }

    // An assignor strom does not have.
    let unknown = client
        .send(
            1,
            &heartbeat(&Uuid::new_v4().to_string(), 0)
                .with_subscribed_topic_names(Some(vec![TopicName(s("left"))]))
                .with_server_assignor(Some(s("cooperative-sticky")))
                .with_topic_partitions(Some(Vec::new())),
        )
        .await;
    assert_eq!(
        unknown.error_code,
        ResponseError::UnsupportedAssignor.code()
    );
}

#[tokio::test]
async fn a_group_uses_the_assignor_most_members_ask_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topics(&mut client, &["left", "right"]).await;
    let describe = |group: &str| {
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))])
    };
    let mut first = Member::join(&mut client, None).await;
    first.beat(&mut client).await;
    let named = client.send(0, &describe(GROUP)).await;
    assert_eq!(named.groups[0].assignor_name.as_str(), "uniform", "default");
    Member::join(&mut client, Some("range")).await;
    first.beat(&mut client).await;
    let named = client.send(0, &describe(GROUP)).await;
    assert_eq!(named.groups[0].assignor_name.as_str(), "range");
}

/// `send_offsets_to_transaction` under the new protocol sends the member epoch as the
/// generation: the current one commits, a stale one is ILLEGAL_GENERATION (Kafka's
/// answer; TxnOffsetCommit has no STALE_MEMBER_EPOCH), which producers treat as
/// abortable.
#[tokio::test]
async fn transactional_commits_of_new_protocol_members_are_checked_against_the_member_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    create_topics(&mut client, &["left", "right"]).await;
    let member = Member::join(&mut client, Some("range")).await;
    assert!(member.epoch > 0);

    let init = client
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("txn-848"))))
                .with_transaction_timeout_ms(30_000),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let (pid, producer_epoch) = (init.producer_id, init.producer_epoch);
    let add = client
        .send(
            1,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("txn-848")))
                .with_producer_id(pid)
                .with_producer_epoch(producer_epoch)
                .with_group_id(GroupId(s(GROUP))),
        )
        .await;
    assert_eq!(add.error_code, 0);
    let commit = |generation: i32| {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("txn-848")))
            .with_group_id(GroupId(s(GROUP)))
            .with_producer_id(ProducerId(pid.0))
            .with_producer_epoch(producer_epoch)
            .with_generation_id(generation)
            .with_member_id(s(&member.id))
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("left")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)])])
    };
    let current = client.send(3, &commit(member.epoch)).await;
    assert_eq!(current.topics[0].partitions[0].error_code, 0);
    let stale = client.send(3, &commit(member.epoch - 1)).await;
    assert_eq!(
        stale.topics[0].partitions[0].error_code,
        ResponseError::IllegalGeneration.code()
    );
}
