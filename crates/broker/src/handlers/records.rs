//! DeleteRecords: moves a partition's log start offset forward (the data before it
//! becomes unreadable at once and is removed segment by segment).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::blocking;
use crate::cluster::Cluster;
use crate::protocol::log_error_code;
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// Offset -1 means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub(super) async fn delete(
    cluster: &Arc<Cluster>,
    session: &Session,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let names = request.topics.iter().map(|t| t.name.0.as_str());
    let denied = session.denied_names(Operation::Delete, Resource::topic, names);
    let cluster = Arc::clone(cluster);
    blocking(move || {
        let topics = request
            .topics
            .into_iter()
            .map(|wanted| {
                let topic = cluster.topic(wanted.name.0.as_str());
                let allowed = !denied.contains(wanted.name.0.as_str());
                let partitions = wanted
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1);
                        let partition = topic.as_ref().and_then(|t| t.partition(p.partition_index));
                        if !allowed {
                            return result
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let Some(partition) = partition else {
                            return result
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        let log = &partition.log;
                        let end = partition.high_watermark();
                        let target = match p.offset {
                            HIGH_WATERMARK => Ok(end),
                            o => u64::try_from(o)
                                .ok()
                                .filter(|o| *o <= end)
                                .ok_or(ResponseError::OffsetOutOfRange),
                        };
                        match target.and_then(|t| {
                            log.delete_records_before(t).map_err(|e| log_error_code(&e))
                        }) {
                            Ok(low_watermark) => result.with_low_watermark(low_watermark as i64),
                            Err(code) => result.with_error_code(code.code()),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(wanted.name)
                    .with_partitions(partitions)
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    })
    .await
}
