//! ApiVersions: the first request of every client, telling it which APIs and versions
//! strom serves. A version newer than strom knows gets a v0 response with
//! UNSUPPORTED_VERSION and the full list, so the client can retry with one it shares.
//! From v3 it also announces the `transaction.version` feature at level 2, so that
//! clients that know transactions V2 (KIP-890, Kafka 4) use them.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::Reply;
use crate::protocol::{encode_response, FrameError, Header, SUPPORTED_APIS};

/// The transactions protocol level strom offers (2: KIP-890's V2).
const TRANSACTION_VERSION: i16 = 2;

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
    if header.api_version >= 3 {
        let feature = kafka_protocol::protocol::StrBytes::from_static_str("transaction.version");
        response = response
            .with_supported_features(vec![SupportedFeatureKey::default()
                .with_name(feature.clone())
                .with_min_version(0)
                .with_max_version(TRANSACTION_VERSION)])
            .with_finalized_features_epoch(0)
            .with_finalized_features(vec![FinalizedFeatureKey::default()
                .with_name(feature)
                .with_min_version_level(TRANSACTION_VERSION)
                .with_max_version_level(TRANSACTION_VERSION)]);
    }
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
