//! ApiVersions: the first request of every client, telling it which APIs and versions
//! strom serves. A version newer than strom knows gets a v0 response with
//! UNSUPPORTED_VERSION and the full list, so the client can retry with one it shares.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::Reply;
use crate::protocol::{encode_response, FrameError, Header, SUPPORTED_APIS};

pub(super) fn handle(
    header: &Header,
    request: Option<ApiVersionsRequest>,
) -> Result<Reply, FrameError> {
    let mut response = ApiVersionsResponse::default().with_api_keys(
        SUPPORTED_APIS
            .iter()
            .map(|(api, min, max)| {
                ApiVersion::default()
                    .with_api_key(*api as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    );
    let answer_version = if request.is_some() {
        header.api_version
    } else {
        response.error_code = ResponseError::UnsupportedVersion.code();
        0
    };
    encode_response(
        ApiKey::ApiVersions,
        answer_version,
        header.correlation_id,
        &response,
    )
    .map(Reply::Ready)
}
