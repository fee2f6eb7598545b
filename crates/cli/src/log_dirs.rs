//! Partition sizes on disk, from a DescribeLogDirs request.
//!
//! librdkafka has no DescribeLogDirs admin call, so this one request is encoded with the
//! `kafka-protocol` codecs the broker uses and sent on a short-lived blocking
//! connection to each broker (each reports only its own disks). Everything else the
//! CLI does goes through librdkafka.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Version 1: answered by Kafka 2.0 and later (Kafka 4 dropped only version 0) and strom.
const VERSION: i16 = 1;
/// Bound on a response, so a confused peer cannot make us allocate without limit.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// Bytes on disk of each partition of `topic`, summed over the log directories of the
/// broker at `addr` (`host:port`).
pub fn partition_sizes(
    addr: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let request =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(partitions.to_vec())]));
    let response =
        exchange(addr, &request, timeout).with_context(|| format!("DescribeLogDirs to {addr}"))?;
    let mut sizes = BTreeMap::new();
    for dir in response.results {
        if dir.error_code != 0 {
            bail!("DescribeLogDirs to {addr}: error code {}", dir.error_code);
        }
        for t in dir.topics.iter().filter(|t| t.name.0.as_str() == topic) {
            for p in &t.partitions {
                *sizes.entry(p.partition_index).or_insert(0) += p.partition_size;
            }
        }
    }
    Ok(sizes)
}

/// Sends one request and reads its response on a fresh connection.
fn exchange(
    addr: &str,
    request: &DescribeLogDirsRequest,
    timeout: Duration,
) -> anyhow::Result<DescribeLogDirsResponse> {
    let header = RequestHeader::default()
        .with_request_api_key(DescribeLogDirsRequest::KEY)
        .with_request_api_version(VERSION)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("strom-cli")));
    let mut body = BytesMut::new();
    header.encode(&mut body, DescribeLogDirsRequest::header_version(VERSION))?;
    request.encode(&mut body, VERSION)?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_u32(u32::try_from(body.len())?);
    frame.put_slice(&body);

    let mut stream = TcpStream::connect(addr).context("cannot connect")?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&frame)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = u32::from_be_bytes(size) as usize;
    if size > RESPONSE_BYTES_MAX {
        bail!("response of {size} bytes is over the {RESPONSE_BYTES_MAX}-byte bound");
    }
    let mut response = vec![0u8; size];
    stream.read_exact(&mut response)?;
    let mut response = Bytes::from(response);
    let api = ApiKey::DescribeLogDirs;
    let header = ResponseHeader::decode(&mut response, api.response_header_version(VERSION))?;
    if header.correlation_id != 1 {
        bail!("response for correlation id {}", header.correlation_id);
    }
    let decoded = DescribeLogDirsResponse::decode(&mut response, VERSION)?;
    if response.has_remaining() {
        bail!("{} bytes after the response", response.remaining());
    }
    Ok(decoded)
}
