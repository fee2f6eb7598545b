//! InitProducerId: producer ids for idempotent producers (epoch 0, a new id each
//! time) and, through the transaction coordinator, for transactional ids (the same
//! id with a bumped epoch, fencing the previous producer). DescribeProducers: the
//! producers each partition knows, for operators.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};
use kafka_protocol::ResponseError;

use super::{blocking, fenced_as};
use crate::broker::Shared;
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

pub(super) async fn init_producer_id(
    shared: &Shared,
    session: &Session,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(fenced_as(e, version, 4).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = request.transactional_id.filter(|id| !id.0.is_empty()) {
        if let Err(code) = session.check_transactional_id(&id) {
            return failed(code);
        }
        let transactions = Arc::clone(&shared.transactions);
        let expected = (version >= 3 && request.producer_id.0 >= 0)
            .then_some((request.producer_id.0, request.producer_epoch));
        let timeout = i64::from(request.transaction_timeout_ms);
        let result =
            blocking(move || transactions.init_producer_id(id.0.as_str(), timeout, expected)).await;
        return match result {
            Ok((producer_id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            Err(error) => failed(error),
        };
    }
    if !session.may_write_idempotently() {
        return failed(ResponseError::ClusterAuthorizationFailed);
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

pub(super) fn describe_producers(
    shared: &Shared,
    session: &Session,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = shared.cluster.topic(wanted.name.0.as_str());
            let readable = session.allows(Operation::Read, &Resource::topic(&wanted.name));
            let partitions = wanted
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    if !readable {
                        return response
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let partition = topic.as_ref().and_then(|t| t.partition(*index));
                    let Some(partition) = partition else {
                        return response
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let producers = partition
                        .producers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .active();
                    response.with_active_producers(
                        producers
                            .into_iter()
                            .map(|(id, epoch, last_sequence, coordinator_epoch, txn_start)| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(id))
                                    .with_producer_epoch(i32::from(epoch))
                                    .with_last_sequence(last_sequence)
                                    .with_last_timestamp(-1)
                                    .with_coordinator_epoch(coordinator_epoch)
                                    .with_current_txn_start_offset(
                                        txn_start.map_or(-1, |o| o as i64),
                                    )
                            })
                            .collect(),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
