//! ListOffsets: the earliest and latest offsets, the first offset at or after a
//! timestamp, and the record with the largest timestamp (KIP-734). For read_committed
//! clients the latest offset is the last stable offset.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use crate::cluster::{Cluster, Partition};
use crate::protocol::log_error_code;
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// ListOffsets' `isolation_level` for read_committed.
const READ_COMMITTED: i8 = 1;

pub(super) fn handle(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = cluster.topic(wanted.name.0.as_str());
            let denied = !session.allows(Operation::Describe, &Resource::topic(&wanted.name));
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let partition = topic.as_ref().and_then(|t| t.partition(p.partition_index));
                    let outcome = match partition {
                        _ if denied => Err(ResponseError::TopicAuthorizationFailed),
                        None => Err(ResponseError::UnknownTopicOrPartition),
                        Some(_) if p.current_leader_epoch > 0 => {
                            Err(ResponseError::UnknownLeaderEpoch)
                        }
                        Some(partition) => lookup(
                            partition,
                            p.timestamp,
                            request.isolation_level == READ_COMMITTED,
                            version,
                        ),
                    };
                    // Leader epochs exist from v4; the only epoch is 0.
                    let epoch = if version >= 4 { 0 } else { -1 };
                    match outcome {
                        Ok(Some((offset, timestamp))) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch),
                        Ok(None) => response.with_leader_epoch(epoch),
                        Err(code) => response.with_error_code(code.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp)` for the requested timestamp, or `None` when no record
/// matches (Kafka answers offset -1, timestamp -1).
fn lookup(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
    version: i16,
) -> Result<Option<(i64, i64)>, ResponseError> {
    let log = &partition.log;
    let found = match timestamp {
        LATEST if read_committed => Some((partition.last_stable_offset() as i64, -1)),
        LATEST => Some((partition.high_watermark() as i64, -1)),
        EARLIEST | EARLIEST_LOCAL => Some((log.log_start_offset() as i64, -1)),
        MAX_TIMESTAMP if version >= 7 => log
            .max_timestamp()
            .map_err(|e| log_error_code(&e))?
            .map(|(offset, ts)| (offset as i64, ts)),
        // No tiered storage: nothing is tiered.
        LATEST_TIERED => None,
        t if t >= 0 => log
            .offset_for_timestamp(t)
            .map_err(|e| log_error_code(&e))?
            .map(|(offset, ts)| (offset as i64, ts)),
        _ => return Err(ResponseError::InvalidRequest),
    };
    Ok(found)
}
