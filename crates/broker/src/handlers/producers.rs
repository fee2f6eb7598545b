//! InitProducerId: producer ids for idempotent producers (epoch 0, a new id each
//! time). Transactional ids wait for the transaction coordinator.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::blocking;
use crate::broker::Shared;

pub(super) async fn init_producer_id(
    shared: &Shared,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return failed(ResponseError::CoordinatorNotAvailable);
    }
    let allocator = Arc::clone(&shared.producer_ids);
    match blocking(move || allocator.next()).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => {
            tracing::error!(%error, "cannot reserve producer ids");
            failed(ResponseError::KafkaStorageError)
        }
    }
}
