//! The Kafka protocol as strom speaks it: which APIs and versions it serves, request
//! header parsing, response framing, and the one mapping from our errors to Kafka
//! error codes. Message bodies are decoded and encoded by the `kafka-protocol` crate.

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use strom_log::LogError;

mod request;
mod response_frame;

pub(crate) use request::{decode_request, Request};
use response_frame::FrameBuf;
pub(crate) use response_frame::ResponseFrame;

/// Every API strom serves, with the versions it accepts. ApiVersions advertises
/// exactly this table; the floors follow Kafka 4 (KIP-896), the ceilings are the
/// newest versions the codec crate knows.
pub(crate) const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ListConfigResources, 0, 1),
];

/// The versions of `api` strom serves, if it serves it at all.
pub(crate) fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// The parts of a request header the broker keeps (owned, so the frame buffer can be
/// released and produce batches patched in place without a copy).
#[derive(Debug, Clone)]
pub(crate) struct Header {
    /// The API, if the key is one Kafka defines.
    pub api_key: Result<ApiKey, i16>,
    /// Requested version of the API.
    pub api_version: i16,
    /// Echoed in the response so the client can match it.
    pub correlation_id: i32,
    /// The client's self-reported id, for logs.
    pub client_id: Option<String>,
}

/// Why a frame could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// Fewer bytes than even a request header needs.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// The header or body does not decode.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What we were decoding.
        what: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// An API key Kafka does not define, or one strom does not serve.
    #[error("unsupported API key {0}")]
    UnsupportedApi(i16),
    /// A version of a served API outside the advertised range.
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The requested version.
        version: i16,
    },
}

/// Parses the request header at the start of `frame`, leaving `frame` at the body.
pub(crate) fn decode_header(frame: &mut Bytes) -> Result<Header, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| key);
    // Unknown keys still have a v1 header (key, version, correlation id, client id),
    // enough to log the client before the connection is closed.
    let header_version = match api_key {
        Ok(api) => api.request_header_version(version),
        Err(_) => 1,
    };
    let header =
        RequestHeader::decode(frame, header_version).map_err(|e| FrameError::Malformed {
            what: "request header".into(),
            reason: e.to_string(),
        })?;
    Ok(Header {
        api_key,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|s| s.as_str().to_owned()),
    })
}

/// Decodes a request body of type `R` at `version`; trailing bytes are ignored.
pub(crate) fn decode_body<R: Decodable>(
    api: ApiKey,
    mut body: Bytes,
    version: i16,
) -> Result<R, FrameError> {
    let malformed = |reason: String| FrameError::Malformed {
        what: format!("{api:?} v{version} request"),
        reason,
    };
    let request = R::decode(&mut body, version).map_err(|e| malformed(e.to_string()))?;
    if !body.is_empty() {
        // Kafka ignores bytes after a request body and clients rely on it (librdkafka
        // 2.16 sends Metadata v13 with extra bytes), so strom does too.
        tracing::debug!(?api, version, trailing = ?&body[..], "ignoring bytes after the request body");
    }
    Ok(request)
}

/// Frames a response: size prefix, response header (its version depends on the API
/// and version), body.
pub(crate) fn encode_response<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<ResponseFrame, FrameError> {
    encode_response_sharing(api, version, correlation_id, response, &[])
}

/// [`encode_response`] for a response that holds `shared` record sets (a fetch's):
/// they are referenced by the frame instead of copied into it.
pub(crate) fn encode_response_sharing<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
    shared: &[Bytes],
) -> Result<ResponseFrame, FrameError> {
    let failed = |e: String| FrameError::Malformed {
        what: format!("{api:?} v{version} response"),
        reason: e,
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api.response_header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + response.compute_size(version)?))
        .map_err(|e| failed(e.to_string()))?;
    let shared_bytes: usize = shared.iter().map(Bytes::len).sum();
    let mut buf = FrameBuf::new((4 + size).saturating_sub(shared_bytes), shared);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .and_then(|()| response.encode(&mut buf, version))
        .map_err(|e| failed(e.to_string()))?;
    Ok(buf.finish())
}

/// The Kafka error code for a log error.
pub(crate) fn log_error_code(error: &LogError) -> ResponseError {
    match error {
        LogError::CorruptBatch { .. } => ResponseError::CorruptMessage,
        LogError::MissingKey { .. } => ResponseError::InvalidRecord,
        LogError::TimestampOutOfRange { .. } => ResponseError::InvalidTimestamp,
        LogError::RecordSetTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Partition { .. } => ResponseError::UnknownTopicOrPartition,
        LogError::Config(_) => ResponseError::InvalidConfig,
        LogError::Io { .. } | LogError::Failed { .. } | LogError::CorruptData { .. } => {
            ResponseError::KafkaStorageError
        }
        LogError::Locked { .. } => ResponseError::UnknownServerError,
    }
}
