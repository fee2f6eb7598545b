//! Test harness: an in-process broker on ephemeral ports, and a minimal client that
//! encodes requests and decodes responses with the `kafka-protocol` crate (a codec we
//! did not write), so tests check the server against someone else's reading of the
//! protocol. Real third-party clients are exercised in `tests/compat`.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use strom_broker::{Broker, BrokerConfig, BrokerHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A byte stream to a broker: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Starts a broker on `dir` with ephemeral ports and no HTTP endpoint.
pub async fn start(dir: &Path) -> BrokerHandle {
    start_with(BrokerConfig {
        http_addr: None,
        ..BrokerConfig::ephemeral(dir)
    })
    .await
}

/// Starts a broker with `config`.
pub async fn start_with(config: BrokerConfig) -> BrokerHandle {
    Broker::start(config).await.expect("broker starts")
}

/// One connection speaking the Kafka protocol.
pub struct Client {
    stream: Box<dyn Stream>,
    correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.expect("connect"))
    }

    /// A client speaking over an established `stream` (e.g. TLS).
    pub fn over(stream: impl Stream + 'static) -> Self {
        Client {
            stream: Box::new(stream),
            correlation_id: 0,
        }
    }

    /// Sends `request` at `version` and returns the decoded response.
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> R::Response
    where
        R::Response: Decodable,
    {
        let correlation_id = self.send_only(version, request).await;
        self.receive::<R>(version, correlation_id).await
    }

    /// Like [`Client::send`], but `None` instead of a panic when the connection fails
    /// (for tests that kill the broker under load).
    pub async fn try_send<R: Request>(&mut self, version: i16, request: &R) -> Option<R::Response>
    where
        R::Response: Decodable,
    {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id);
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).ok()?;
        request.encode(&mut body, version).ok()?;
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).await.ok()?;
        let mut response = self.read_frame().await?;
        let api = ApiKey::try_from(R::KEY).ok()?;
        let header =
            ResponseHeader::decode(&mut response, api.response_header_version(version)).ok()?;
        (header.correlation_id == self.correlation_id).then_some(())?;
        R::Response::decode(&mut response, version).ok()
    }

    /// Sends `request` without waiting for a response; returns its correlation id.
    pub async fn send_only<R: Request>(&mut self, version: i16, request: &R) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strom-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        self.write_frame(&body).await;
        self.correlation_id
    }

    /// Reads the next response, which must be for `correlation_id`.
    pub async fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response
    where
        R::Response: Decodable,
    {
        let mut frame = self.read_frame().await.expect("response frame");
        let api = ApiKey::try_from(R::KEY).expect("api key");
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .expect("decode response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "responses arrive in request order"
        );
        let response = R::Response::decode(&mut frame, version).expect("decode response");
        assert!(
            !frame.has_remaining(),
            "{} bytes after the response",
            frame.remaining()
        );
        response
    }

    /// Writes one frame: size prefix then `body`.
    pub async fn write_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_i32(body.len() as i32);
        frame.put_slice(body);
        self.stream.write_all(&frame).await.expect("write");
    }

    /// Writes raw bytes, framed or not.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let size = self.stream.read_i32().await.ok()?;
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker has closed this connection (reads hit end of stream).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.stream.read(&mut buf).await, Ok(0) | Err(_))
    }
}

/// A record to encode: key, value, timestamp.
pub type RecordSpec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// A v2 record batch, encoded by the `kafka-protocol` crate.
pub fn batch(records: &[RecordSpec<'_>]) -> Bytes {
    producer_batch(records, -1, -1, -1)
}

/// A v2 record batch of an idempotent producer: producer id, epoch and the sequence
/// number of its first record.
pub fn producer_batch(
    records: &[RecordSpec<'_>],
    producer_id: i64,
    epoch: i16,
    first_sequence: i32,
) -> Bytes {
    encode_batch(records, producer_id, epoch, first_sequence, false)
}

/// A v2 record batch of a transactional producer.
#[allow(dead_code)] // not every test binary writes transactions
pub fn txn_batch(
    records: &[RecordSpec<'_>],
    producer_id: i64,
    epoch: i16,
    first_sequence: i32,
) -> Bytes {
    encode_batch(records, producer_id, epoch, first_sequence, true)
}

fn encode_batch(
    records: &[RecordSpec<'_>],
    producer_id: i64,
    epoch: i16,
    first_sequence: i32,
    transactional: bool,
) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, timestamp))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if first_sequence < 0 {
                i as i32 - 1
            } else {
                first_sequence + i as i32
            },
            timestamp: *timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        records.iter(),
        &options,
        None::<fn(&mut BytesMut, &mut BytesMut, Compression) -> anyhow::Result<()>>,
    )
    .expect("encode batch");
    buf.freeze()
}

/// Values of every record in a record set, in order, decoded by `kafka-protocol`.
pub fn values(records: &Bytes) -> Vec<Vec<u8>> {
    records_of(records)
        .into_iter()
        .map(|r| r.value.map(|v| v.to_vec()).unwrap_or_default())
        .collect()
}

/// Every record in a record set, decoded by `kafka-protocol`.
pub fn records_of(records: &Bytes) -> Vec<kafka_protocol::records::Record> {
    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    let mut buf = records.clone();
    let mut out = Vec::new();
    while buf.has_remaining() {
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut buf,
            None::<fn(&mut Bytes, Compression) -> anyhow::Result<Bytes>>,
        )
        .expect("decode records");
        out.extend(set.records);
    }
    out
}

/// A plain HTTP/1.1 GET; returns (status, body).
#[allow(dead_code)] // only the HTTP tests use it
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: strom\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
