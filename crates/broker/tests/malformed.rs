//! Malformed input thrown at a running broker. DESIGN.md promises that a malformed
//! frame "closes that connection (logged, counted) and nothing else", so every case
//! checks four things: the offending connection is closed, `malformed_frames` counted
//! it (exactly once), a connection opened before the attack still gets answers, and a
//! new client can still create a topic, produce and fetch.
//!
//! Each test runs its own broker, so the counts are exact. Timeouts only guard against
//! a hang; nothing here measures time.

#![allow(missing_docs)]

mod support;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::WritableTxnMarker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
    ProducerId, RequestHeader, TopicName, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use strom_broker::{BrokerConfig, BrokerHandle};
use support::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait; reaching it is a failure (a hang), not a measurement.
const GUARD: Duration = Duration::from_secs(10);

/// The broker's default `request_bytes_max` (100 MiB).
const REQUEST_BYTES_MAX_DEFAULT: i32 = 100 * 1024 * 1024;

/// Awaits `future`, failing the test if it does not finish within [`GUARD`].
async fn guard<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(GUARD, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: nothing happened within {GUARD:?}"),
    }
}

/// A request header, encoded at `header_version`, for any API key and version (also
/// ones the codec does not know).
fn header(api_key: i16, api_version: i16, header_version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("malformed-tests")))
        .encode(&mut buf, header_version)
        .expect("encode header");
    buf
}

/// The header of a served API at `version`, as a client would encode it.
fn header_of(api: ApiKey, version: i16) -> BytesMut {
    header(api as i16, version, api.request_header_version(version), 1)
}

/// A well-formed request frame body (header and request, no size prefix).
fn frame_of<R: Request>(version: i16, request: &R) -> BytesMut {
    let mut buf = header(R::KEY, version, R::header_version(version), 1);
    request.encode(&mut buf, version).expect("encode request");
    buf
}

/// `body` with its size prefix.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn metadata_for(topic: &str) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false)
}

fn produce_to(topic: &str, value: &[u8]) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(support::batch(&[(None, Some(value), 0)])))])])
}

fn fetch_from(topic: &str) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

/// Asserts that `client` gets sensible answers to ApiVersions and Metadata.
async fn answers(client: &mut Client, who: &str) {
    let versions = guard(who, client.send(3, &ApiVersionsRequest::default())).await;
    assert_eq!(versions.error_code, 0, "{who}: ApiVersions error");
    assert!(!versions.api_keys.is_empty(), "{who}: no APIs advertised");
    let metadata = guard(who, client.send(12, &MetadataRequest::default())).await;
    assert_eq!(metadata.brokers.len(), 1, "{who}: Metadata brokers");
}

/// A broker under attack, with a well-behaved client that connected before it.
struct Scene {
    broker: BrokerHandle,
    bystander: Client,
    _dir: tempfile::TempDir,
}

impl Scene {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BrokerConfig {
            http_addr: None,
            ..BrokerConfig::ephemeral(dir.path())
        };
        configure(&mut config);
        let broker = support::start_with(config).await;
        let mut bystander = Client::connect(broker.kafka_addr()).await;
        answers(&mut bystander, "bystander before the attack").await;
        Scene {
            broker,
            bystander,
            _dir: dir,
        }
    }

    async fn connect(&self) -> Client {
        Client::connect(self.broker.kafka_addr()).await
    }

    /// Writes `bytes` (size prefixes included) on a new connection and asserts that
    /// the broker closes it.
    async fn expect_closed(&self, what: &str, bytes: &[u8]) {
        let mut attacker = self.connect().await;
        attacker.write_raw(bytes).await;
        assert!(
            guard(what, attacker.is_closed()).await,
            "{what}: the connection stayed open"
        );
    }

    /// Sends `body` as one frame on a new connection and asserts the connection closes.
    async fn expect_frame_closed(&self, what: &str, body: &[u8]) {
        self.expect_closed(what, &framed(body)).await;
    }

    /// Waits until `count` connections were counted as malformed and checks that no
    /// more are; then checks that the bystander and a new client are served, that
    /// serving them counted nothing, and shuts the broker down.
    async fn finish(mut self, count: u64) {
        let stats = self.broker.stats();
        guard("malformed_frames count", async {
            while stats.malformed_frames.load(Ordering::Relaxed) < count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(stats.malformed_frames.load(Ordering::Relaxed), count);

        answers(&mut self.bystander, "bystander after the attack").await;
        let mut newcomer = self.connect().await;
        answers(&mut newcomer, "new client after the attack").await;
        round_trip(&mut newcomer).await;

        assert_eq!(
            stats.malformed_frames.load(Ordering::Relaxed),
            count,
            "well-behaved requests were counted as malformed"
        );
        self.broker.shutdown().await.expect("shutdown");
    }
}

/// Creates a topic, produces a record to it and fetches it back.
async fn round_trip(client: &mut Client) {
    let topic = "survivor";
    let created = guard(
        "create topic",
        client.send(
            12,
            &metadata_for(topic).with_allow_auto_topic_creation(true),
        ),
    )
    .await;
    assert_eq!(created.topics.len(), 1);
    assert_eq!(created.topics[0].error_code, 0, "auto-created topic");
    let produced = guard("produce", client.send(9, &produce_to(topic, b"still here"))).await;
    let partition = &produced.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 0));
    let fetched = guard("fetch", client.send(12, &fetch_from(topic))).await;
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 1);
    let records = partition.records.as_ref().expect("records");
    assert_eq!(support::values(records), vec![b"still here".to_vec()]);
}

/// The APIs and version ranges the broker advertises, asked over the wire.
async fn advertised(scene: &Scene) -> Vec<(ApiKey, i16, i16)> {
    let mut client = scene.connect().await;
    let response = guard(
        "ApiVersions",
        client.send(3, &ApiVersionsRequest::default()),
    )
    .await;
    response
        .api_keys
        .iter()
        .map(|k| {
            let api = ApiKey::try_from(k.api_key).expect("advertised key is a Kafka API");
            (api, k.min_version, k.max_version)
        })
        .collect()
}

/// An unsigned varint, as flexible versions encode lengths.
fn put_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[tokio::test]
async fn truncated_frames_are_counted_when_the_client_leaves() {
    let scene = Scene::start().await;
    let metadata = framed(&frame_of(12, &MetadataRequest::default()));
    let cases: [(&str, &[u8]); 4] = [
        ("half a size prefix", &[0, 0]),
        ("a size prefix and nothing", &[0, 0, 0, 100]),
        (
            "10 of 100 bytes",
            &[0, 0, 0, 100, 0, 3, 0, 12, 0, 0, 0, 1, 0, 0],
        ),
        (
            "a Metadata request without its last byte",
            &metadata[..metadata.len() - 1],
        ),
    ];
    for (what, bytes) in cases {
        // Half-close: the broker sees the end of the stream mid-frame and must close
        // its side as well.
        let mut stream = TcpStream::connect(scene.broker.kafka_addr())
            .await
            .expect("connect");
        stream.write_all(bytes).await.expect("write");
        stream.shutdown().await.expect("half-close");
        let mut rest = Vec::new();
        let read = guard(what, stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "{what}: the broker answered {read:?} with {} bytes",
            rest.len()
        );
    }
    // Full close in the middle of a frame, nothing left to read the answer with.
    let mut leaver = scene.connect().await;
    leaver.write_raw(&[0, 0, 0, 50, 0, 3]).await;
    drop(leaver);
    scene.finish(5).await;
}

#[tokio::test]
async fn size_prefixes_outside_the_bound_close_without_waiting_for_a_body() {
    let scene = Scene::start().await;
    let sizes = [-1, i32::MIN, REQUEST_BYTES_MAX_DEFAULT + 1, i32::MAX];
    for size in sizes {
        // Only the prefix: the broker must refuse it at once, not wait for the body.
        scene
            .expect_closed(&format!("size prefix {size}"), &size.to_be_bytes())
            .await;
    }
    scene.finish(sizes.len() as u64).await;
}

#[tokio::test]
async fn request_bytes_max_is_an_inclusive_bound() {
    const MAX: usize = 512;
    let scene = Scene::start_with(|c| c.request_bytes_max = MAX).await;
    // Pad the client id so that the frame is exactly MAX bytes, then one more.
    let frame_with_client_id = |len: usize| {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_string("c".repeat(len))))
            .encode(&mut buf, ApiKey::Metadata.request_header_version(12))
            .expect("encode header");
        MetadataRequest::default()
            .encode(&mut buf, 12)
            .expect("encode request");
        buf
    };
    let overhead = frame_with_client_id(0).len();
    let at_max = frame_with_client_id(MAX - overhead);
    assert_eq!(at_max.len(), MAX);

    let mut client = scene.connect().await;
    client.write_frame(&at_max).await;
    let response = guard(
        "frame of request_bytes_max",
        client.receive::<MetadataRequest>(12, 7),
    )
    .await;
    assert_eq!(response.brokers.len(), 1);

    let over_max = frame_with_client_id(MAX - overhead + 1);
    assert_eq!(over_max.len(), MAX + 1);
    scene
        .expect_frame_closed("frame of request_bytes_max + 1", &over_max)
        .await;
    scene
        .expect_closed(
            "size prefix of request_bytes_max + 1, no body",
            &(MAX as i32 + 1).to_be_bytes(),
        )
        .await;
    scene.finish(2).await;
}

#[tokio::test]
async fn frames_shorter_than_a_request_header_close() {
    let scene = Scene::start().await;
    let full = header_of(ApiKey::Metadata, 12);
    // Key, version and correlation id take 8 bytes; anything shorter cannot be a header.
    for len in 0..8 {
        scene
            .expect_frame_closed(&format!("{len}-byte frame"), &full[..len])
            .await;
    }
    // A complete fixed part, but a client id that claims more bytes than follow.
    let mut long_client_id = BytesMut::new();
    long_client_id.put_slice(&full[..8]);
    long_client_id.put_i16(100);
    long_client_id.put_slice(b"ab");
    scene
        .expect_frame_closed("client id longer than the frame", &long_client_id)
        .await;
    // A flexible (v2) header whose tagged-field section claims 2^32 - 1 fields.
    let mut tagged = BytesMut::new();
    tagged.put_i16(ApiKey::Metadata as i16);
    tagged.put_i16(12);
    tagged.put_i32(1);
    tagged.put_i16(-1);
    put_varint(&mut tagged, u32::MAX);
    tagged.put_slice(&[1, 2, 3]);
    scene
        .expect_frame_closed("2^32 - 1 tagged header fields", &tagged)
        .await;
    // The same header with every byte present but the request body missing.
    scene
        .expect_frame_closed("a Metadata header and no body", &full)
        .await;
    scene.finish(11).await;
}

#[tokio::test]
async fn api_keys_strom_does_not_serve_close() {
    let scene = Scene::start().await;
    for key in [9999, -1, i16::MIN, 1000] {
        let mut body = header(key, 0, 1, 1);
        body.put_slice(&[0, 0, 0, 0]);
        scene
            .expect_frame_closed(&format!("API key {key}"), &body)
            .await;
    }
    // WriteTxnMarkers (27) is a Kafka API strom does not serve (it is between brokers;
    // strom's coordinator writes markers itself): a well-formed request still ends the
    // connection rather than getting an answer strom cannot give.
    let markers = WriteTxnMarkersRequest::default()
        .with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(1))
            .with_transaction_result(true)]);
    scene
        .expect_frame_closed("WriteTxnMarkers v1", &frame_of(1, &markers))
        .await;
    scene.finish(5).await;
}

#[tokio::test]
async fn versions_outside_the_advertised_range_close() {
    let scene = Scene::start().await;
    let mut count = 0;
    let explicit = [(ApiKey::Produce, 99), (ApiKey::Metadata, -1)];
    for (api, version) in explicit {
        let mut body = header_of(api, version);
        body.put_slice(&[0; 16]);
        scene
            .expect_frame_closed(&format!("{api:?} v{version}"), &body)
            .await;
        count += 1;
    }
    // Just below and just above every advertised range (ApiVersions answers instead;
    // see `api_versions_with_an_unknown_version_answers_unsupported_version`).
    for (api, min, max) in advertised(&scene).await {
        if api == ApiKey::ApiVersions {
            continue;
        }
        for version in [min - 1, max + 1] {
            let mut body = header_of(api, version);
            body.put_slice(&[0; 16]);
            scene
                .expect_frame_closed(&format!("{api:?} v{version}"), &body)
                .await;
            count += 1;
        }
    }
    scene.finish(count).await;
}

#[tokio::test]
async fn api_versions_with_an_unknown_version_answers_unsupported_version() {
    let scene = Scene::start().await;
    let max = advertised(&scene)
        .await
        .iter()
        .find(|(api, _, _)| *api == ApiKey::ApiVersions)
        .map(|(_, _, max)| *max)
        .expect("ApiVersions is advertised");
    let mut client = scene.connect().await;
    for (correlation_id, version) in [(41, 99), (42, max + 1), (43, i16::MAX)] {
        // A newer client encodes a body strom cannot know; strom must not read it.
        let mut body = header(
            ApiKey::ApiVersions as i16,
            version,
            ApiKey::ApiVersions.request_header_version(version),
            correlation_id,
        );
        body.put_slice(&[4, b'n', b'e', b'w', 2, b'9', 0, 0xde, 0xad]);
        client.write_frame(&body).await;
        // Kafka answers at version 0 so that any client can read the fallback.
        let response = guard(
            "ApiVersions fallback",
            client.receive::<ApiVersionsRequest>(0, correlation_id),
        )
        .await;
        assert_eq!(
            response.error_code, 35,
            "UNSUPPORTED_VERSION for v{version}"
        );
        assert!(!response.api_keys.is_empty(), "the fallback lists the APIs");
        let own = response
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .expect("the fallback lists ApiVersions itself");
        assert_eq!(own.max_version, max);
    }
    // The connection is still good for the retry at a version both sides know.
    let retry = guard(
        "ApiVersions v3 after the fallback",
        client.send(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("malformed-tests"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
    )
    .await;
    assert_eq!(retry.error_code, 0);
    assert!(!retry.api_keys.is_empty());
    scene.finish(0).await;
}

#[tokio::test]
async fn garbage_bodies_after_valid_headers_close() {
    let scene = Scene::start().await;
    let mut count = 0;
    let garbage: [&[u8]; 3] = [&[0xff; 16], &[0x7f; 16], &[0x80; 7]];
    for (api, min, max) in advertised(&scene).await {
        for version in [min, max] {
            for body in garbage {
                let mut frame = header_of(api, version);
                frame.put_slice(body);
                // The broker's own decoder says whether this garbage happens to be a
                // valid request; those are not what this test is about.
                if strom_broker::fuzzing::decode_frame(&frame) {
                    continue;
                }
                scene
                    .expect_frame_closed(&format!("{api:?} v{version} + {body:?}"), &frame)
                    .await;
                count += 1;
            }
        }
    }
    // Valid requests cut short inside their body.
    let metadata = frame_of(12, &metadata_for("cut"));
    let produce = frame_of(9, &produce_to("cut", b"value"));
    let create = frame_of(
        7,
        &CreateTopicsRequest::default().with_topics(vec![Default::default()]),
    );
    for (what, frame) in [
        ("Metadata v12", metadata),
        ("Produce v9", produce),
        ("CreateTopics v7", create),
    ] {
        for cut in [1, frame.len() / 3] {
            let short = &frame[..frame.len() - cut];
            scene
                .expect_frame_closed(&format!("{what} without its last {cut} bytes"), short)
                .await;
            count += 1;
        }
    }
    assert!(count > 40, "only {count} garbage frames were undecodable");
    scene.finish(count).await;
}

#[tokio::test]
async fn huge_array_lengths_with_few_bytes_behind_them_close() {
    // The vendored codec used to allocate what the length claimed before reading any
    // element, so these few bytes made the process abort (vendor/README.md).
    let scene = Scene::start().await;
    let mut cases: Vec<(String, BytesMut)> = Vec::new();
    for (version, length) in [
        (0, i32::MAX),
        (1, i32::MAX),
        (4, 0x4000_0000),
        (8, i32::MAX),
    ] {
        let mut frame = header_of(ApiKey::Metadata, version);
        frame.put_i32(length);
        frame.put_slice(&[0, 1, b'a']);
        cases.push((format!("Metadata v{version}, {length} topics"), frame));
    }
    for (version, length) in [
        (9, u32::MAX),
        (9, 0x8000_0000),
        (12, u32::MAX),
        (13, 1 << 28),
    ] {
        let mut frame = header_of(ApiKey::Metadata, version);
        put_varint(&mut frame, length);
        frame.put_slice(&[2, b'a', 0]);
        cases.push((
            format!("Metadata v{version}, compact length {length}"),
            frame,
        ));
    }
    // Produce v9: one topic, one partition, a record set that claims 4 GiB.
    let mut produce = header_of(ApiKey::Produce, 9);
    produce.put_u8(0); // transactional id: null
    produce.put_i16(-1); // acks
    produce.put_i32(1000); // timeout
    produce.put_u8(2); // one topic
    produce.put_slice(&[2, b't']); // name "t"
    produce.put_u8(2); // one partition
    produce.put_i32(0); // index
    put_varint(&mut produce, u32::MAX); // records: 2^32 - 2 bytes
    produce.put_slice(&[0; 8]);
    cases.push(("Produce v9, 4 GiB record set".into(), produce));
    // Produce v7 (not flexible): a record set length of i32::MAX.
    let mut produce = header_of(ApiKey::Produce, 7);
    produce.put_i16(-1);
    produce.put_i16(-1);
    produce.put_i32(1000);
    produce.put_i32(1);
    produce.put_i16(1);
    produce.put_u8(b't');
    produce.put_i32(1);
    produce.put_i32(0);
    produce.put_i32(i32::MAX);
    produce.put_slice(&[0; 8]);
    cases.push(("Produce v7, 2 GiB record set".into(), produce));
    // CreateTopics v2: a topic with i32::MAX configs.
    let mut create = header_of(ApiKey::CreateTopics, 2);
    create.put_i32(1);
    create.put_i16(1);
    create.put_u8(b't');
    create.put_i32(1);
    create.put_i16(1);
    create.put_i32(0); // assignments
    create.put_i32(i32::MAX); // configs
    create.put_slice(&[0; 4]);
    cases.push(("CreateTopics v2, i32::MAX configs".into(), create));
    // Fetch v12: a topic with 2^32 - 2 partitions.
    let mut fetch = header_of(ApiKey::Fetch, 12);
    fetch.put_i32(-1); // replica id
    fetch.put_i32(0); // max wait
    fetch.put_i32(1); // min bytes
    fetch.put_i32(1 << 20); // max bytes
    fetch.put_i8(0); // isolation level
    fetch.put_i32(0); // session id
    fetch.put_i32(-1); // session epoch
    fetch.put_u8(2); // one topic
    fetch.put_slice(&[2, b't']);
    put_varint(&mut fetch, u32::MAX);
    fetch.put_slice(&[0; 8]);
    cases.push(("Fetch v12, 2^32 - 2 partitions".into(), fetch));
    // Found by the `request` fuzz target in under a second against the unpatched codec
    // (an out-of-memory abort: malloc of 6 GiB): a Fetch v4 seed whose topic count was
    // mutated to 0x0400_0001.
    cases.push((
        "fuzz finding: Fetch v4, 0x0400_0001 topics".into(),
        BytesMut::from(
            &[
                0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07, 0x00, 0x04, 0x73, 0x65, 0x65, 0x64,
                0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x01, 0x00, 0x10,
                0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00, 0x00, 0x00, 0x01,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe7,
                0x00, 0x32, 0x00,
            ][..],
        ),
    ));
    // A request whose strings claim more than the frame holds.
    let mut long_name = header_of(ApiKey::Metadata, 12);
    long_name.put_u8(2);
    long_name.put_slice(&[0; 16]); // topic id
    put_varint(&mut long_name, u32::MAX); // name of 4 GiB
    long_name.put_slice(b"abc");
    cases.push(("Metadata v12, 4 GiB topic name".into(), long_name));

    for (what, frame) in &cases {
        assert!(
            !strom_broker::fuzzing::decode_frame(frame),
            "{what} decodes"
        );
        scene.expect_frame_closed(what, frame).await;
    }
    scene.finish(cases.len() as u64).await;
}

/// Kafka ignores bytes after a request body, and librdkafka 2.16 relies on it (its
/// Metadata v13 requests carry extra bytes); strom answers such requests.
#[tokio::test]
async fn trailing_bytes_after_a_valid_body_are_ignored() {
    let scene = Scene::start().await;
    let mut client = scene.connect().await;
    for trailer in [&[0u8][..], &[0, 0, 0, 0, 0, 0, 0, 0]] {
        let mut frame = header(ApiKey::Metadata as i16, 12, 2, 7);
        MetadataRequest::default()
            .encode(&mut frame, 12)
            .expect("encode");
        frame.put_slice(trailer);
        client.write_frame(&frame).await;
        let metadata = guard(
            "Metadata + trailer",
            client.receive::<MetadataRequest>(12, 7),
        )
        .await;
        assert_eq!(metadata.brokers.len(), 1);
    }
    scene.finish(0).await;
}

#[tokio::test]
async fn requests_before_a_malformed_frame_are_answered_in_order() {
    let scene = Scene::start().await;
    let mut client = scene.connect().await;
    let mut first = header(ApiKey::Metadata as i16, 12, 2, 1);
    MetadataRequest::default()
        .encode(&mut first, 12)
        .expect("encode");
    let mut second = header(ApiKey::ApiVersions as i16, 0, 1, 2);
    ApiVersionsRequest::default()
        .encode(&mut second, 0)
        .expect("encode");
    let mut after = header(ApiKey::Metadata as i16, 12, 2, 4);
    MetadataRequest::default()
        .encode(&mut after, 12)
        .expect("encode");
    // All in one write: two good requests, a bad one, and a good one nobody reads.
    let mut bytes = framed(&first);
    bytes.extend(framed(&second));
    bytes.extend(framed(&[0xff; 12]));
    bytes.extend(framed(&after));
    client.write_raw(&bytes).await;
    let metadata = guard("first answer", client.receive::<MetadataRequest>(12, 1)).await;
    assert_eq!(metadata.brokers.len(), 1);
    let versions = guard("second answer", client.receive::<ApiVersionsRequest>(0, 2)).await;
    assert_eq!(versions.error_code, 0);
    assert!(
        guard("close", client.is_closed()).await,
        "the request after the malformed frame was answered"
    );
    scene.finish(1).await;
}

/// xorshift64*: deterministic, good enough to spread bytes, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn random_frames_close_only_their_own_connection() {
    const FRAMES: usize = 600;
    let scene = Scene::start().await;
    let apis = advertised(&scene).await;
    let templates = [
        frame_of(12, &MetadataRequest::default()),
        frame_of(4, &metadata_for("random")),
        frame_of(9, &produce_to("random", b"value")),
        frame_of(12, &fetch_from("random")),
        frame_of(
            7,
            &CreateTopicsRequest::default().with_topics(vec![Default::default()]),
        ),
    ];
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let (mut sent, mut valid) = (0u64, 0u64);
    for i in 0..FRAMES {
        let frame: Vec<u8> = match i % 3 {
            // Random bytes, header and all.
            0 => {
                let len = rng.below(48);
                rng.bytes(len)
            }
            // A header of a served API and version, then random bytes.
            1 => {
                let (api, min, max) = apis[rng.below(apis.len())];
                let version = min + rng.below((max - min + 1) as usize) as i16;
                let mut frame = header_of(api, version).to_vec();
                let len = rng.below(96);
                frame.extend(rng.bytes(len));
                frame
            }
            // A valid request with a few bytes changed.
            _ => {
                let mut frame = templates[rng.below(templates.len())].to_vec();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(frame.len());
                    frame[at] = rng.next() as u8;
                }
                frame
            }
        };
        // A frame that happens to be a valid request would be answered (or, as a
        // produce with acks=0, not); only undecodable ones are this test's business.
        if strom_broker::fuzzing::decode_frame(&frame) {
            valid += 1;
            continue;
        }
        scene
            .expect_frame_closed(&format!("random frame {i}: {frame:?}"), &frame)
            .await;
        sent += 1;
    }
    assert!(
        valid < FRAMES as u64 / 4,
        "{valid} of {FRAMES} random frames were valid requests"
    );
    scene.finish(sent).await;
}

/// The seed corpus of the `request` fuzz target (written by `fuzz/seeds.py`).
fn fuzz_seeds() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/request");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .map(|path| {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read seed"))
        })
        .collect();
    seeds.sort();
    seeds
}

#[tokio::test]
async fn fuzz_seeds_are_requests_the_broker_answers() {
    let seeds = fuzz_seeds();
    assert!(seeds.len() >= 10, "only {} seeds", seeds.len());
    let scene = Scene::start().await;
    let mut client = scene.connect().await;
    // Create the seeds' topic first, so that the produce seeds show their batches are
    // valid (the broker checks the CRC).
    let by_name = |name: &str| {
        seeds
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, frame)| frame.clone())
            .unwrap_or_else(|| panic!("{name} exists"))
    };
    client.write_frame(&by_name("seed-metadata-v0")).await;
    let created = guard("seed-metadata-v0", client.receive::<MetadataRequest>(0, 7)).await;
    assert_eq!(created.topics[0].error_code, 0);
    client.write_frame(&by_name("seed-produce-v9")).await;
    let produced = guard("seed-produce-v9", client.receive::<ProduceRequest>(9, 7)).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    for (name, frame) in &seeds {
        assert!(strom_broker::fuzzing::decode_frame(frame), "{name} decodes");
        client.write_frame(frame).await;
        let response = guard(name, client.read_frame())
            .await
            .unwrap_or_else(|| panic!("{name}: the broker closed the connection"));
        assert_eq!(response[..4], 7i32.to_be_bytes(), "{name}: correlation id");
    }
    scene.finish(0).await;
}
