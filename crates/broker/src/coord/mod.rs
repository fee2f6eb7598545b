//! The group coordinator: every consumer group's membership ([`group::Group`]) and
//! committed offsets, with both kept durable in the internal `__consumer_offsets` log
//! (offset commits, completed rebalances, deletions) and replayed at start.

pub(crate) mod assignor;
pub(crate) mod consumer;
pub(crate) mod group;
pub(crate) mod producer_ids;
pub(crate) mod transactions;
pub(crate) mod txn_state;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use strom_log::{now_ms, LogError, PartitionLog};
use tokio::sync::oneshot;

use crate::cluster::event_log;
use crate::error::StartError;
use consumer::{ConsumerGroup, Heartbeat, HeartbeatAnswer};
use group::{
    Group, GroupLimits, GroupSnapshot, GroupState, JoinOutcome, JoinRequest, RestoredMember,
    SyncOutcome,
};

/// Largest commit metadata string accepted (Kafka's `offset.metadata.max.bytes`).
pub(crate) const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// The offsets log is compacted once it holds at least this many records and more
/// than twice as many as the live state needs.
const COMPACT_MIN_RECORDS: u64 = 10_000;
/// Stripes of the per-group write locks: changes to groups of different stripes
/// proceed at once.
const GROUP_STRIPES: usize = 64;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// When it was committed (ms since the epoch), for retention.
    pub commit_timestamp: i64,
}

/// One change to the coordinator's state, as stored in `__consumer_offsets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OffsetsEvent {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
        committed: CommittedOffset,
    },
    OffsetDelete {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
        snapshot: StoredGroup,
    },
    GroupDelete {
        group: String,
    },
    /// An offset committed inside a transaction: pending until its end.
    TxnOffsetCommit {
        group: String,
        producer_id: i64,
        topic: String,
        partition: i32,
        committed: CommittedOffset,
    },
    /// The end of a transaction's offset commits to a group (its marker).
    TxnOffsetsEnd {
        group: String,
        producer_id: i64,
        commit: bool,
    },
}

/// A completed rebalance, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredGroup {
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<StoredMember>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMember {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    metadata: Vec<u8>,
    assignment: Vec<u8>,
}

impl From<&GroupSnapshot> for StoredGroup {
    fn from(s: &GroupSnapshot) -> Self {
        StoredGroup {
            generation: s.generation,
            protocol_type: s.protocol_type.clone(),
            protocol: s.protocol.clone(),
            leader: s.leader.clone(),
            members: s
                .members
                .iter()
                .map(|m| StoredMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as u64,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                    metadata: m.metadata.to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }
}

/// Offsets of one group, by topic and partition.
pub(crate) type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

#[derive(Default)]
struct State {
    groups: HashMap<String, Group>,
    /// Groups on the new protocol (KIP-848); an id is either classic or consumer.
    consumer_groups: HashMap<String, ConsumerGroup>,
    offsets: HashMap<String, GroupOffsets>,
    /// Offsets committed by open transactions, by group and producer id.
    pending: HashMap<String, HashMap<i64, GroupOffsets>>,
}

impl State {
    /// Applies the end of `producer_id`'s transaction to `group`'s offsets.
    fn end_transaction(&mut self, group: &str, producer_id: i64, commit: bool) {
        let Some(pending) = self.pending.get_mut(group) else {
            return;
        };
        let offsets = pending.remove(&producer_id);
        if pending.is_empty() {
            self.pending.remove(group);
        }
        if let (Some(offsets), true) = (offsets, commit) {
            self.offsets
                .entry(group.to_string())
                .or_default()
                .extend(offsets);
        }
    }
}

/// A group as DescribeGroups shows it.
pub(crate) struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// The coordinator of every group on this node.
pub(crate) struct GroupCoordinator {
    state: Mutex<State>,
    log: Arc<PartitionLog>,
    /// Taken shared by every change (with its group's stripe) and exclusively by
    /// compaction, which must see no change between its append and its application.
    write: RwLock<()>,
    /// A change to a group holds its stripe from its append to its application in
    /// memory, so a group's changes take effect in log order; changes to groups of
    /// different stripes run at once and share the log's fsyncs (group commit).
    stripes: Vec<Mutex<()>>,
    limits: GroupLimits,
    stop: Arc<AtomicBool>,
}

impl GroupCoordinator {
    /// Replays `log` (the `__consumer_offsets` log) into groups and offsets.
    pub fn open(log: Arc<PartitionLog>, limits: GroupLimits) -> Result<Arc<Self>, StartError> {
        let mut state = State::default();
        let now = Instant::now();
        event_log::replay(&log, |event: OffsetsEvent| match event {
            OffsetsEvent::OffsetCommit {
                group,
                topic,
                partition,
                committed,
            } => {
                state
                    .offsets
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), committed);
            }
            OffsetsEvent::OffsetDelete {
                group,
                topic,
                partition,
            } => {
                if let Some(offsets) = state.offsets.get_mut(&group) {
                    offsets.remove(&(topic, partition));
                }
            }
            OffsetsEvent::Group { group, snapshot } => {
                let members = snapshot
                    .members
                    .into_iter()
                    .map(|m| RestoredMember {
                        id: m.id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        session_timeout: Duration::from_millis(m.session_timeout_ms),
                        rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms),
                        metadata: Bytes::from(m.metadata),
                        assignment: Bytes::from(m.assignment),
                    })
                    .collect();
                let restored = Group::restore(
                    &group,
                    snapshot.generation,
                    snapshot.protocol_type,
                    snapshot.protocol,
                    snapshot.leader,
                    members,
                    now,
                );
                state.groups.insert(group, restored);
            }
            OffsetsEvent::GroupDelete { group } => {
                state.groups.remove(&group);
                state.offsets.remove(&group);
            }
            OffsetsEvent::TxnOffsetCommit {
                group,
                producer_id,
                topic,
                partition,
                committed,
            } => {
                state
                    .pending
                    .entry(group)
                    .or_default()
                    .entry(producer_id)
                    .or_default()
                    .insert((topic, partition), committed);
            }
            OffsetsEvent::TxnOffsetsEnd {
                group,
                producer_id,
                commit,
            } => state.end_transaction(&group, producer_id, commit),
        })?;
        tracing::info!(
            groups = state.groups.len(),
            with_offsets = state.offsets.len(),
            "group coordinator loaded"
        );
        Ok(Arc::new(GroupCoordinator {
            state: Mutex::new(state),
            log,
            write: RwLock::new(()),
            stripes: (0..GROUP_STRIPES).map(|_| Mutex::new(())).collect(),
            limits,
            stop: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// Starts the thread that expires sessions, rebalance phases and old offsets.
    pub fn spawn_ticker(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let coordinator = Arc::clone(self);
        std::thread::Builder::new()
            .name("strom-groups".into())
            .spawn(move || {
                let mut last_retention = Instant::now();
                while !coordinator.stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = Instant::now();
                    coordinator.tick(now);
                    if now.duration_since(last_retention) >= Duration::from_secs(60) {
                        last_retention = now;
                        coordinator.expire_offsets(now_ms());
                        if let Err(error) = coordinator.compact(COMPACT_MIN_RECORDS) {
                            tracing::warn!(%error, "compacting the offsets log failed");
                        }
                    }
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the group coordinator thread: {e}"))
    }

    /// Stops the ticker thread and answers requests waiting on a rebalance, so that
    /// shutdown does not wait for them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        for group in self.lock().groups.values_mut() {
            group.abort_waiters();
        }
    }

    /// Holds what a change to `group_id` needs: `write` shared and the group's stripe.
    fn write_group(&self, group_id: &str) -> (RwLockReadGuard<'_, ()>, MutexGuard<'_, ()>) {
        let shared = self.write.read().unwrap_or_else(|e| e.into_inner());
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(group_id, &mut hasher);
        let stripe = std::hash::Hasher::finish(&hasher) as usize % self.stripes.len();
        let group = self.stripes[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (shared, group)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one group's timers; drops groups that are empty and have no offsets.
    pub fn tick(&self, now: Instant) {
        let mut state = self.lock();
        let State {
            groups,
            consumer_groups,
            offsets,
            pending,
        } = &mut *state;
        let mut emptied = Vec::new();
        for group in groups.values_mut() {
            let before = group.state;
            group.tick(&self.limits, now);
            if before != GroupState::Empty && group.state == GroupState::Empty {
                emptied.push((group.id.clone(), group.snapshot()));
            }
        }
        let has_offsets = |id: &String| {
            offsets.get(id).is_some_and(|o| !o.is_empty()) || pending.contains_key(id)
        };
        groups.retain(|id, g| {
            g.state != GroupState::Empty || g.has_pending_members() || has_offsets(id)
        });
        for group in consumer_groups.values_mut() {
            if group.expire(now) {
                tracing::info!(group = %group.id, "consumer group member session expired");
            }
        }
        consumer_groups.retain(|id, g| !g.members.is_empty() || has_offsets(id));
        drop(state);
        for (group_id, snapshot) in emptied {
            self.persist_empty(&group_id, &snapshot);
        }
    }

    /// Handles a JoinGroup; the answer comes on the returned receiver.
    pub fn join(&self, group_id: &str, request: JoinRequest) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let mut state = self.lock();
        if state
            .consumer_groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
        {
            let _ = tx.send(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &request.member_id,
            ));
            return rx;
        }
        let group = state
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        group.join(request, tx, &self.limits, now);
        rx
    }

    /// Handles a SyncGroup; persists the group when the leader's assignment completes
    /// the rebalance.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> (
        oneshot::Receiver<SyncOutcome>,
        Option<(String, GroupSnapshot)>,
    ) {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        let snapshot = match state.groups.get_mut(group_id) {
            Some(group) => group.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol,
                assignments,
                tx,
            ),
            None => {
                let _ = tx.send(Err(ResponseError::UnknownMemberId));
                None
            }
        };
        (rx, snapshot.map(|s| (group_id.to_string(), s)))
    }

    /// Writes a completed rebalance to the log (blocking: call off the async threads).
    pub fn persist_group(
        &self,
        group_id: String,
        snapshot: &GroupSnapshot,
    ) -> Result<(), LogError> {
        let _write = self.write_group(&group_id);
        event_log::append(
            &self.log,
            &[OffsetsEvent::Group {
                group: group_id,
                snapshot: snapshot.into(),
            }],
        )
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut state = self.lock();
        let group = state
            .groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        group.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let emptied = {
            let mut state = self.lock();
            let group = state
                .groups
                .get_mut(group_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            let before = group.state;
            group.leave(member_id, instance_id, &self.limits, Instant::now())?;
            (before != GroupState::Empty && group.state == GroupState::Empty)
                .then(|| group.snapshot())
        };
        if let Some(snapshot) = emptied {
            self.persist_empty(group_id, &snapshot);
        }
        Ok(())
    }

    /// Records that a group lost its last member, so that a restart does not bring
    /// back the members of its last persisted rebalance (blocking).
    fn persist_empty(&self, group_id: &str, snapshot: &GroupSnapshot) {
        if let Err(error) = self.persist_group(group_id.to_string(), snapshot) {
            tracing::warn!(%error, group = group_id, "persisting an emptied group failed");
        }
    }

    /// Checks that a commit may be made now, as Kafka's coordinator does: anyone may
    /// commit to a group without members with generation -1 ("simple" consumers);
    /// otherwise the member must belong to the current generation, and not while the
    /// group waits for its leader's assignment. `version` is the OffsetCommit version
    /// (from v9 an unknown group is GROUP_ID_NOT_FOUND).
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        version: i16,
    ) -> Result<(), ResponseError> {
        let state = self.lock();
        if let Some(group) = state
            .consumer_groups
            .get(group_id)
            .filter(|g| !g.members.is_empty())
        {
            return group.check_commit(member_id, generation);
        }
        let Some(group) = state.groups.get(group_id) else {
            return match (generation < 0, version >= 9) {
                (true, _) => Ok(()),
                (false, true) => Err(ResponseError::GroupIdNotFound),
                (false, false) => Err(ResponseError::IllegalGeneration),
            };
        };
        if generation < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        group.check_member(member_id, instance_id, generation)?;
        // Commits during PreparingRebalance are allowed: eager consumers commit what
        // they processed when their partitions are revoked.
        Ok(())
    }

    /// Durably records committed offsets (blocking: call off the async threads).
    pub fn commit(
        &self,
        group_id: &str,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<(), LogError> {
        let _write = self.write_group(group_id);
        let events: Vec<OffsetsEvent> = offsets
            .iter()
            .map(
                |((topic, partition), committed)| OffsetsEvent::OffsetCommit {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    committed: committed.clone(),
                },
            )
            .collect();
        event_log::append(&self.log, &events)?;
        let mut state = self.lock();
        let group_offsets = state.offsets.entry(group_id.to_string()).or_default();
        group_offsets.extend(offsets);
        Ok(())
    }

    /// Durably records offsets committed by `producer_id`'s open transaction; they
    /// take effect when it commits (blocking).
    pub fn commit_pending(
        &self,
        group_id: &str,
        producer_id: i64,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<(), LogError> {
        let _write = self.write_group(group_id);
        let events: Vec<OffsetsEvent> = offsets
            .iter()
            .map(
                |((topic, partition), committed)| OffsetsEvent::TxnOffsetCommit {
                    group: group_id.to_string(),
                    producer_id,
                    topic: topic.clone(),
                    partition: *partition,
                    committed: committed.clone(),
                },
            )
            .collect();
        event_log::append(&self.log, &events)?;
        let mut state = self.lock();
        let pending = state
            .pending
            .entry(group_id.to_string())
            .or_default()
            .entry(producer_id)
            .or_default();
        pending.extend(offsets);
        Ok(())
    }

    /// Ends `producer_id`'s transaction for `group_id`: its pending offsets become
    /// committed, or are dropped (blocking).
    pub fn end_transaction(
        &self,
        group_id: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), LogError> {
        let _write = self.write_group(group_id);
        event_log::append(
            &self.log,
            &[OffsetsEvent::TxnOffsetsEnd {
                group: group_id.to_string(),
                producer_id,
                commit,
            }],
        )?;
        self.lock().end_transaction(group_id, producer_id, commit);
        Ok(())
    }

    /// Whether an open transaction has committed an offset for this partition of
    /// the group (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.lock()
            .pending
            .get(group_id)
            .is_some_and(|by_producer| {
                by_producer
                    .values()
                    .any(|offsets| offsets.contains_key(&(topic.to_string(), partition)))
            })
    }

    /// The committed offsets of a group.
    pub fn offsets(&self, group_id: &str) -> GroupOffsets {
        self.lock()
            .offsets
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the group has no members (or does not exist).
    fn is_empty_group(state: &State, group_id: &str) -> bool {
        state
            .groups
            .get(group_id)
            .is_none_or(|g| g.state == GroupState::Empty)
    }

    /// Topics the group's members subscribe to, from their consumer-protocol metadata.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<Vec<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        let state = self.lock();
        let group = state.groups.get(group_id)?;
        if group.state == GroupState::Empty || group.protocol_type.as_deref() != Some("consumer") {
            return Some(Vec::new());
        }
        let protocol = group.protocol.clone().unwrap_or_default();
        let mut topics = Vec::new();
        for member in group.members.values() {
            let mut metadata = member.metadata(&protocol);
            if metadata.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([metadata[0], metadata[1]]);
            let mut body = metadata.split_off(2);
            if let Ok(subscription) =
                ConsumerProtocolSubscription::decode(&mut body, version.clamp(0, 3))
            {
                topics.extend(subscription.topics.into_iter().map(|t| t.to_string()));
            }
        }
        Some(topics)
    }

    /// Deletes committed offsets of partitions (OffsetDelete); blocking.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), LogError> {
        let _write = self.write_group(group_id);
        let events: Vec<OffsetsEvent> = partitions
            .iter()
            .map(|(topic, partition)| OffsetsEvent::OffsetDelete {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        event_log::append(&self.log, &events)?;
        if let Some(offsets) = self.lock().offsets.get_mut(group_id) {
            for key in partitions {
                offsets.remove(key);
            }
        }
        Ok(())
    }

    /// Deletes a group with no members and its offsets; blocking.
    pub fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let _write = self.write_group(group_id);
        {
            let state = self.lock();
            if !state.groups.contains_key(group_id)
                && !state.consumer_groups.contains_key(group_id)
                && !state.offsets.contains_key(group_id)
            {
                return Err(ResponseError::GroupIdNotFound);
            }
            if !Self::is_empty_group(&state, group_id) {
                return Err(ResponseError::NonEmptyGroup);
            }
        }
        event_log::append(
            &self.log,
            &[OffsetsEvent::GroupDelete {
                group: group_id.to_string(),
            }],
        )
        .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        let mut state = self.lock();
        state.groups.remove(group_id);
        state.consumer_groups.remove(group_id);
        state.offsets.remove(group_id);
        Ok(())
    }

    /// Forgets every group's offsets of a deleted topic; blocking.
    pub fn topic_deleted(&self, topic: &str) -> Result<(), LogError> {
        let doomed: Vec<(String, (String, i32))> = self
            .lock()
            .offsets
            .iter()
            .flat_map(|(group, offsets)| {
                offsets
                    .keys()
                    .filter(|(t, _)| t == topic)
                    .map(|key| (group.clone(), key.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (group, key) in doomed {
            self.delete_offsets(&group, std::slice::from_ref(&key))?;
        }
        Ok(())
    }

    /// Drops offsets of empty groups committed longer than the retention ago.
    fn expire_offsets(&self, now_ms: i64) {
        let cutoff = now_ms - self.limits.offsets_retention.as_millis() as i64;
        let doomed: Vec<(String, Vec<(String, i32)>)> = {
            let state = self.lock();
            state
                .offsets
                .iter()
                .filter(|(group, _)| Self::is_empty_group(&state, group))
                .map(|(group, offsets)| {
                    let old = offsets
                        .iter()
                        .filter(|(_, c)| c.commit_timestamp < cutoff)
                        .map(|(key, _)| key.clone())
                        .collect::<Vec<_>>();
                    (group.clone(), old)
                })
                .filter(|(_, old)| !old.is_empty())
                .collect()
        };
        for (group, partitions) in doomed {
            if let Err(error) = self.delete_offsets(&group, &partitions) {
                tracing::warn!(%error, group, "expiring offsets failed");
            }
        }
    }

    /// Rewrites the live state (committed and pending offsets, stable groups) at the end
    /// of the log and drops the records before it, so that a restart replays only what
    /// is current. Does nothing while the log holds fewer than `min_records` records or
    /// fewer than twice what the state needs. A crash in the middle is harmless: the
    /// rewritten records only repeat what the older ones say.
    pub fn compact(&self, min_records: u64) -> Result<bool, LogError> {
        let _exclusive = self.write.write().unwrap_or_else(|e| e.into_inner());
        let (offsets, groups): (Vec<OffsetsEvent>, Vec<OffsetsEvent>) = {
            let state = self.lock();
            let committed = state.offsets.iter().flat_map(|(group, offsets)| {
                offsets.iter().map(move |((topic, partition), committed)| {
                    OffsetsEvent::OffsetCommit {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        committed: committed.clone(),
                    }
                })
            });
            let pending = state.pending.iter().flat_map(|(group, by_producer)| {
                by_producer.iter().flat_map(move |(producer_id, offsets)| {
                    offsets.iter().map(move |((topic, partition), committed)| {
                        OffsetsEvent::TxnOffsetCommit {
                            group: group.clone(),
                            producer_id: *producer_id,
                            topic: topic.clone(),
                            partition: *partition,
                            committed: committed.clone(),
                        }
                    })
                })
            });
            let groups = state
                .groups
                .values()
                .filter(|g| g.state == GroupState::Stable)
                .map(|g| OffsetsEvent::Group {
                    group: g.id.clone(),
                    snapshot: (&g.snapshot()).into(),
                })
                .collect();
            (committed.chain(pending).collect(), groups)
        };
        // Offsets in batches of 500; each group (with its assignments) on its own.
        let batches: Vec<&[OffsetsEvent]> = offsets.chunks(500).chain(groups.chunks(1)).collect();
        let compacted = event_log::compact(&self.log, &batches, min_records)?;
        if compacted {
            tracing::info!(
                live = offsets.len() + groups.len(),
                "compacted the offsets log"
            );
        }
        Ok(compacted)
    }

    /// DescribeGroups' view of a group; `None` if it does not exist.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let state = self.lock();
        let group = state.groups.get(group_id)?;
        let protocol = group.protocol.clone().unwrap_or_default();
        let stable = group.state == GroupState::Stable;
        Some(GroupDescription {
            state: group.state.name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        if stable {
                            m.metadata(&protocol)
                        } else {
                            Bytes::new()
                        },
                        if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    )
                })
                .collect(),
        })
    }

    /// Handles a ConsumerGroupHeartbeat (KIP-848). `topics` maps topic names to their
    /// id and partition count.
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        heartbeat: Heartbeat,
        topics: &BTreeMap<String, (uuid::Uuid, i32)>,
    ) -> Result<HeartbeatAnswer, ResponseError> {
        let mut state = self.lock();
        if state
            .groups
            .get(group_id)
            .is_some_and(|g| g.state != GroupState::Empty)
        {
            return Err(ResponseError::GroupIdNotFound);
        }
        let group = state
            .consumer_groups
            .entry(group_id.to_string())
            .or_insert_with(|| ConsumerGroup::new(group_id));
        if !group.admits(&heartbeat, self.limits.size_max) {
            return Err(ResponseError::GroupMaxSizeReached);
        }
        group.heartbeat(heartbeat, topics, Instant::now())
    }

    /// Runs `f` on a consumer group (KIP-848), if it exists.
    pub fn with_consumer_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> T,
    ) -> Option<T> {
        self.lock().consumer_groups.get(group_id).map(f)
    }

    /// Every group: (id, protocol type, state name).
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let state = self.lock();
        let mut all: Vec<_> = state
            .groups
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                )
            })
            .collect();
        for id in state
            .offsets
            .keys()
            .filter(|id| !state.groups.contains_key(*id))
        {
            all.push((id.clone(), String::new(), GroupState::Empty.name()));
        }
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> (Arc<PartitionLog>, Arc<GroupCoordinator>) {
        let log = Arc::new(
            PartitionLog::open(
                &dir.join("__consumer_offsets-0"),
                event_log::event_log_config(),
            )
            .expect("open log"),
        );
        let coordinator =
            GroupCoordinator::open(Arc::clone(&log), GroupLimits::default()).expect("replay");
        (log, coordinator)
    }

    fn offset(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: Some(format!("m{offset}")),
            commit_timestamp: now_ms(),
        }
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_the_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(
            PartitionLog::open(
                &dir.path().join("__consumer_offsets-0"),
                event_log::event_log_config(),
            )
            .expect("open log"),
        );
        let limits = GroupLimits {
            offsets_retention: Duration::from_secs(60),
            ..GroupLimits::default()
        };
        let coordinator = GroupCoordinator::open(Arc::clone(&log), limits).expect("replay");
        let now = now_ms();
        let mut old = offset(1);
        old.commit_timestamp = now - 61_000;
        coordinator
            .commit(
                "g",
                vec![(("t".into(), 0), old), (("t".into(), 1), offset(2))],
            )
            .expect("commit");
        coordinator.expire_offsets(now);
        let left = coordinator.offsets("g");
        assert!(!left.contains_key(&("t".to_string(), 0)), "expired");
        assert_eq!(left[&("t".to_string(), 1)].offset, 2, "recent, kept");
        drop(coordinator);
        let replayed = GroupCoordinator::open(log, limits).expect("replay");
        assert_eq!(replayed.offsets("g").len(), 1, "the expiry is durable");
    }

    #[test]
    fn a_group_mid_change_does_not_hold_up_other_groups_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_log, coordinator) = open(dir.path());
        let coordinator = Arc::new(coordinator);
        // Two groups in different stripes.
        let stripe = |g: &str| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(g, &mut hasher);
            std::hash::Hasher::finish(&hasher) as usize % GROUP_STRIPES
        };
        let busy = "busy";
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|g| stripe(g) != stripe(busy))
            .expect("a group in another stripe");
        // While a change to `busy` is between its append and its application...
        let held = coordinator.write_group(busy);
        // ...another group commits (its fsync is not queued behind `busy`'s).
        let committer = {
            let coordinator = Arc::clone(&coordinator);
            let other = other.clone();
            std::thread::spawn(move || {
                coordinator
                    .commit(&other, vec![(("t".into(), 0), offset(7))])
                    .expect("commit")
            })
        };
        committer.join().expect("the other group's commit finished");
        assert_eq!(coordinator.offsets(&other)[&("t".to_string(), 0)].offset, 7);
        // A commit of `busy` itself waits for the change in progress.
        let same = {
            let coordinator = Arc::clone(&coordinator);
            std::thread::spawn(move || {
                coordinator
                    .commit(busy, vec![(("t".into(), 0), offset(8))])
                    .expect("commit")
            })
        };
        assert!(coordinator.offsets(busy).is_empty());
        drop(held);
        same.join().expect("commit after the change");
        assert_eq!(coordinator.offsets(busy)[&("t".to_string(), 0)].offset, 8);
    }

    #[test]
    fn compaction_keeps_the_state_and_drops_the_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, coordinator) = open(dir.path());
        for n in 0..40 {
            coordinator
                .commit("g", vec![(("t".into(), n % 2), offset(i64::from(n)))])
                .expect("commit");
        }
        coordinator
            .commit("other", vec![(("t".into(), 0), offset(5))])
            .expect("commit");
        coordinator
            .delete_offsets("g", &[("t".into(), 0)])
            .expect("delete");
        assert!(
            !coordinator.compact(100).expect("compact"),
            "below the threshold"
        );
        assert!(coordinator.compact(10).expect("compact"));
        assert_eq!(
            log.log_end_offset() - log.log_start_offset(),
            2,
            "one record per live offset"
        );
        let before = (coordinator.offsets("g"), coordinator.offsets("other"));
        log.close().expect("close");
        drop((log, coordinator));

        let (_log, replayed) = open(dir.path());
        assert_eq!((replayed.offsets("g"), replayed.offsets("other")), before);
        assert_eq!(replayed.offsets("g")[&("t".to_string(), 1)].offset, 39);
        assert!(!replayed.offsets("g").contains_key(&("t".to_string(), 0)));
    }
}
