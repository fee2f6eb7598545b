//! Consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups, ListGroups and DeleteGroups. The group logic lives in
//! `coord`; these functions translate between it and the wire.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{blocking, str_bytes, Reply};
use crate::broker::Shared;
use crate::coord::group::{JoinOutcome, JoinRequest};
use crate::protocol::{encode_response, FrameError, Header, ResponseFrame};
use crate::security::acl::{Operation, Resource};
use crate::security::Session;

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

pub(super) fn find_coordinator(
    shared: &Shared,
    session: &Session,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let cluster = &shared.cluster;
    let node = BrokerId(cluster.identity.node_id);
    let listener = &session.listener;
    let host = str_bytes(listener.advertised_host.clone());
    // This node coordinates every group and every transactional id.
    let denied = |key: &str| {
        let resource = match request.key_type {
            KEY_GROUP => Resource::group(key),
            KEY_TRANSACTION => Resource::transactional_id(key),
            _ => return None,
        };
        session.check(Operation::Describe, &resource).err()
    };
    let error = match request.key_type {
        KEY_GROUP | KEY_TRANSACTION => None,
        _ => Some(ResponseError::InvalidRequest),
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let error = denied(&key).or(error);
                let code = error.map_or(0, |e| e.code());
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(if error.is_none() { node } else { BrokerId(-1) })
                    .with_host(if error.is_none() {
                        host.clone()
                    } else {
                        StrBytes::default()
                    })
                    .with_port(if error.is_none() {
                        listener.advertised_port
                    } else {
                        -1
                    })
                    .with_error_code(code)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match denied(&request.key).or(error) {
        None => FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(listener.advertised_port),
        Some(e) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

/// JoinGroup waits until the rebalance completes, so it answers from a task.
pub(super) fn join(
    shared: &Shared,
    session: &Session,
    request: JoinGroupRequest,
    header: &Header,
    client_host: String,
) -> Reply {
    let version = header.api_version;
    let correlation_id = header.correlation_id;
    let group_id = request.group_id.0.to_string();
    let respond = move |response: JoinGroupResponse| {
        encode_response(ApiKey::JoinGroup, version, correlation_id, &response)
    };
    let refused = if group_id.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else {
        session
            .check(Operation::Read, &Resource::group(&group_id))
            .err()
    };
    if let Some(code) = refused {
        let response = JoinGroupResponse::default()
            .with_error_code(code.code())
            .with_member_id(request.member_id);
        return ready(respond(response));
    }
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|s| s.to_string()),
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host,
        session_timeout: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: Duration::from_millis(if version >= 1 {
            request.rebalance_timeout_ms.max(0) as u64
        } else {
            request.session_timeout_ms.max(0) as u64
        }),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let receiver = shared.coordinator.join(&group_id, join);
    Reply::Later(tokio::spawn(async move {
        let outcome = receiver.await.unwrap_or_else(|_| {
            // The coordinator dropped the request (shutting down).
            JoinOutcome::error(ResponseError::CoordinatorNotAvailable, "")
        });
        let response = JoinGroupResponse::default()
            .with_error_code(outcome.error.map_or(0, |e| e.code()))
            .with_generation_id(outcome.generation)
            .with_protocol_type(outcome.protocol_type.map(str_bytes))
            .with_protocol_name(outcome.protocol.map(str_bytes))
            .with_leader(str_bytes(outcome.leader))
            .with_skip_assignment(outcome.skip_assignment && version >= 9)
            .with_member_id(str_bytes(outcome.member_id))
            .with_members(
                outcome
                    .members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(id))
                            .with_group_instance_id(instance.map(str_bytes))
                            .with_metadata(metadata)
                    })
                    .collect(),
            );
        respond(response)
    }))
}

/// SyncGroup waits for the leader's assignment, so it answers from a task.
pub(super) fn sync(
    shared: &Shared,
    session: &Session,
    request: SyncGroupRequest,
    header: &Header,
) -> Reply {
    let (version, correlation_id) = (header.api_version, header.correlation_id);
    if let Err(code) = session.check(Operation::Read, &Resource::group(&request.group_id)) {
        let response = SyncGroupResponse::default().with_error_code(code.code());
        return ready(encode_response(
            ApiKey::SyncGroup,
            version,
            correlation_id,
            &response,
        ));
    }
    let coordinator = Arc::clone(&shared.coordinator);
    let (receiver, completed) = coordinator.sync(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
        request.generation_id,
        request.protocol_type.as_deref(),
        request.protocol_name.as_deref(),
        request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    );
    Reply::Later(tokio::spawn(async move {
        if let Some((group, snapshot)) = completed {
            let persisted = blocking(move || coordinator.persist_group(group, &snapshot)).await;
            if let Err(error) = persisted {
                tracing::warn!(%error, "persisting a group's assignment failed");
            }
        }
        let response = match receiver.await {
            Ok(Ok((protocol_type, protocol, assignment))) => SyncGroupResponse::default()
                .with_protocol_type(protocol_type.map(str_bytes))
                .with_protocol_name(protocol.map(str_bytes))
                .with_assignment(assignment),
            Ok(Err(error)) => SyncGroupResponse::default().with_error_code(error.code()),
            Err(_) => SyncGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
        };
        encode_response(ApiKey::SyncGroup, version, correlation_id, &response)
    }))
}

pub(super) fn heartbeat(
    shared: &Shared,
    session: &Session,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    if let Err(code) = session.check(Operation::Read, &Resource::group(&request.group_id)) {
        return HeartbeatResponse::default().with_error_code(code.code());
    }
    let result = shared.coordinator.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}

pub(super) async fn leave(
    shared: &Shared,
    session: &Session,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if let Err(code) = session.check(Operation::Read, &Resource::group(&request.group_id)) {
        return LeaveGroupResponse::default().with_error_code(code.code());
    }
    // Blocking: a group's last member leaving is synced to the offsets log.
    let coordinator = Arc::clone(&shared.coordinator);
    blocking(move || {
        let group = request.group_id.0.as_str();
        if version < 3 {
            let result = coordinator.leave(group, request.member_id.as_str(), None);
            return LeaveGroupResponse::default()
                .with_error_code(result.err().map_or(0, |e| e.code()));
        }
        let members = request
            .members
            .iter()
            .map(|m| {
                let result =
                    coordinator.leave(group, m.member_id.as_str(), m.group_instance_id.as_deref());
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(result.err().map_or(0, |e| e.code()))
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    })
    .await
}

/// What a client may do to a group (READ, DELETE, DESCRIBE), until ACLs exist.
const GROUP_OPERATIONS: i32 = 1 << 3 | 1 << 6 | 1 << 8;

pub(super) fn describe(
    shared: &Shared,
    session: &Session,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let operations = if request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        i32::MIN
    };
    let groups = request
        .groups
        .into_iter()
        .map(|id| match shared.coordinator.describe(id.0.as_str()) {
            _ if !session.allows(Operation::Describe, &Resource::group(&id)) => {
                DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            }
            Some(group) => DescribedGroup::default()
                .with_group_id(id)
                .with_authorized_operations(operations)
                .with_group_state(StrBytes::from_static_str(group.state))
                .with_protocol_type(str_bytes(group.protocol_type))
                .with_protocol_data(str_bytes(group.protocol))
                .with_members(
                    group
                        .members
                        .into_iter()
                        .map(
                            |(
                                member_id,
                                instance,
                                client_id,
                                client_host,
                                metadata,
                                assignment,
                            )| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(member_id))
                                    .with_group_instance_id(instance.map(str_bytes))
                                    .with_client_id(str_bytes(client_id))
                                    .with_client_host(str_bytes(client_host))
                                    .with_member_metadata(metadata)
                                    .with_member_assignment(assignment)
                            },
                        )
                        .collect(),
                ),
            // Kafka describes an unknown group as Dead; from v6 with GROUP_ID_NOT_FOUND.
            None if version >= 6 => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str("Dead"))
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(str_bytes("the group does not exist"))),
            None => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str("Dead")),
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) fn list(
    shared: &Shared,
    session: &Session,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    // DESCRIBE on the cluster lists every group; otherwise the describable ones.
    let all = session.permits(Operation::Describe, &Resource::cluster());
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let groups = shared
        .coordinator
        .list()
        .into_iter()
        .filter(|(_, _, state)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .filter(|(id, _, _)| all || session.permits(Operation::Describe, &Resource::group(id)))
        .map(|(id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type))
                .with_group_state(StrBytes::from_static_str(state))
                .with_group_type(StrBytes::from_static_str("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(super) async fn delete(
    shared: &Shared,
    session: &Session,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let names = request.groups_names.iter().map(|g| g.0.as_str());
    let denied = session.denied_names(Operation::Delete, Resource::group, names);
    let coordinator = Arc::clone(&shared.coordinator);
    blocking(move || {
        let results = request
            .groups_names
            .into_iter()
            .map(|id| {
                let result = if denied.contains(id.0.as_str()) {
                    Err(ResponseError::GroupAuthorizationFailed)
                } else {
                    coordinator.delete_group(id.0.as_str())
                };
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(result.err().map_or(0, |e| e.code()))
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    })
    .await
}

fn ready(encoded: Result<ResponseFrame, FrameError>) -> Reply {
    match encoded {
        Ok(buf) => Reply::Ready(buf),
        Err(e) => Reply::Later(tokio::spawn(async move { Err(e) })),
    }
}
