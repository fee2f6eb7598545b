//! Request handlers, one module per API family, and the dispatch from API key to
//! handler. A handler turns a decoded request into a response; errors that concern
//! one topic or partition become error codes inside the response, and only a request
//! that cannot be decoded at all ends the connection.

mod api_versions;
mod cluster_info;
mod configs;
mod fetch;
mod list_offsets;
mod metadata;
mod produce;
mod records;
mod topics;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::task::JoinHandle;

use crate::broker::Shared;
use crate::protocol::{self, decode_body, encode_response, FrameError, Header};

/// What the connection sends back for one request.
pub(crate) enum Reply {
    /// Nothing (produce with acks=0).
    None,
    /// This response, now.
    Ready(BytesMut),
    /// The response this task produces (it waits for a sync or for data).
    Later(JoinHandle<Result<BytesMut, FrameError>>),
}

/// Decodes the body of the request `header` describes and runs its handler.
pub(crate) async fn dispatch(
    shared: &Shared,
    header: &Header,
    body: Bytes,
) -> Result<Reply, FrameError> {
    let api = header.api_key.map_err(FrameError::UnsupportedApi)?;
    let version = header.api_version;
    if api == ApiKey::ApiVersions {
        return api_versions::handle(header, body);
    }
    let (min, max) =
        protocol::supported_versions(api).ok_or(FrameError::UnsupportedApi(api as i16))?;
    if version < min || version > max {
        return Err(FrameError::UnsupportedVersion { api, version });
    }
    let cluster = &shared.cluster;
    let ready = |response: &dyn EncodeResponse| response.frame(api, version, header.correlation_id);
    match api {
        ApiKey::Produce => produce::handle(cluster, decode(api, body, version)?, header).await,
        ApiKey::Fetch => Ok(fetch::handle(cluster, decode(api, body, version)?, header)),
        ApiKey::ListOffsets => ready(&list_offsets::handle(
            cluster,
            decode(api, body, version)?,
            version,
        )),
        ApiKey::Metadata => {
            ready(&metadata::handle(cluster, decode(api, body, version)?, version).await)
        }
        ApiKey::CreateTopics => {
            ready(&topics::create(cluster, decode(api, body, version)?, version).await)
        }
        ApiKey::DeleteTopics => {
            ready(&topics::delete(cluster, decode(api, body, version)?, version).await)
        }
        ApiKey::CreatePartitions => {
            ready(&topics::create_partitions(cluster, decode(api, body, version)?).await)
        }
        ApiKey::DeleteRecords => {
            ready(&records::delete(cluster, decode(api, body, version)?).await)
        }
        ApiKey::DescribeConfigs => ready(&configs::describe(
            cluster,
            decode(api, body, version)?,
            version,
        )),
        ApiKey::AlterConfigs => ready(&configs::alter(cluster, decode(api, body, version)?).await),
        ApiKey::IncrementalAlterConfigs => {
            ready(&configs::incremental_alter(cluster, decode(api, body, version)?).await)
        }
        ApiKey::DescribeCluster => ready(&cluster_info::describe_cluster(
            cluster,
            decode(api, body, version)?,
        )),
        ApiKey::DescribeLogDirs => ready(&cluster_info::describe_log_dirs(
            cluster,
            decode(api, body, version)?,
        )),
        _ => Err(FrameError::UnsupportedApi(api as i16)),
    }
}

fn decode<R: Decodable>(api: ApiKey, body: Bytes, version: i16) -> Result<R, FrameError> {
    decode_body(api, body, version)
}

/// A response that can be framed (object-safe wrapper over [`Encodable`]).
trait EncodeResponse {
    fn frame(&self, api: ApiKey, version: i16, correlation_id: i32) -> Result<Reply, FrameError>;
}

impl<R: Encodable> EncodeResponse for R {
    fn frame(&self, api: ApiKey, version: i16, correlation_id: i32) -> Result<Reply, FrameError> {
        encode_response(api, version, correlation_id, self).map(Reply::Ready)
    }
}

/// Runs blocking work (metadata changes sync the metadata log) off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A protocol string from a Rust one.
fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
