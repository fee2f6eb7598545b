//! Transactions: AddPartitionsToTxn (the classic per-producer form, v0–3, and the
//! batched form, v4+, including verify-only checks), AddOffsetsToTxn, EndTxn,
//! TxnOffsetCommit, and the operator views DescribeTransactions and
//! ListTransactions. The work is the transaction coordinator's
//! ([`crate::coord::transactions`]); these turn requests into its calls and its
//! errors into the codes each version understands. Authorization as in Kafka: WRITE
//! on the transactional id for every transactional request, WRITE on the topics
//! added, READ on the group (and topics) whose offsets are committed, DESCRIBE on the
//! transactional ids an operator lists.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::ResponseError;
use strom_log::now_ms;

use super::{blocking, fenced_as, str_bytes};
use crate::broker::Shared;
use crate::coord::txn_state::TxnState;
use crate::coord::{CommittedOffset, OFFSET_METADATA_MAX_BYTES};
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

pub(super) async fn add_partitions(
    shared: &Shared,
    session: &Session,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let producer = Producer {
            id: request.v3_and_below_transactional_id,
            producer_id: request.v3_and_below_producer_id.0,
            epoch: request.v3_and_below_producer_epoch,
        };
        let results = add_one(
            shared,
            session,
            producer,
            request.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for txn in request.transactions {
        let id = txn.transactional_id.clone();
        let producer = Producer {
            id: txn.transactional_id,
            producer_id: txn.producer_id.0,
            epoch: txn.producer_epoch,
        };
        let topics = add_one(
            shared,
            session,
            producer,
            txn.topics,
            txn.verify_only,
            version,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(id)
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// The transactional producer a request speaks for.
struct Producer {
    id: TransactionalId,
    producer_id: i64,
    epoch: i16,
}

/// Adds (or, with `verify_only`, checks) one transaction's partitions. Unknown or
/// forbidden partitions fail the request: they get UNKNOWN_TOPIC_OR_PARTITION or
/// TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED, as in Kafka.
async fn add_one(
    shared: &Shared,
    session: &Session,
    producer: Producer,
    topics: Vec<AddPartitionsToTxnTopic>,
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let problem = |(topic, partition): &(String, i32)| {
        if !session.allows(Operation::Write, &Resource::topic(topic)) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else if shared
            .cluster
            .topic(topic)
            .is_none_or(|t| t.partition(*partition).is_none())
        {
            Some(ResponseError::UnknownTopicOrPartition)
        } else {
            None
        }
    };
    let problems: Vec<Option<ResponseError>> = wanted.iter().map(problem).collect();
    let Producer {
        id,
        producer_id,
        epoch,
    } = producer;
    let errors: Vec<Option<ResponseError>> = if let Err(code) = session.check_transactional_id(&id)
    {
        vec![Some(code); wanted.len()]
    } else if problems.iter().any(Option::is_some) {
        problems
            .into_iter()
            .map(|p| Some(p.unwrap_or(ResponseError::OperationNotAttempted)))
            .collect()
    } else {
        let transactions = Arc::clone(&shared.transactions);
        let id = id.0.to_string();
        let partitions = wanted.clone();
        blocking(move || {
            if verify_only {
                partitions
                    .iter()
                    .map(|p| transactions.verify(&id, producer_id, epoch, p, false).err())
                    .collect()
            } else {
                let error = transactions
                    .add(&id, producer_id, epoch, &partitions, &[])
                    .err();
                vec![error; partitions.len()]
            }
        })
        .await
    };
    let mut errors = errors.into_iter();
    topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = errors.next().flatten().map(|e| fenced_as(e, version, 2));
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name)
                .with_results_by_partition(partitions)
        })
        .collect()
}

pub(super) async fn add_offsets(
    shared: &Shared,
    session: &Session,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let group = request.group_id.0.to_string();
    let error = if let Err(code) = session.check_transactional_id(&request.transactional_id) {
        Some(code)
    } else if let Err(code) = session.check(Operation::Read, &Resource::group(&group)) {
        Some(code)
    } else if group.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else {
        let transactions = Arc::clone(&shared.transactions);
        blocking(move || {
            transactions
                .add(
                    request.transactional_id.0.as_str(),
                    request.producer_id.0,
                    request.producer_epoch,
                    &[],
                    &[group],
                )
                .err()
        })
        .await
    };
    AddOffsetsToTxnResponse::default()
        .with_error_code(error.map_or(0, |e| fenced_as(e, version, 2).code()))
}

pub(super) async fn end(
    shared: &Shared,
    session: &Session,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let transactions = Arc::clone(&shared.transactions);
    let allowed = session.check_transactional_id(&request.transactional_id);
    let result = blocking(move || {
        allowed?;
        transactions.end(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
            version >= 5,
        )
    })
    .await;
    match result {
        Ok((producer_id, epoch)) => EndTxnResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(error) => EndTxnResponse::default()
            .with_error_code(fenced_as(error, version, 2).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub(super) async fn commit_offsets(
    shared: &Shared,
    session: &Session,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = request.group_id.0.to_string();
    // From v3 the request names the consumer's member and generation; Kafka checks
    // them when given, like a plain commit's.
    let member_error = if let Err(code) = session.check_transactional_id(&request.transactional_id)
    {
        Some(code)
    } else if let Err(code) = session.check(Operation::Read, &Resource::group(&group)) {
        Some(code)
    } else if group.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else if version >= 3 && (request.generation_id >= 0 || !request.member_id.is_empty()) {
        shared
            .coordinator
            .check_commit(
                &group,
                request.member_id.as_str(),
                request.group_instance_id.as_deref(),
                request.generation_id,
                0,
            )
            .err()
            // A new-protocol (KIP-848) member's stale epoch: TxnOffsetCommit has no
            // STALE_MEMBER_EPOCH, Kafka answers ILLEGAL_GENERATION (abortable for the
            // producer, as for a classic member's stale generation).
            .map(|e| match e {
                ResponseError::StaleMemberEpoch => ResponseError::IllegalGeneration,
                other => other,
            })
    } else {
        None
    };
    let now = now_ms();
    let mut accepted = Vec::new();
    let mut errors: Vec<Vec<Option<ResponseError>>> = Vec::new();
    for topic in &request.topics {
        let known = shared.cluster.topic(topic.name.0.as_str());
        errors.push(
            topic
                .partitions
                .iter()
                .map(|p| {
                    if let Some(error) = member_error {
                        return Some(error);
                    }
                    if let Err(code) =
                        session.check(Operation::Read, &Resource::topic(topic.name.0.as_str()))
                    {
                        return Some(code);
                    }
                    if p.committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
                    {
                        return Some(ResponseError::OffsetMetadataTooLarge);
                    }
                    if known
                        .as_ref()
                        .and_then(|t| t.partition(p.partition_index))
                        .is_none()
                    {
                        return Some(ResponseError::UnknownTopicOrPartition);
                    }
                    accepted.push((
                        (topic.name.0.to_string(), p.partition_index),
                        CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            commit_timestamp: now,
                        },
                    ));
                    None
                })
                .collect(),
        );
    }
    let write_error = if accepted.is_empty() {
        None
    } else {
        let transactions = Arc::clone(&shared.transactions);
        let groups = Arc::clone(&shared.coordinator);
        let (id, producer_id, epoch) = (
            request.transactional_id.0.to_string(),
            request.producer_id.0,
            request.producer_epoch,
        );
        blocking(move || {
            transactions
                .commit_offsets(&id, producer_id, epoch, &group, version >= 5, || {
                    groups
                        .commit_pending(&group, producer_id, accepted)
                        .map_err(|error| {
                            tracing::warn!(%error, "transactional offset commit failed");
                            ResponseError::CoordinatorNotAvailable
                        })
                })
                .err()
        })
        .await
    };
    let topics = request
        .topics
        .into_iter()
        .zip(errors)
        .map(|(topic, errors)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(errors)
                .map(|(p, error)| {
                    let error = error.or(write_error).map(|e| fenced_as(e, version, 3));
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub(super) fn describe(
    shared: &Shared,
    session: &Session,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            if let Err(code) = session.check(Operation::Describe, &Resource::transactional_id(&id))
            {
                return TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(code.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1);
            }
            let Some(metadata) = shared.transactions.describe(id.0.as_str()) else {
                return TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1);
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, partition) in &metadata.partitions {
                match topics.last_mut() {
                    Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*partition),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(str_bytes(topic.clone())))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
            TransactionState::default()
                .with_transactional_id(id)
                .with_transaction_state(str_bytes(metadata.state.name()))
                .with_transaction_timeout_ms(metadata.timeout_ms as i32)
                .with_transaction_start_time_ms(metadata.started_ms)
                .with_producer_id(ProducerId(metadata.producer_id))
                .with_producer_epoch(metadata.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// Every state a ListTransactions filter may name.
const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub(super) fn list(
    shared: &Shared,
    session: &Session,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let (known, unknown): (Vec<_>, Vec<_>) = request
        .state_filters
        .into_iter()
        .partition(|f| STATES.iter().any(|s| s.name() == f.as_str()));
    let now = now_ms();
    let states = shared
        .transactions
        .describe_all()
        .into_iter()
        .filter(|t| session.permits(Operation::Describe, &Resource::transactional_id(&t.id)))
        .filter(|t| known.is_empty() || known.iter().any(|f| f.as_str() == t.metadata.state.name()))
        .filter(|t| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == t.metadata.producer_id)
        })
        .filter(|t| {
            request.duration_filter < 0
                || (t.metadata.started_ms >= 0
                    && now - t.metadata.started_ms > request.duration_filter)
        })
        .map(|t| {
            ListedState::default()
                .with_transactional_id(TransactionalId(str_bytes(t.id)))
                .with_producer_id(ProducerId(t.metadata.producer_id))
                .with_transaction_state(str_bytes(t.metadata.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
