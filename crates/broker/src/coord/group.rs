//! One consumer group under the classic protocol: its members, generations and the
//! rebalance state machine (Empty → PreparingRebalance → CompletingRebalance →
//! Stable), as Kafka's group coordinator runs it. Time is passed in (`now`), so tests
//! drive timeouts without sleeping. Requests that must wait (JoinGroup until the
//! rebalance completes, SyncGroup until the leader assigns) park a oneshot sender in
//! their member; the state machine answers them when it moves on.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assigned and heartbeating.
    Stable,
}

impl GroupState {
    /// Kafka's name, as DescribeGroups and ListGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Coordinator settings that bound what members may ask for (Kafka's `group.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupLimits {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty
    /// group waits for more members, so they do not each trigger one.
    pub initial_rebalance_delay: Duration,
    /// `offsets.retention.minutes`: how long an empty group's offsets are kept after
    /// their last commit.
    pub offsets_retention: Duration,
    /// `group.max.size`: members (joined or pending) one group may have.
    pub size_max: usize,
    /// `group.consumer.session.timeout.ms`: KIP-848 members silent this long are removed.
    pub consumer_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms`: how often KIP-848 members heartbeat.
    pub consumer_heartbeat_interval: Duration,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            initial_rebalance_delay: Duration::from_millis(3_000),
            offsets_retention: Duration::from_secs(7 * 24 * 60 * 60),
            size_max: 1_000,
            consumer_session_timeout: Duration::from_millis(45_000),
            consumer_heartbeat_interval: Duration::from_millis(5_000),
        }
    }
}

/// What a JoinGroup request brings.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest {
    /// Empty for a new member.
    pub member_id: String,
    /// Static membership (KIP-345).
    pub instance_id: Option<String>,
    /// The client's id, for DescribeGroups.
    pub client_id: String,
    /// The client's address, for DescribeGroups.
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// "consumer" for consumers, or what a framework uses.
    pub protocol_type: String,
    /// Supported protocols (assignors) with their metadata, in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// From v4: a new dynamic member first gets an id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader only: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// A static leader rejoining a stable group must not compute a new assignment
    /// (JoinGroup v9's `skip_assignment`).
    pub skip_assignment: bool,
}

impl JoinOutcome {
    /// A refusal with `error`, for `member_id`.
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// The answer to a SyncGroup: the member's assignment, or an error.
pub(crate) type SyncOutcome = Result<(Option<String>, Option<String>, Bytes), ResponseError>;

/// Where a waiting request's answer goes.
pub(crate) type JoinWaiter = oneshot::Sender<JoinOutcome>;
/// Where a waiting SyncGroup's answer goes.
pub(crate) type SyncWaiter = oneshot::Sender<SyncOutcome>;

/// A member of the group.
#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<JoinWaiter>,
    sync_waiter: Option<SyncWaiter>,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Static instance id → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending_members: HashMap<String, Instant>,
    /// When the current phase gives up waiting (join or sync).
    deadline: Option<Instant>,
    /// The end of the initial rebalance delay, while it runs.
    initial_delay_until: Option<(Instant, Instant)>,
}

impl Group {
    /// An empty group.
    pub fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            deadline: None,
            initial_delay_until: None,
        }
    }

    /// Restores a stable group from its last persisted assignment (after a restart);
    /// members get a fresh session to heartbeat in.
    pub fn restore(
        id: &str,
        generation: i32,
        protocol_type: Option<String>,
        protocol: Option<String>,
        leader: Option<String>,
        members: Vec<RestoredMember>,
        now: Instant,
    ) -> Self {
        let mut group = Group::new(id);
        group.generation = generation;
        group.protocol_type = protocol_type.clone();
        group.protocol = protocol.clone();
        for m in members {
            if let Some(instance) = &m.instance_id {
                group.static_members.insert(instance.clone(), m.id.clone());
            }
            let protocols = vec![(protocol.clone().unwrap_or_default(), m.metadata)];
            group.members.insert(
                m.id.clone(),
                Member {
                    id: m.id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: m.session_timeout,
                    rebalance_timeout: m.rebalance_timeout,
                    protocols,
                    assignment: m.assignment,
                    last_heartbeat: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        if !group.members.is_empty() {
            group.state = GroupState::Stable;
            group.leader = leader.filter(|l| group.members.contains_key(l));
        }
        group
    }

    /// Answers every waiting JoinGroup and SyncGroup with COORDINATOR_NOT_AVAILABLE
    /// (the broker is shutting down; clients retry elsewhere or later).
    pub fn abort_waiters(&mut self) {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinOutcome::error(
                    ResponseError::CoordinatorNotAvailable,
                    &member.id,
                ));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::CoordinatorNotAvailable));
            }
        }
    }

    /// Whether member ids handed out with MEMBER_ID_REQUIRED still wait to be used.
    pub fn has_pending_members(&self) -> bool {
        !self.pending_members.is_empty()
    }

    /// Handles a JoinGroup; the answer arrives on `waiter` (at once or when the
    /// rebalance completes).
    pub fn join(
        &mut self,
        request: JoinRequest,
        waiter: JoinWaiter,
        limits: &GroupLimits,
        now: Instant,
    ) {
        let reply = |waiter: JoinWaiter, outcome: JoinOutcome| {
            let _ = waiter.send(outcome);
        };
        if request.session_timeout < limits.min_session_timeout
            || request.session_timeout > limits.max_session_timeout
        {
            return reply(
                waiter,
                JoinOutcome::error(ResponseError::InvalidSessionTimeout, &request.member_id),
            );
        }
        if request.protocol_type.is_empty()
            || request.protocols.is_empty()
            || !self.supports(&request)
        {
            return reply(
                waiter,
                JoinOutcome::error(ResponseError::InconsistentGroupProtocol, &request.member_id),
            );
        }
        if request.member_id.is_empty() {
            self.join_new(request, waiter, limits, now);
        } else {
            self.join_known(request, waiter, limits, now);
        }
    }

    fn join_new(
        &mut self,
        request: JoinRequest,
        waiter: JoinWaiter,
        limits: &GroupLimits,
        now: Instant,
    ) {
        let member_id = format!("{}-{}", request.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = request.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self
                    .replace_static_member(&old_id, member_id, request, waiter, limits, now);
            }
        }
        // A new member may not take the group past `group.max.size`.
        if self.members.len() + self.pending_members.len() >= limits.size_max {
            let _ = waiter.send(JoinOutcome::error(
                ResponseError::GroupMaxSizeReached,
                &request.member_id,
            ));
            return;
        }
        if let Some(instance) = request.instance_id.clone() {
            self.static_members.insert(instance, member_id.clone());
        } else if request.require_known_member_id {
            // KIP-394: the client must come back with this id, so a member whose first
            // join times out does not leave an orphan behind.
            self.pending_members
                .insert(member_id.clone(), now + request.session_timeout);
            let _ = waiter.send(JoinOutcome::error(
                ResponseError::MemberIdRequired,
                &member_id,
            ));
            return;
        }
        self.add_member(member_id, request, waiter, limits, now);
    }

    fn join_known(
        &mut self,
        request: JoinRequest,
        waiter: JoinWaiter,
        limits: &GroupLimits,
        now: Instant,
    ) {
        let member_id = request.member_id.clone();
        if let Some(instance) = &request.instance_id {
            if self
                .static_members
                .get(instance)
                .is_some_and(|id| *id != member_id)
            {
                let _ = waiter.send(JoinOutcome::error(
                    ResponseError::FencedInstanceId,
                    &member_id,
                ));
                return;
            }
        }
        if self.pending_members.remove(&member_id).is_some() {
            return self.add_member(member_id, request, waiter, limits, now);
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            let _ = waiter.send(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
            return;
        };
        let same_metadata = member.protocols == request.protocols;
        member.last_heartbeat = now;
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.protocols = request.protocols;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some(old) = member.join_waiter.replace(waiter) {
                    let _ = old.send(JoinOutcome::error(
                        ResponseError::UnknownMemberId,
                        &member_id,
                    ));
                }
                self.try_complete_join(now);
            }
            GroupState::CompletingRebalance | GroupState::Stable if same_metadata && !is_leader => {
                // Nothing changed: answer with the current generation, no rebalance.
                let outcome = self.join_outcome(&member_id, false);
                let _ = waiter.send(outcome);
            }
            _ => {
                member.join_waiter = Some(waiter);
                self.prepare_rebalance(limits, now);
            }
        }
    }

    /// A static member came back with a new member id: the old id is fenced, the
    /// member keeps its assignment, and a stable group is not rebalanced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        request: JoinRequest,
        waiter: JoinWaiter,
        limits: &GroupLimits,
        now: Instant,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            // Mapped but gone (removed by a leave): join as new.
            if let Some(instance) = &request.instance_id {
                self.static_members.insert(instance.clone(), new_id.clone());
            }
            return self.add_member(new_id, request, waiter, limits, now);
        };
        if let Some(old) = member.join_waiter.take() {
            let _ = old.send(JoinOutcome::error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(old) = member.sync_waiter.take() {
            let _ = old.send(Err(ResponseError::FencedInstanceId));
        }
        let same_metadata = member.protocols == request.protocols;
        member.id = new_id.clone();
        member.last_heartbeat = now;
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.protocols = request.protocols;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        // Kafka's rule: a stable group whose chosen protocol would not change keeps its
        // generation; a returning leader gets the member list but must not reassign.
        let protocol_kept = self.select_protocol() == self.protocol;
        match self.state {
            GroupState::Stable if same_metadata || protocol_kept => {
                let mut outcome = self.join_outcome(&new_id, was_leader);
                outcome.skip_assignment = was_leader;
                let _ = waiter.send(outcome);
            }
            GroupState::PreparingRebalance => {
                if let Some(member) = self.members.get_mut(&new_id) {
                    member.join_waiter = Some(waiter);
                }
                self.try_complete_join(now);
            }
            _ => {
                if let Some(member) = self.members.get_mut(&new_id) {
                    member.join_waiter = Some(waiter);
                }
                self.prepare_rebalance(limits, now);
            }
        }
    }

    fn add_member(
        &mut self,
        member_id: String,
        request: JoinRequest,
        waiter: JoinWaiter,
        limits: &GroupLimits,
        now: Instant,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                instance_id: request.instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocols: request.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: Some(waiter),
                sync_waiter: None,
            },
        );
        if self.state == GroupState::PreparingRebalance {
            if let Some((started, until)) = self.initial_delay_until {
                // Each new member during the initial delay extends it, up to the
                // largest rebalance timeout.
                let cap = started + self.max_rebalance_timeout();
                self.initial_delay_until = Some((
                    started,
                    (now + limits.initial_rebalance_delay).min(cap).max(until),
                ));
            }
            self.try_complete_join(now);
        } else {
            self.prepare_rebalance(limits, now);
        }
    }

    /// Whether the request's protocol type and protocols fit the group's members.
    fn supports(&self, request: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(request.protocol_type.as_str()) {
            return false;
        }
        request.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != request.member_id)
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Starts a rebalance: every member must rejoin; pending SyncGroups are told so.
    fn prepare_rebalance(&mut self, limits: &GroupLimits, now: Instant) {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::RebalanceInProgress));
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.deadline = Some(now + self.max_rebalance_timeout());
        self.initial_delay_until = was_empty.then(|| (now, now + limits.initial_rebalance_delay));
        self.try_complete_join(now);
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Completes the join phase if every member has rejoined (and the initial delay
    /// is over), or if the deadline passed (members that did not rejoin are dropped).
    fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some())
            && self.pending_members.is_empty();
        let delay_over = self
            .initial_delay_until
            .is_none_or(|(_, until)| now >= until);
        let expired = self.deadline.is_some_and(|d| now >= d);
        if !(all_joined && delay_over || expired) {
            return;
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.deadline = None;
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        self.deadline = Some(now + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let outcome = self.join_outcome(&id, is_leader);
            if let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.join_waiter.take()) {
                let _ = waiter.send(outcome);
            }
        }
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for member in self.members.values() {
            if let Some(choice) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n))
            {
                if let Some(v) = votes.iter_mut().find(|(_, c)| **c == choice.0) {
                    v.0 += 1;
                }
            }
        }
        // Most votes; ties go to the first member's preference order.
        votes
            .iter()
            .rev()
            .max_by_key(|(count, _)| *count)
            .map(|(_, name)| (*name).clone())
    }

    fn join_outcome(&self, member_id: &str, with_members: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .values()
                    .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    /// Checks that `member_id` (and `instance_id`) belongs to generation `generation`.
    pub fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            if let Some(mapped) = self.static_members.get(instance) {
                if mapped != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Handles a SyncGroup. The leader's request carries every member's assignment.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        waiter: SyncWaiter,
    ) -> Option<GroupSnapshot> {
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            let _ = waiter.send(Err(e));
            return None;
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != self.protocol.as_deref())
        {
            let _ = waiter.send(Err(ResponseError::InconsistentGroupProtocol));
            return None;
        }
        match self.state {
            GroupState::Empty => {
                let _ = waiter.send(Err(ResponseError::UnknownMemberId));
                None
            }
            GroupState::PreparingRebalance => {
                let _ = waiter.send(Err(ResponseError::RebalanceInProgress));
                None
            }
            GroupState::Stable => {
                let _ = waiter.send(Ok(self.sync_answer(member_id)));
                None
            }
            GroupState::CompletingRebalance => {
                if let Some(member) = self.members.get_mut(member_id) {
                    member.sync_waiter = Some(waiter);
                }
                if self.leader.as_deref() != Some(member_id) {
                    return None;
                }
                let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                for member in self.members.values_mut() {
                    member.assignment = assignments.remove(&member.id).unwrap_or_default();
                }
                self.state = GroupState::Stable;
                self.deadline = None;
                let ids: Vec<String> = self.members.keys().cloned().collect();
                for id in ids {
                    let answer = self.sync_answer(&id);
                    if let Some(waiter) =
                        self.members.get_mut(&id).and_then(|m| m.sync_waiter.take())
                    {
                        let _ = waiter.send(Ok(answer));
                    }
                }
                Some(self.snapshot())
            }
        }
    }

    fn sync_answer(&self, member_id: &str) -> (Option<String>, Option<String>, Bytes) {
        (
            self.protocol_type.clone(),
            self.protocol.clone(),
            self.members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        )
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_member(member_id, instance_id, generation)?;
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        limits: &GroupLimits,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let member_id = match instance_id {
            Some(instance) => {
                let mapped = self
                    .static_members
                    .get(instance)
                    .cloned()
                    .ok_or(ResponseError::UnknownMemberId)?;
                if !member_id.is_empty() && mapped != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
                mapped
            }
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&member_id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.remove_member_and_rebalance(&member_id, limits, now);
        Ok(())
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut member) = self.members.remove(member_id) {
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    member_id,
                ));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(ResponseError::UnknownMemberId));
            }
            if let Some(instance) = &member.instance_id {
                if self
                    .static_members
                    .get(instance)
                    .is_some_and(|id| id == member_id)
                {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    fn remove_member_and_rebalance(&mut self, member_id: &str, limits: &GroupLimits, now: Instant) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(limits, now)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty => {}
        }
    }

    /// Expires members whose session ran out, and phases whose deadline passed.
    /// Returns true when the group changed.
    pub fn tick(&mut self, limits: &GroupLimits, now: Instant) -> bool {
        let before = (self.state, self.generation, self.members.len());
        self.pending_members.retain(|_, expires| *expires > now);
        let expired: Vec<String> = self
            .members
            .values()
            // A member waiting in JoinGroup is alive by definition.
            .filter(|m| {
                m.join_waiter.is_none()
                    && now.saturating_duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member_and_rebalance(&id, limits, now);
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::CompletingRebalance if self.deadline.is_some_and(|d| now >= d) => {
                // The leader never sent its assignment: drop members that did not
                // sync and rebalance.
                let silent: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in silent {
                    self.remove_member(&id);
                }
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation += 1;
                } else {
                    self.prepare_rebalance(limits, now);
                }
            }
            _ => {}
        }
        before != (self.state, self.generation, self.members.len())
    }

    /// What is persisted after each completed rebalance.
    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupSnapshot {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| RestoredMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: m.session_timeout,
                    rebalance_timeout: m.rebalance_timeout,
                    metadata: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// A group's membership as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSnapshot {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<RestoredMember>,
}

/// A member as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoredMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);
    const REBALANCE: Duration = Duration::from_secs(30);

    fn limits() -> GroupLimits {
        GroupLimits::default()
    }

    fn request(member_id: &str, instance_id: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: instance_id.map(str::to_string),
            client_id: "client".into(),
            client_host: "127.0.0.1".into(),
            session_timeout: SESSION,
            rebalance_timeout: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: false,
        }
    }

    fn join(
        group: &mut Group,
        request: JoinRequest,
        now: Instant,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        group.join(request, tx, &limits(), now);
        rx
    }

    fn sync(
        group: &mut Group,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        let assignments = assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect();
        group.sync(member, None, generation, None, None, assignments, tx);
        rx
    }

    /// Two members joined, synced and stable at generation 1; returns (leader, follower).
    fn stable_pair(group: &mut Group, t0: Instant) -> (String, String) {
        let mut a = join(group, request("", None, &["range"]), t0);
        let mut b = join(group, request("", None, &["range"]), t0);
        group.tick(&limits(), t0 + limits().initial_rebalance_delay);
        let a = a.try_recv().expect("a answered");
        let b = b.try_recv().expect("b answered");
        let (leader, follower) = if a.leader == a.member_id {
            (a, b)
        } else {
            (b, a)
        };
        let mut follower_sync = sync(group, &follower.member_id, 1, &[]);
        let mut leader_sync = sync(
            group,
            &leader.member_id,
            1,
            &[
                (leader.member_id.as_str(), "L"),
                (follower.member_id.as_str(), "F"),
            ],
        );
        assert_eq!(
            follower_sync
                .try_recv()
                .expect("follower synced")
                .expect("ok")
                .2,
            Bytes::from("F")
        );
        assert_eq!(
            leader_sync
                .try_recv()
                .expect("leader synced")
                .expect("ok")
                .2,
            Bytes::from("L")
        );
        assert_eq!(group.state, GroupState::Stable);
        (leader.member_id, follower.member_id)
    }

    #[test]
    fn first_rebalance_waits_for_the_initial_delay_then_elects_a_leader() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let mut a = join(&mut group, request("", None, &["range", "roundrobin"]), t0);
        let mut b = join(
            &mut group,
            request("", None, &["roundrobin", "range"]),
            t0 + Duration::from_millis(100),
        );
        assert_eq!(group.state, GroupState::PreparingRebalance);
        group.tick(&limits(), t0 + Duration::from_secs(1));
        assert!(a.try_recv().is_err(), "still inside the initial delay");
        group.tick(&limits(), t0 + Duration::from_secs(4));
        let a = a.try_recv().expect("a answered");
        let b = b.try_recv().expect("b answered");
        assert_eq!((a.error, b.error), (None, None));
        assert_eq!((a.generation, b.generation), (1, 1));
        assert_eq!(a.leader, b.leader);
        let (leader, follower) = if a.leader == a.member_id {
            (&a, &b)
        } else {
            (&b, &a)
        };
        assert_eq!(leader.members.len(), 2, "the leader gets every member");
        assert!(follower.members.is_empty());
        // Both support both; votes tie and the first member's preference wins.
        assert_eq!(a.protocol, b.protocol);
        let expected = format!("meta-{}", a.protocol.clone().expect("protocol"));
        assert!(leader
            .members
            .iter()
            .all(|(_, _, meta)| meta[..] == *expected.as_bytes()));
        assert_eq!(group.state, GroupState::CompletingRebalance);
    }

    #[test]
    fn the_leaders_assignment_reaches_every_member() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (leader, follower) = stable_pair(&mut group, t0);
        // Stable: a late SyncGroup gets the stored assignment at once.
        let mut again = sync(&mut group, &follower, 1, &[]);
        assert_eq!(
            again.try_recv().expect("answered").expect("ok").2,
            Bytes::from("F")
        );
        let snapshot = group.snapshot();
        assert_eq!(snapshot.generation, 1);
        assert_eq!(snapshot.leader.as_deref(), Some(leader.as_str()));
        assert_eq!(snapshot.members.len(), 2);
    }

    #[test]
    fn a_group_at_its_max_size_refuses_new_members_but_not_known_ones() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (leader, _) = stable_pair(&mut group, t0);
        let small = GroupLimits {
            size_max: 2,
            ..limits()
        };
        let (tx, mut third) = oneshot::channel();
        group.join(request("", None, &["range"]), tx, &small, t0);
        let refused = third.try_recv().expect("answered at once");
        assert_eq!(refused.error, Some(ResponseError::GroupMaxSizeReached));
        assert_eq!(group.members.len(), 2);
        // A member already in the group rejoins (a rebalance), full or not.
        let (tx, mut again) = oneshot::channel();
        group.join(request(&leader, None, &["range"]), tx, &small, t0);
        assert!(
            again.try_recv().map_or(true, |o| o.error.is_none()),
            "a known member is not refused"
        );
        assert_eq!(group.state, GroupState::PreparingRebalance);
    }

    #[test]
    fn heartbeats_check_member_and_generation() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (leader, _) = stable_pair(&mut group, t0);
        assert_eq!(group.heartbeat(&leader, None, 1, t0), Ok(()));
        assert_eq!(
            group.heartbeat(&leader, None, 7, t0),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            group.heartbeat("stranger", None, 1, t0),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn a_silent_member_is_expired_and_the_rest_rebalance_without_it() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (leader, follower) = stable_pair(&mut group, t0);
        let t1 = t0 + SESSION / 2;
        assert_eq!(group.heartbeat(&leader, None, 1, t1), Ok(()));
        // The follower never heartbeats again.
        group.tick(&limits(), t0 + SESSION + Duration::from_millis(1));
        assert!(!group.members.contains_key(&follower));
        assert_eq!(group.state, GroupState::PreparingRebalance);
        assert_eq!(
            group.heartbeat(&leader, None, 1, t1 + Duration::from_secs(1)),
            Err(ResponseError::RebalanceInProgress)
        );
        let mut rejoin = join(
            &mut group,
            request(&leader, None, &["range"]),
            t1 + Duration::from_secs(1),
        );
        let outcome = rejoin
            .try_recv()
            .expect("completes: every remaining member rejoined");
        assert_eq!(outcome.generation, 2);
        assert_eq!(outcome.members.len(), 1);
    }

    #[test]
    fn members_that_do_not_rejoin_in_time_are_dropped() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (leader, follower) = stable_pair(&mut group, t0);
        let mut rejoin = join(
            &mut group,
            request(&leader, None, &["range"]),
            t0 + Duration::from_secs(1),
        );
        assert!(rejoin.try_recv().is_err(), "waits for the follower");
        // The follower keeps heartbeating (told to rejoin) but never does.
        for s in 2..30 {
            let _ = group.heartbeat(&follower, None, 1, t0 + Duration::from_secs(s));
        }
        group.tick(&limits(), t0 + Duration::from_secs(1) + REBALANCE);
        let outcome = rejoin
            .try_recv()
            .expect("the rebalance timeout ends the wait");
        assert_eq!((outcome.generation, outcome.members.len()), (2, 1));
        assert!(!group.members.contains_key(&follower));
    }

    #[test]
    fn new_members_from_v4_first_get_an_id() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let mut first = request("", None, &["range"]);
        first.require_known_member_id = true;
        let outcome = join(&mut group, first.clone(), t0)
            .try_recv()
            .expect("answered at once");
        assert_eq!(outcome.error, Some(ResponseError::MemberIdRequired));
        assert!(outcome.member_id.starts_with("client-"));
        assert!(group.members.is_empty());
        first.member_id = outcome.member_id.clone();
        let mut joined = join(&mut group, first, t0);
        group.tick(&limits(), t0 + Duration::from_secs(4));
        let joined = joined.try_recv().expect("answered");
        assert_eq!((joined.error, joined.member_id), (None, outcome.member_id));
    }

    #[test]
    fn a_static_member_returns_to_a_stable_group_without_a_rebalance() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let mut a = join(&mut group, request("", Some("instance-a"), &["range"]), t0);
        let mut b = join(&mut group, request("", Some("instance-b"), &["range"]), t0);
        group.tick(&limits(), t0 + Duration::from_secs(4));
        let a = a.try_recv().expect("a");
        let b = b.try_recv().expect("b");
        let (leader, follower) = if a.leader == a.member_id {
            (a, b)
        } else {
            (b, a)
        };
        let follower_instance = if follower.member_id == group.static_members["instance-a"] {
            "instance-a"
        } else {
            "instance-b"
        };
        sync(&mut group, &follower.member_id, 1, &[]);
        sync(
            &mut group,
            &leader.member_id,
            1,
            &[
                (leader.member_id.as_str(), "L"),
                (follower.member_id.as_str(), "F"),
            ],
        );
        assert_eq!(group.state, GroupState::Stable);

        // The follower restarts: it comes back with no member id but the same instance.
        let mut back = join(
            &mut group,
            request("", Some(follower_instance), &["range"]),
            t0 + Duration::from_secs(5),
        );
        let back = back.try_recv().expect("answered at once");
        assert_eq!(back.error, None);
        assert_eq!(back.generation, 1, "no rebalance");
        assert_ne!(back.member_id, follower.member_id);
        assert_eq!(group.state, GroupState::Stable);
        let mut assignment = sync(&mut group, &back.member_id, 1, &[]);
        assert_eq!(
            assignment.try_recv().expect("answered").expect("ok").2,
            Bytes::from("F")
        );
        // The old incarnation is fenced.
        assert_eq!(
            group.heartbeat(
                &follower.member_id,
                Some(follower_instance),
                1,
                t0 + Duration::from_secs(5)
            ),
            Err(ResponseError::FencedInstanceId)
        );
    }

    #[test]
    fn a_static_leader_returns_without_a_rebalance_and_keeps_the_assignment() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let mut a = join(&mut group, request("", Some("instance-a"), &["range"]), t0);
        let mut b = join(&mut group, request("", Some("instance-b"), &["range"]), t0);
        group.tick(&limits(), t0 + Duration::from_secs(4));
        let a = a.try_recv().expect("a");
        let b = b.try_recv().expect("b");
        let (leader, follower) = if a.leader == a.member_id {
            (a, b)
        } else {
            (b, a)
        };
        let leader_instance = if leader.member_id == group.static_members["instance-a"] {
            "instance-a"
        } else {
            "instance-b"
        };
        sync(&mut group, &follower.member_id, 1, &[]);
        sync(
            &mut group,
            &leader.member_id,
            1,
            &[
                (leader.member_id.as_str(), "L"),
                (follower.member_id.as_str(), "F"),
            ],
        );

        let mut back = join(
            &mut group,
            request("", Some(leader_instance), &["range"]),
            t0 + Duration::from_secs(5),
        );
        let back = back.try_recv().expect("answered at once");
        assert_eq!((back.error, back.generation), (None, 1), "no rebalance");
        assert!(back.skip_assignment);
        assert_eq!(
            back.leader, back.member_id,
            "still the leader, under its new id"
        );
        assert_eq!(back.members.len(), 2);
        // Its SyncGroup (with or without assignments) returns what it had.
        let mut assignment = sync(
            &mut group,
            &back.member_id,
            1,
            &[(back.member_id.as_str(), "X")],
        );
        assert_eq!(
            assignment.try_recv().expect("answered").expect("ok").2,
            Bytes::from("L")
        );
        assert_eq!(group.state, GroupState::Stable);
    }

    #[test]
    fn leaving_rebalances_and_the_last_member_leaves_the_group_empty() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (leader, follower) = stable_pair(&mut group, t0);
        assert_eq!(group.leave(&follower, None, &limits(), t0), Ok(()));
        assert_eq!(group.state, GroupState::PreparingRebalance);
        assert_eq!(
            group.leave(&follower, None, &limits(), t0),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(group.leave(&leader, None, &limits(), t0), Ok(()));
        assert_eq!(group.state, GroupState::Empty);
        assert!(group.members.is_empty());
    }

    #[test]
    fn incompatible_joins_are_refused() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        stable_pair(&mut group, t0);
        let outcome = join(&mut group, request("", None, &["sticky"]), t0)
            .try_recv()
            .expect("answered");
        assert_eq!(
            outcome.error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
        let mut short = request("", None, &["range"]);
        short.session_timeout = Duration::from_millis(100);
        let outcome = join(&mut group, short, t0).try_recv().expect("answered");
        assert_eq!(outcome.error, Some(ResponseError::InvalidSessionTimeout));
        assert_eq!(group.generation, 1, "refused joins change nothing");
        assert_eq!(group.members.len(), 2);
    }

    #[test]
    fn a_restored_group_keeps_its_members_and_assignment() {
        let t0 = Instant::now();
        let mut group = Group::new("g");
        let (leader, follower) = stable_pair(&mut group, t0);
        let snapshot = group.snapshot();
        let later = t0 + Duration::from_secs(60);
        let mut restored = Group::restore(
            "g",
            snapshot.generation,
            snapshot.protocol_type,
            snapshot.protocol,
            snapshot.leader,
            snapshot.members,
            later,
        );
        assert_eq!(restored.state, GroupState::Stable);
        assert_eq!(restored.heartbeat(&leader, None, 1, later), Ok(()));
        let mut assignment = sync(&mut restored, &follower, 1, &[]);
        assert_eq!(
            assignment.try_recv().expect("answered").expect("ok").2,
            Bytes::from("F")
        );
    }
}
