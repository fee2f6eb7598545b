//! Produce: append each partition's record batches to its log, as sent (validated, base
//! offset patched in place, no re-encoding). acks=0 gets no response, acks=1 is
//! answered once written, acks=all once the topic's flush policy is met (for `always`,
//! after an fdatasync shared with concurrent producers).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use strom_log::{AppendInfo, BatchHeader, PartitionLog};

use super::{str_bytes, Reply};
use crate::cluster::{Cluster, Topic};
use crate::protocol::{encode_response, log_error_code, FrameError, Header};

/// A partition whose acks=all answer waits for durability.
struct DurabilityWait {
    topic: usize,
    partition: usize,
    log: Arc<PartitionLog>,
    info: AppendInfo,
}

pub(super) async fn handle(
    cluster: &Arc<Cluster>,
    request: ProduceRequest,
    header: &Header,
) -> Result<Reply, FrameError> {
    let version = header.api_version;
    let acks = request.acks;
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
        for (index, records) in partitions {
            let outcome = if !matches!(acks, -1..=1) {
                Err((ResponseError::InvalidRequiredAcks, None))
            } else {
                append(topic.as_deref(), index, records, missing)
            };
            let response = PartitionProduceResponse::default().with_index(index);
            partition_responses.push(match outcome {
                Ok((log, info)) => {
                    if acks == -1 {
                        waits.push(DurabilityWait {
                            topic: topic_index,
                            partition: partition_responses.len(),
                            log,
                            info,
                        });
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
    let mut response = ProduceResponse::default().with_responses(responses);
    let correlation_id = header.correlation_id;
    match acks {
        0 => Ok(Reply::None),
        -1 if !waits.is_empty() => Ok(Reply::Later(tokio::spawn(async move {
            let failures = tokio::task::spawn_blocking(move || {
                waits
                    .into_iter()
                    .filter_map(|w| {
                        let result = w.log.await_durability(&w.info);
                        result.err().map(|e| (w.topic, w.partition, e))
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

type AppendOutcome = Result<(Arc<PartitionLog>, AppendInfo), (ResponseError, Option<String>)>;

/// Appends one partition's record set.
fn append(
    topic: Option<&Topic>,
    index: i32,
    records: Option<Bytes>,
    missing: ResponseError,
) -> AppendOutcome {
    let partition = topic
        .and_then(|t| {
            usize::try_from(index)
                .ok()
                .and_then(|i| t.partitions.get(i))
        })
        .ok_or((missing, None))?;
    let records = records.filter(|r| !r.is_empty()).ok_or((
        ResponseError::CorruptMessage,
        Some("empty record set".to_string()),
    ))?;
    if has_producer_id(&records) {
        // Idempotent and transactional producers first get an id from InitProducerId,
        // which strom does not serve yet; a batch claiming one cannot be deduplicated.
        return Err((
            ResponseError::InvalidProducerIdMapping,
            Some("idempotent and transactional produce are not supported yet".into()),
        ));
    }
    let mut buf = records
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    match partition.log.append(&mut buf) {
        Ok(info) => {
            partition.appended.notify_waiters();
            Ok((Arc::clone(&partition.log), info))
        }
        Err(e) => Err((log_error_code(&e), Some(e.to_string()))),
    }
}

/// Whether any batch header in the record set names a producer id.
fn has_producer_id(records: &[u8]) -> bool {
    let mut at = 0;
    while let Some(rest) = records.get(at..) {
        match BatchHeader::parse_unchecked(rest) {
            Ok(header) if header.producer_id >= 0 => return true,
            Ok(header) => at += header.size_bytes(),
            // Malformed: the append's validation reports it precisely.
            Err(_) => return false,
        }
    }
    false
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
