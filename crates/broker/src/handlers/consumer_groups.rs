//! The new consumer group protocol (KIP-848): ConsumerGroupHeartbeat, with which
//! members join, heartbeat, converge on the broker's assignment and leave, and
//! ConsumerGroupDescribe.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_describe_response::{self, DescribedGroup, Member};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::broker::Shared;
use crate::coord::assignor::Assignor;
use crate::coord::consumer::{Heartbeat, Partitions, HEARTBEAT_INTERVAL};
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// Every topic's id and partition count, by name: the assignor's input.
fn topic_table(shared: &Shared) -> BTreeMap<String, (Uuid, i32)> {
    shared
        .cluster
        .topics()
        .iter()
        .map(|t| (t.name.clone(), (t.id, t.partitions.len() as i32)))
        .collect()
}

pub(super) fn heartbeat(
    shared: &Shared,
    session: &Session,
    request: ConsumerGroupHeartbeatRequest,
    client_id: Option<&str>,
    client_host: String,
) -> ConsumerGroupHeartbeatResponse {
    let error = |e: ResponseError, message: &str| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(message)))
            .with_member_epoch(-1)
    };
    if request.group_id.0.is_empty() {
        return error(ResponseError::InvalidGroupId, "the group id is empty");
    }
    if let Err(code) = session.check(Operation::Read, &Resource::group(&request.group_id)) {
        return error(code, "READ on the group is needed");
    }
    tracing::debug!(?request, "consumer group heartbeat");
    if request
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return error(
            ResponseError::InvalidRequest,
            "regular-expression subscriptions are not supported yet; subscribe to topic names",
        );
    }
    // A named assignor must be one strom has (Kafka: UNSUPPORTED_ASSIGNOR); `None`
    // keeps the member's previous choice.
    let server_assignor = match request.server_assignor.as_ref() {
        None => None,
        Some(name) => match Assignor::from_name(name.as_str()) {
            Some(assignor) => Some(assignor),
            None => {
                return error(
                    ResponseError::UnsupportedAssignor,
                    "strom's server assignors are `uniform` (the default) and `range`",
                )
            }
        },
    };
    let heartbeat = Heartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        client_id: client_id.unwrap_or_default().to_string(),
        client_host,
        subscribed: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        owned: request.topic_partitions.map(|owned| {
            owned
                .into_iter()
                .map(|t| {
                    (
                        t.topic_id,
                        t.partitions.into_iter().collect::<BTreeSet<i32>>(),
                    )
                })
                .collect()
        }),
        server_assignor,
    };
    let topics = topic_table(shared);
    match shared
        .coordinator
        .consumer_heartbeat(request.group_id.0.as_str(), heartbeat, &topics)
    {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL.as_millis() as i32)
            .with_assignment(answer.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(topic_id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(topic_id)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => error(e, "the heartbeat was refused"),
    }
}

pub(super) fn describe(
    shared: &Shared,
    session: &Session,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let names: BTreeMap<Uuid, String> = topic_table(shared)
        .into_iter()
        .map(|(name, (id, _))| (id, name))
        .collect();
    let assignment = |partitions: &Partitions| {
        consumer_group_describe_response::Assignment::default().with_topic_partitions(
            partitions
                .iter()
                .map(|(id, ps)| {
                    consumer_group_describe_response::TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(TopicName(str_bytes(
                            names.get(id).cloned().unwrap_or_default(),
                        )))
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        )
    };
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            if let Err(code) = session.check(Operation::Describe, &Resource::group(&id)) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(code.code());
            }
            let described = shared.coordinator.with_consumer_group(id.0.as_str(), |g| {
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(StrBytes::from_static_str(g.state()))
                    .with_group_epoch(g.epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(StrBytes::from_static_str(g.assignor.name()))
                    .with_members(
                        g.members
                            .values()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(str_bytes(m.id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(str_bytes))
                                    .with_rack_id(m.rack_id.clone().map(str_bytes))
                                    .with_member_epoch(m.epoch)
                                    .with_client_id(str_bytes(m.client_id.clone()))
                                    .with_client_host(str_bytes(m.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.subscribed
                                            .iter()
                                            .map(|t| TopicName(str_bytes(t.clone())))
                                            .collect(),
                                    )
                                    .with_assignment(assignment(&m.assigned))
                                    .with_target_assignment(assignment(
                                        &g.target.get(&m.id).cloned().unwrap_or_default(),
                                    ))
                            })
                            .collect(),
                    )
            });
            described.unwrap_or_else(|| {
                DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes("no consumer group (KIP-848) with this id")))
            })
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
