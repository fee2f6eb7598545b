//! Creating partitions fails cleanly: a CreateTopics or CreatePartitions that fails
//! half way (an injected failure: a file squats on one partition's directory path)
//! leaves no directory, no open log and nothing in the metadata, before and after a
//! restart; directories the metadata does not know are set aside, unopened, at start.

#![allow(missing_docs)]

mod support;

use std::path::Path;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use support::{creatable_topic, Client};

fn partition_dirs(data_dir: &Path, topic: &str) -> Vec<String> {
    let prefix = format!("{topic}-");
    let mut dirs: Vec<String> = std::fs::read_dir(data_dir)
        .expect("list data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    dirs.sort();
    dirs
}

/// Descriptors of this process (the broker runs in-process) open on a file under
/// `dir` (deleted ones included: their links end in " (deleted)").
fn fds_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc/self/fd")
        .expect("list fds")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with(&dir))
        .collect()
}

/// CreateTopics of `topic` with `partitions`; its error code.
async fn create(client: &mut Client, topic: &str, partitions: i32) -> i16 {
    let request =
        CreateTopicsRequest::default().with_topics(vec![creatable_topic(topic, partitions, &[])]);
    client.send(7, &request).await.topics[0].error_code
}

async fn topic_error(client: &mut Client, topic: &str) -> i16 {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
        .with_allow_auto_topic_creation(false);
    client.send(12, &request).await.topics[0].error_code
}

#[tokio::test]
async fn a_create_topics_that_fails_half_way_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Partition 6 of "half" cannot get its directory.
    std::fs::write(dir.path().join("half-6"), b"in the way").expect("squatter");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(
        create(&mut client, "half", 10).await,
        ResponseError::KafkaStorageError.code()
    );
    assert!(
        partition_dirs(dir.path(), "half").is_empty(),
        "no directory is left"
    );
    let half = dir.path().join("half-");
    assert_eq!(
        fds_under(&half),
        Vec::<String>::new(),
        "no descriptor is left open"
    );
    assert_eq!(
        topic_error(&mut client, "half").await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // Nothing in the metadata either: after a restart the topic still does not exist,
    // and once the obstacle is gone the same creation succeeds.
    drop(client);
    broker.shutdown().await.expect("shutdown");
    std::fs::remove_file(dir.path().join("half-6")).expect("remove squatter");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(
        topic_error(&mut client, "half").await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(create(&mut client, "half", 10).await, 0);
    assert_eq!(partition_dirs(dir.path(), "half").len(), 10);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn create_partitions_that_fails_half_way_keeps_the_old_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(create(&mut client, "grow", 2).await, 0);
    std::fs::write(dir.path().join("grow-4"), b"in the way").expect("squatter");
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("grow")))
            .with_count(6)])
        .with_timeout_ms(10_000);
    let response = client.send(3, &grow).await;
    assert_eq!(
        response.results[0].error_code,
        ResponseError::KafkaStorageError.code()
    );
    assert_eq!(partition_dirs(dir.path(), "grow"), ["grow-0", "grow-1"]);
    drop(client);
    broker.shutdown().await.expect("shutdown");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("grow"))))]));
    assert_eq!(
        client.send(12, &request).await.topics[0].partitions.len(),
        2
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn partition_directories_the_metadata_does_not_know_are_set_aside_unopened_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    broker.shutdown().await.expect("shutdown");
    // A log directory no topic refers to (a crash between a create's two writes).
    let ghost = dir.path().join("ghost-0");
    std::fs::create_dir(&ghost).expect("ghost dir");
    std::fs::write(ghost.join("00000000000000000000.log"), b"").expect("segment");
    // Its index is a directory: opening this log would fail, and so would the start.
    std::fs::create_dir(ghost.join("00000000000000000000.index")).expect("unopenable index");
    let broker = support::start(dir.path()).await;
    assert!(!ghost.exists(), "not in service");
    let aside: Vec<_> = std::fs::read_dir(dir.path().join(strom_log::ORPHANED_DIR))
        .expect("orphaned dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(aside[0].starts_with("ghost-0."), "{aside:?}");
    assert_eq!(
        fds_under(&dir.path().join(strom_log::ORPHANED_DIR)),
        Vec::<String>::new(),
        "never opened"
    );
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(
        topic_error(&mut client, "ghost").await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    broker.shutdown().await.expect("shutdown");
    // And the next start does not trip over the set-aside directory.
    let broker = support::start(dir.path()).await;
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_directories_of_a_topic_whose_delete_was_interrupted_are_removed_at_start() {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::DeleteTopicsRequest;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = support::start(dir.path()).await;
    let mut client = Client::connect(broker.kafka_addr()).await;
    assert_eq!(create(&mut client, "gone", 2).await, 0);
    let delete = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("gone"))))])
        .with_timeout_ms(10_000);
    assert_eq!(client.send(6, &delete).await.responses[0].error_code, 0);
    drop(client);
    broker.shutdown().await.expect("shutdown");
    // As if the process died after the delete's metadata record, before the
    // directories went: put one back.
    std::fs::create_dir(dir.path().join("gone-1")).expect("leftover");
    std::fs::write(
        dir.path().join("gone-1").join("00000000000000000000.log"),
        b"",
    )
    .expect("segment");
    let broker = support::start(dir.path()).await;
    assert!(partition_dirs(dir.path(), "gone").is_empty(), "removed");
    assert!(
        !dir.path().join(strom_log::ORPHANED_DIR).exists(),
        "a deleted topic's data is not kept"
    );
    broker.shutdown().await.expect("shutdown");
}
