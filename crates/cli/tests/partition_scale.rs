//! Partitions are bounded by disk and memory, not by descriptors: `strom serve` with
//! a hard open-file limit of 1,024 and an open-file budget of 256 segment files takes
//! topics totalling 3,000 partitions, created in batches of 1,000, is killed with
//! SIGKILL, starts again, and produces to and fetches from every partition — its
//! descriptors staying within the budget plus a reserve all along. (Without the
//! budget each partition held three descriptors, and creating these topics failed
//! with "Too many open files".)

#![allow(missing_docs)]

mod support;
#[path = "../../broker/tests/support/mod.rs"]
mod wire;

use std::os::unix::process::CommandExt;
use std::process::Child;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use support::spawn_strom_command;
use wire::{batch, creatable_topic, records_of, Client};

const TOPICS: usize = 3;
const PARTITIONS_PER_TOPIC: i32 = 1_000;
const OPEN_FILES_MAX: &str = "256";
/// The hard `RLIMIT_NOFILE` of the broker: far below 3 descriptors per partition.
const NOFILE_HARD: libc::rlim_t = 1_024;
/// Descriptors besides segment files: sockets, the runtime, index writes, checkpoints
/// and the files operations in flight hold.
const RESERVE: usize = 256;

fn topic(t: usize) -> TopicName {
    TopicName(StrBytes::from_string(format!("scale-{t}")))
}

/// The broker process, killed when dropped — also when an assertion fails, so that a
/// failing test leaves no broker (holding the test's output pipe) behind.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `strom serve` with the budget flag, under the low hard open-file limit.
fn spawn(dir: &std::path::Path) -> (Broker, std::net::SocketAddr) {
    let (child, addr) =
        spawn_strom_command(dir, &["--open-files-max", OPEN_FILES_MAX], |command| {
            // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork
            // and exec.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: NOFILE_HARD,
                        rlim_max: NOFILE_HARD,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        });
    (Broker(child), addr)
}

fn open_fds(broker: &Broker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.0.id())).map_or(0, |dir| dir.count())
}

fn value(t: usize, partition: i32, round: u32) -> Vec<u8> {
    format!("t{t}-p{partition}-r{round}").into_bytes()
}

/// Produces one record (acks=all) to every partition of every topic and checks each
/// was given `expected_offset`.
async fn produce_everywhere(client: &mut Client, round: u32, expected_offset: i64) {
    for t in 0..TOPICS {
        let values: Vec<Vec<u8>> = (0..PARTITIONS_PER_TOPIC)
            .map(|p| value(t, p, round))
            .collect();
        let data = values
            .iter()
            .enumerate()
            .map(|(p, v)| {
                PartitionProduceData::default()
                    .with_index(p as i32)
                    .with_records(Some(batch(&[(None, Some(v.as_slice()), 1_000)])))
            })
            .collect();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(60_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic(t))
                .with_partition_data(data)]);
        let response = client.send(9, &request).await;
        let partitions = &response.responses[0].partition_responses;
        assert_eq!(partitions.len(), PARTITIONS_PER_TOPIC as usize);
        for result in partitions {
            assert_eq!(result.error_code, 0, "{:?}", result.error_message);
            assert_eq!(result.base_offset, expected_offset);
        }
    }
}

/// Fetches every partition from offset 0 and checks it holds the records of
/// `rounds`, one per round.
async fn fetch_everywhere(client: &mut Client, rounds: u32) {
    for t in 0..TOPICS {
        let partitions = (0..PARTITIONS_PER_TOPIC)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 12)
            })
            .collect();
        let request = FetchRequest::default()
            .with_max_bytes(i32::MAX)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic(t))
                .with_partitions(partitions)]);
        let response = client.send(12, &request).await;
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions.len(), PARTITIONS_PER_TOPIC as usize);
        for data in partitions {
            let p = data.partition_index;
            assert_eq!(data.error_code, 0, "fetch of {t}/{p}");
            assert_eq!(data.high_watermark, i64::from(rounds));
            let records = data.records.clone().unwrap_or_else(Bytes::new);
            let got: Vec<Vec<u8>> = records_of(&records)
                .into_iter()
                .map(|r| r.value.map(|v| v.to_vec()).unwrap_or_default())
                .collect();
            let want: Vec<Vec<u8>> = (0..rounds).map(|round| value(t, p, round)).collect();
            assert_eq!(got, want, "records of {t}/{p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_partitions_beyond_the_open_file_budget_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, addr) = spawn(dir.path());
    let mut client = Client::connect(addr).await;
    for t in 0..TOPICS {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(600_000)
            .with_topics(vec![creatable_topic(
                &format!("scale-{t}"),
                PARTITIONS_PER_TOPIC,
                &[],
            )]);
        let created = client.send(7, &request).await;
        assert_eq!(
            created.topics[0].error_code, 0,
            "{:?}",
            created.topics[0].error_message
        );
    }
    produce_everywhere(&mut client, 0, 0).await;
    fetch_everywhere(&mut client, 1).await;
    let budget: usize = OPEN_FILES_MAX.parse().expect("number");
    let fds = open_fds(&broker);
    assert!(fds <= budget + RESERVE, "{fds} descriptors open");

    drop(broker); // SIGKILL
    let (broker, addr) = spawn(dir.path());
    let mut client = Client::connect(addr).await;
    fetch_everywhere(&mut client, 1).await;
    produce_everywhere(&mut client, 1, 1).await;
    fetch_everywhere(&mut client, 2).await;
    let fds = open_fds(&broker);
    assert!(
        fds <= budget + RESERVE,
        "{fds} descriptors open after the restart"
    );
}
