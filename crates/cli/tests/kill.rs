//! No acknowledged event is lost: `strom serve` is killed with SIGKILL while producers
//! send acks=all batches, restarted on the same data directory, and every record it
//! acknowledged must be there, at the offset it was acknowledged with; so must the last
//! acknowledged offset commit.

#![allow(missing_docs)]

mod support;
#[path = "../../broker/tests/support/mod.rs"]
mod wire;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::spawn_strom;
use wire::{batch, records_of, Client};

const TOPIC: &str = "durable";
const PARTITIONS: i32 = 2;
const PRODUCERS: usize = 4;
/// Acknowledged batches before the kill; producers keep sending while it happens.
const ACKS_BEFORE_KILL: usize = 400;

/// An acknowledged record: partition, offset, value.
type Acked = (i32, i64, Vec<u8>);

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = spawn_strom(dir.path(), &[]);
    let mut admin = Client::connect(addr).await;
    let created = admin
        .send(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name())
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1)]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);

    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let (enough_tx, enough_rx) = tokio::sync::watch::channel(false);
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let acked = Arc::clone(&acked);
        let enough_tx = enough_tx.clone();
        producers.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let partition = (producer as i32) % PARTITIONS;
            for n in 0.. {
                let values: Vec<Vec<u8>> = (0..3)
                    .map(|i| format!("p{producer}-b{n}-r{i}").into_bytes())
                    .collect();
                let records: Vec<_> = values
                    .iter()
                    .map(|v| (None, Some(v.as_slice()), 1_000))
                    .collect();
                let request = ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(name())
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch(&records)))])]);
                let Some(response) = client.try_send(9, &request).await else {
                    return; // the broker is gone
                };
                let result = &response.responses[0].partition_responses[0];
                assert_eq!(result.error_code, 0, "{:?}", result.error_message);
                let mut acked = acked.lock().expect("lock");
                for (i, value) in values.into_iter().enumerate() {
                    acked.push((partition, result.base_offset + i as i64, value));
                }
                if acked.len() >= ACKS_BEFORE_KILL * 3 {
                    let _ = enough_tx.send(true);
                }
            }
        }));
    }
    // A committer acknowledges offsets of a group while the producers run.
    let last_commit: Arc<Mutex<i64>> = Arc::new(Mutex::new(-1));
    let committer = {
        let last_commit = Arc::clone(&last_commit);
        tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            for offset in 0.. {
                let Some(response) = client.try_send(8, &commit(offset)).await else {
                    return;
                };
                assert_eq!(response.topics[0].partitions[0].error_code, 0);
                *last_commit.lock().expect("lock") = offset;
            }
        })
    };
    let mut enough_rx = enough_rx;
    enough_rx
        .wait_for(|enough| *enough)
        .await
        .expect("producers running");
    child.kill().expect("SIGKILL strom");
    child.wait().expect("reap strom");
    for producer in producers {
        producer.await.expect("producer task");
    }
    committer.await.expect("committer task");
    let last_commit = *last_commit.lock().expect("lock");
    assert!(last_commit > 0, "commits were acknowledged before the kill");
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= ACKS_BEFORE_KILL * 3);

    let (mut child, addr) = spawn_strom(dir.path(), &[]);
    let mut client = Client::connect(addr).await;
    for partition in 0..PARTITIONS {
        let mut stored: Vec<(i64, Vec<u8>)> = Vec::new();
        loop {
            let next = stored.last().map_or(0, |(offset, _)| offset + 1);
            let request = FetchRequest::default().with_topics(vec![FetchTopic::default()
                .with_topic(name())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(next)
                    .with_partition_max_bytes(1 << 20)])]);
            let response = client.send(12, &request).await;
            let data = &response.responses[0].partitions[0];
            assert_eq!(data.error_code, 0);
            let records = data.records.clone().unwrap_or_else(Bytes::new);
            let fresh: Vec<_> = records_of(&records)
                .into_iter()
                .filter(|r| r.offset >= next)
                .map(|r| (r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()))
                .collect();
            if fresh.is_empty() {
                assert_eq!(next, data.high_watermark, "read up to the high watermark");
                break;
            }
            stored.extend(fresh);
        }
        let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (0..stored.len() as i64).collect::<Vec<_>>(),
            "offsets are dense after recovery"
        );
        for (p, offset, value) in acked.iter().filter(|(p, _, _)| *p == partition) {
            let found = stored.get(*offset as usize).map(|(_, v)| v);
            assert_eq!(
                found,
                Some(value),
                "acknowledged record at {p}/{offset} must survive"
            );
        }
    }
    // The last acknowledged commit is there (or one sent after it, never an older one).
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("committer")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name())
            .with_partition_indexes(vec![0])]));
    let response = client.send(7, &request).await;
    let recovered = response.topics[0].partitions[0].committed_offset;
    assert!(
        recovered == last_commit || recovered == last_commit + 1,
        "acknowledged commit {last_commit}, recovered {recovered}"
    );
    child.kill().expect("stop strom");
    child.wait().expect("reap strom");
}

/// A group-less commit of `offset` for partition 0.
fn commit(offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("committer")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name())
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])])
}
