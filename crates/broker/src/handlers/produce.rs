//! Produce: append each partition's record batches to its log, as sent (validated, base
//! offset patched in place, no re-encoding unless the topic's `compression.type` names
//! another codec than the batch's). acks=0 gets no response, acks=1 is
//! answered once written, acks=all once the topic's flush policy is met (for `always`,
//! after an fdatasync shared with concurrent producers).
//!
//! Batches with a producer id go through the partition's producer state
//! (idempotence); transactional ones are also verified with the transaction
//! coordinator (KIP-890: the partition must be in the producer's open transaction;
//! from Produce v12, transactions V2, it is added implicitly), under the partition's
//! lock, so that a batch verified as part of a transaction is in the log before that
//! transaction's marker. Control batches are the broker's own: clients may not send them.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use strom_log::{AppendInfo, BatchHeader};

use super::{str_bytes, Reply};
use crate::broker::Shared;
use crate::cluster::producer_state::{BatchSequence, Check};
use crate::cluster::{Partition, Topic};
use crate::coord::transactions::TransactionCoordinator;
use crate::protocol::{encode_response, log_error_code, FrameError, Header};

/// A partition whose acks=all answer waits for durability.
struct DurabilityWait {
    topic: usize,
    /// Position of the partition in the topic's response.
    slot: usize,
    partition: Arc<Partition>,
    info: AppendInfo,
}

pub(super) async fn handle(
    shared: &Shared,
    request: ProduceRequest,
    header: &Header,
    unauthorized: Vec<TopicProduceResponse>,
) -> Result<Reply, FrameError> {
    let (cluster, metrics) = (&shared.cluster, &shared.metrics);
    let version = header.api_version;
    let acks = request.acks;
    let transaction = request.transactional_id.map(|id| Transaction {
        id: id.0.to_string(),
        coordinator: &shared.transactions,
        implicit_add: version >= 12,
    });
    // Take the record sets out and drop the rest of the request, so that a record set
    // is usually the only reference to its bytes and can be patched without a copy.
    let topics: Vec<_> = request
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions: Vec<(i32, Option<Bytes>)> = t
                .partition_data
                .into_iter()
                .map(|p| (p.index, p.records))
                .collect();
            (t.name, t.topic_id, partitions)
        })
        .collect();
    let mut responses = Vec::with_capacity(topics.len());
    let mut waits = Vec::new();
    for (topic_index, (name, topic_id, partitions)) in topics.into_iter().enumerate() {
        let topic = if version >= 13 {
            cluster.topic_by_id(&topic_id)
        } else {
            cluster.topic(name.0.as_str())
        };
        let missing = if version >= 13 && topic.is_none() {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partition_responses = Vec::with_capacity(partitions.len());
        let topic_name = topic
            .as_ref()
            .map_or_else(|| name.0.to_string(), |t| t.name.clone());
        for (index, records) in partitions {
            let bytes = records.as_ref().map_or(0, Bytes::len);
            let outcome = if !matches!(acks, -1..=1) {
                Err((ResponseError::InvalidRequiredAcks, None))
            } else {
                append(
                    topic.as_deref(),
                    index,
                    records,
                    missing,
                    transaction.as_ref(),
                    cluster.config.producer_ids_per_partition_max,
                )
            };
            let response = PartitionProduceResponse::default().with_index(index);
            match &outcome {
                Ok((_, info)) if info.record_count > 0 => {
                    metrics.produced(&topic_name, bytes, info.record_count)
                }
                Ok(_) => {}
                Err((code, _)) => metrics.produce_error(&topic_name, &format!("{code:?}")),
            }
            partition_responses.push(match outcome {
                Ok((partition, info)) => {
                    if acks == -1 {
                        waits.push(DurabilityWait {
                            topic: topic_index,
                            slot: partition_responses.len(),
                            partition,
                            info,
                        });
                    } else {
                        // Nobody waits for the flush, but the records are invisible
                        // until it (under `always`): start one.
                        partition.request_flush();
                    }
                    response
                        .with_base_offset(info.base_offset as i64)
                        .with_log_append_time_ms(info.log_append_time_ms.unwrap_or(-1))
                        .with_log_start_offset(info.log_start_offset as i64)
                }
                Err((code, message)) => failed(response, code, message),
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    responses.extend(unauthorized);
    let mut response = ProduceResponse::default().with_responses(responses);
    let correlation_id = header.correlation_id;
    match acks {
        0 => Ok(Reply::None),
        -1 if !waits.is_empty() => Ok(Reply::Later(tokio::spawn(async move {
            let failures = tokio::task::spawn_blocking(move || {
                waits
                    .into_iter()
                    .filter_map(|w| {
                        let result = w.partition.log.await_durability(&w.info);
                        // The high watermark may have moved: wake long-polling fetches.
                        w.partition.appended.notify_waiters();
                        result.err().map(|e| (w.topic, w.slot, e))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for (topic, partition, error) in failures {
                let slot = &mut response.responses[topic].partition_responses[partition];
                *slot = failed(
                    PartitionProduceResponse::default().with_index(slot.index),
                    log_error_code(&error),
                    Some(error.to_string()),
                );
            }
            encode_response(ApiKey::Produce, version, correlation_id, &response)
        }))),
        _ => encode_response(ApiKey::Produce, version, correlation_id, &response).map(Reply::Ready),
    }
}

type AppendOutcome = Result<(Arc<Partition>, AppendInfo), (ResponseError, Option<String>)>;

/// The transactional id a produce request names, and how to verify against it.
struct Transaction<'a> {
    id: String,
    coordinator: &'a TransactionCoordinator,
    /// Transactions V2: a partition not yet in the transaction is added.
    implicit_add: bool,
}

/// Appends one partition's record set.
fn append(
    topic: Option<&Topic>,
    index: i32,
    records: Option<Bytes>,
    missing: ResponseError,
    transaction: Option<&Transaction<'_>>,
    producer_ids_max: usize,
) -> AppendOutcome {
    let partition = topic
        .and_then(|t| t.partition(index))
        .ok_or((missing, None))?;
    let records = records.filter(|r| !r.is_empty()).ok_or((
        ResponseError::CorruptMessage,
        Some("empty record set".to_string()),
    ))?;
    let mut buf = records
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let sequences = batch_sequences(&buf)
        .map_err(|why| (ResponseError::InvalidRecord, Some(why.to_string())))?;
    // A topic with its own compression.type stores batches in that codec.
    if let Some(converted) = partition
        .log
        .conform_compression(&buf)
        .map_err(|e| (log_error_code(&e), Some(e.to_string())))?
    {
        buf = BytesMut::from(&converted[..]);
    }
    if sequences.is_empty() {
        return match partition.log.append(&mut buf) {
            Ok(info) => {
                partition.appended.notify_waiters();
                Ok((Arc::clone(partition), info))
            }
            Err(e) => Err((log_error_code(&e), Some(e.to_string()))),
        };
    }
    let topic_partition = topic.map(|t| (t.name.clone(), index));
    append_idempotent(
        partition,
        &mut buf,
        &sequences,
        topic_partition.zip(transaction),
        producer_ids_max,
    )
}

/// Appends the batches of an idempotent producer: a retry of a batch already in the
/// log is acknowledged with its original offsets and not written again; a gap in
/// the sequence or a fenced epoch is refused and nothing is written. A partition
/// remembers at most `producer_ids_max` producers. Transactional
/// batches must belong to the request's transaction (`transaction`: the partition
/// and the transactional id).
fn append_idempotent(
    partition: &Arc<Partition>,
    buf: &mut BytesMut,
    sequences: &[Option<BatchSequence>],
    transaction: Option<((String, i32), &Transaction<'_>)>,
    producer_ids_max: usize,
) -> AppendOutcome {
    let refuse = |code: ResponseError, why: &str| Err((code, Some(why.to_string())));
    let Some(Some(first)) = sequences.first().copied() else {
        return refuse(
            ResponseError::InvalidRecord,
            "a record set mixes batches with and without a producer id",
        );
    };
    if sequences
        .iter()
        .any(|s| s.is_none_or(|s| s.producer_id != first.producer_id))
    {
        return refuse(ResponseError::InvalidRecord, "a record set mixes producers");
    }
    if sequences
        .iter()
        .flatten()
        .any(|s| s.transactional != first.transactional)
    {
        return refuse(
            ResponseError::InvalidRecord,
            "a record set mixes transactional and plain batches",
        );
    }
    // Transactions V2 add the partition to the transaction implicitly; that is a
    // durable write to the transaction log, done before the producers' lock is taken
    // so no other producer of this partition waits for its fsync. Under the lock the
    // batch is verified again (without adding), so a transaction that ended
    // meanwhile still refuses it.
    if let (true, Some((topic_partition, transaction))) = (first.transactional, &transaction) {
        if transaction.implicit_add {
            if let Err(code) = transaction.coordinator.verify(
                &transaction.id,
                first.producer_id,
                first.epoch,
                topic_partition,
                true,
            ) {
                return refuse(
                    code,
                    "the partition cannot join the producer's open transaction",
                );
            }
        }
    }
    let mut producers = partition.producers();
    match producers.check(&first) {
        Err(code) => {
            return refuse(
                code,
                "the batch does not follow the producer's last sequence",
            )
        }
        Ok(Check::Duplicate(base_offset, last_offset)) => {
            return Ok((
                Arc::clone(partition),
                AppendInfo {
                    base_offset,
                    last_offset,
                    batch_count: 0,
                    record_count: 0,
                    log_append_time_ms: None,
                    log_start_offset: partition.log.log_start_offset(),
                },
            ));
        }
        Ok(Check::Append) => {}
    }
    if first.transactional {
        let Some((topic_partition, transaction)) = transaction else {
            return refuse(
                ResponseError::InvalidTxnState,
                "transactional records need the request's transactional id",
            );
        };
        if let Err(code) = transaction.coordinator.verify(
            &transaction.id,
            first.producer_id,
            first.epoch,
            &topic_partition,
            false,
        ) {
            return refuse(
                code,
                "the partition is not part of the producer's open transaction",
            );
        }
    }
    // Later batches of the same record set must continue the sequence.
    if sequences
        .windows(2)
        .any(|w| matches!(w, [Some(a), Some(b)] if b.first_sequence != a.last_sequence.wrapping_add(1) && b.first_sequence != 0))
    {
        return refuse(ResponseError::OutOfOrderSequenceNumber, "the record set's batches are not consecutive");
    }
    // Every check passed: the batch will be appended, so a new producer may take the
    // place of an idle one.
    match producers.make_room(first.producer_id, producer_ids_max) {
        Ok(None) => {}
        Ok(Some(evicted)) => {
            tracing::debug!(
                evicted,
                "a partition at its producer id bound forgot its least recent idle producer"
            );
        }
        Err(()) => {
            return refuse(
                ResponseError::ThrottlingQuotaExceeded,
                "every producer id this partition may hold has an open transaction",
            )
        }
    }
    let info = partition
        .log
        .append(buf)
        .map_err(|e| (log_error_code(&e), Some(e.to_string())))?;
    // The log patched each batch's base offset in place: record them.
    let mut at = 0;
    for sequence in sequences.iter().flatten() {
        let Ok(header) = BatchHeader::parse_unchecked(&buf[at..]) else {
            break;
        };
        producers.record(
            sequence,
            header.base_offset as u64,
            header.last_offset() as u64,
        );
        at += header.size_bytes();
    }
    drop(producers);
    partition.appended.notify_waiters();
    Ok((Arc::clone(partition), info))
}

/// The producer sequence of each batch in the record set (`None` for batches without
/// a producer id); empty when no batch has one. Malformed input yields what parsed, and
/// the append's validation reports the rest precisely. Control batches are refused.
fn batch_sequences(records: &[u8]) -> Result<Vec<Option<BatchSequence>>, &'static str> {
    let mut sequences = Vec::new();
    let mut at = 0;
    while let Some(Ok(header)) = records.get(at..).map(BatchHeader::parse_unchecked) {
        if header.is_control() {
            return Err("control batches are written by the broker only");
        }
        sequences.push(BatchSequence::of(&header));
        at += header.size_bytes();
    }
    if sequences.iter().all(Option::is_none) {
        sequences.clear();
    }
    Ok(sequences)
}

fn failed(
    response: PartitionProduceResponse,
    code: ResponseError,
    message: Option<String>,
) -> PartitionProduceResponse {
    response
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}
