//! Committed offsets: OffsetCommit, OffsetFetch (single and batched groups) and
//! OffsetDelete. A commit is answered after it is synced to `__consumer_offsets`.
//! OffsetFetch with `require_stable` (read_committed consumers) answers
//! UNSTABLE_OFFSET_COMMIT for a partition an open transaction has committed to, so
//! the consumer waits for the transaction's outcome instead of reading a stale offset.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::ResponseError;
use strom_log::now_ms;

use super::{blocking, str_bytes};
use crate::broker::Shared;
use crate::coord::{CommittedOffset, GroupOffsets, OFFSET_METADATA_MAX_BYTES};
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

pub(super) async fn commit(
    shared: &Shared,
    session: &Session,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let coordinator = Arc::clone(&shared.coordinator);
    let group_error = if group.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else if let Err(code) = session.check(Operation::Read, &Resource::group(&group)) {
        Some(code)
    } else {
        coordinator
            .check_commit(
                &group,
                request.member_id.as_str(),
                request.group_instance_id.as_deref(),
                request.generation_id_or_member_epoch,
                version,
            )
            .err()
    };
    let now = now_ms();
    let mut accepted = Vec::new();
    // (topic index, partition index, error) of every partition.
    let mut results: Vec<Vec<(i32, Option<ResponseError>)>> = Vec::new();
    for topic in &request.topics {
        let known = shared.cluster.topic(topic.name.0.as_str());
        let readable =
            group_error.is_some() || session.allows(Operation::Read, &Resource::topic(&topic.name));
        let mut out = Vec::new();
        for p in &topic.partitions {
            let error = if let Some(e) = group_error {
                Some(e)
            } else if !readable {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
            {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else if known
                .as_ref()
                .and_then(|t| t.partition(p.partition_index))
                .is_none()
            {
                Some(ResponseError::UnknownTopicOrPartition)
            } else {
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
            };
            out.push((p.partition_index, error));
        }
        results.push(out);
    }
    let write_error = if accepted.is_empty() {
        None
    } else {
        let group = group.clone();
        blocking(move || coordinator.commit(&group, accepted))
            .await
            .err()
            .map(|e| {
                tracing::warn!(error = %e, "offset commit failed");
                ResponseError::CoordinatorNotAvailable
            })
    };
    let topics = request
        .topics
        .into_iter()
        .zip(results)
        .map(|(topic, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, error)| {
                            let error = error.or(write_error);
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(error.map_or(0, |e| e.code()))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// A partition's committed offset as OffsetFetch reports it: -1 and no metadata when
/// nothing was committed, and the partition's error.
struct Committed {
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

/// Looks up committed offsets for one OffsetFetch group.
struct Lookup<'a> {
    shared: &'a Shared,
    group: &'a str,
    offsets: GroupOffsets,
    require_stable: bool,
}

impl Lookup<'_> {
    fn committed(&self, topic: &str, partition: i32) -> Committed {
        if self.require_stable
            && self
                .shared
                .coordinator
                .has_pending(self.group, topic, partition)
        {
            return Committed {
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error: ResponseError::UnstableOffsetCommit.code(),
            };
        }
        match self.offsets.get(&(topic.to_string(), partition)) {
            Some(c) => Committed {
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.clone().unwrap_or_default(),
                error: 0,
            },
            None => Committed {
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error: 0,
            },
        }
    }
}

/// The requested topics and partitions, or every committed one when `None`.
fn wanted(
    offsets: &GroupOffsets,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<i32>)> {
    topics.unwrap_or_else(|| {
        let mut all: Vec<(TopicName, Vec<i32>)> = Vec::new();
        for (topic, partition) in offsets.keys() {
            match all.last_mut() {
                Some((name, parts)) if name.0.as_str() == topic => parts.push(*partition),
                _ => all.push((TopicName(str_bytes(topic.clone())), vec![*partition])),
            }
        }
        all
    })
}

pub(super) fn fetch(
    shared: &Shared,
    session: &Session,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let coordinator = &shared.coordinator;
    let group_denied = |group: &str| {
        session
            .check(Operation::Describe, &Resource::group(group))
            .err()
    };
    // Topics the principal may not describe are left out, as Kafka does.
    let visible = |topics: Vec<(TopicName, Vec<i32>)>| -> Vec<(TopicName, Vec<i32>)> {
        topics
            .into_iter()
            .filter(|(name, _)| session.permits(Operation::Describe, &Resource::topic(name)))
            .collect()
    };
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                if let Some(code) = group_denied(&g.group_id) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code.code());
                }
                let group_id = g.group_id.clone();
                let lookup = Lookup {
                    shared,
                    group: group_id.0.as_str(),
                    offsets: coordinator.offsets(g.group_id.0.as_str()),
                    require_stable: request.require_stable,
                };
                let topics = wanted(
                    &lookup.offsets,
                    g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| (t.name, t.partition_indexes))
                            .collect()
                    }),
                );
                OffsetFetchResponseGroup::default()
                    .with_group_id(group_id.clone())
                    .with_topics(
                        visible(topics)
                            .into_iter()
                            .map(|(name, partitions)| {
                                let parts = partitions
                                    .into_iter()
                                    .map(|p| {
                                        let c = lookup.committed(name.0.as_str(), p);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(c.offset)
                                            .with_committed_leader_epoch(c.leader_epoch)
                                            .with_metadata(Some(str_bytes(c.metadata)))
                                            .with_error_code(c.error)
                                    })
                                    .collect();
                                OffsetFetchResponseTopics::default()
                                    .with_name(name)
                                    .with_partitions(parts)
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if let Some(code) = group_denied(&request.group_id) {
        return OffsetFetchResponse::default().with_error_code(code.code());
    }
    let lookup = Lookup {
        shared,
        group: request.group_id.0.as_str(),
        offsets: coordinator.offsets(request.group_id.0.as_str()),
        require_stable: version >= 7 && request.require_stable,
    };
    let topics = wanted(
        &lookup.offsets,
        request.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        }),
    );
    let epoch_supported = version >= 5;
    OffsetFetchResponse::default().with_topics(
        visible(topics)
            .into_iter()
            .map(|(name, partitions)| {
                let parts = partitions
                    .into_iter()
                    .map(|p| {
                        let c = lookup.committed(name.0.as_str(), p);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(c.offset)
                            .with_committed_leader_epoch(if epoch_supported {
                                c.leader_epoch
                            } else {
                                -1
                            })
                            .with_metadata(Some(str_bytes(c.metadata)))
                            .with_error_code(c.error)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(parts)
            })
            .collect(),
    )
}

pub(super) async fn delete(
    shared: &Shared,
    session: &Session,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if let Err(code) = session.check(Operation::Delete, &Resource::group(&request.group_id)) {
        return OffsetDeleteResponse::default().with_error_code(code.code());
    }
    let names = request.topics.iter().map(|t| t.name.0.as_str());
    let unreadable = session.denied_names(Operation::Read, Resource::topic, names);
    let coordinator = Arc::clone(&shared.coordinator);
    blocking(move || {
        let group = request.group_id.0.to_string();
        let Some(subscribed) = coordinator.subscribed_topics(&group).or_else(|| {
            // A group known only by its offsets (no members ever since the restart).
            (!coordinator.offsets(&group).is_empty()).then(Vec::new)
        }) else {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code());
        };
        let mut doomed = Vec::new();
        let topics: Vec<_> = request
            .topics
            .into_iter()
            .map(|topic| {
                let error = if unreadable.contains(topic.name.0.as_str()) {
                    Some(ResponseError::TopicAuthorizationFailed)
                } else if subscribed.iter().any(|t| t == topic.name.0.as_str()) {
                    Some(ResponseError::GroupSubscribedToTopic)
                } else {
                    None
                };
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        if error.is_none() {
                            doomed.push((topic.name.0.to_string(), p.partition_index));
                        }
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error.map_or(0, |e| e.code()))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        let error = coordinator.delete_offsets(&group, &doomed).err().map(|e| {
            tracing::warn!(error = %e, "offset delete failed");
            ResponseError::CoordinatorNotAvailable.code()
        });
        OffsetDeleteResponse::default()
            .with_error_code(error.unwrap_or(0))
            .with_topics(topics)
    })
    .await
}
