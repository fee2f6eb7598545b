//! A consumer group under the new protocol (KIP-848, ConsumerGroupHeartbeat): the
//! broker assigns partitions itself and members converge on the target assignment
//! through their heartbeats, without a group-wide barrier. A partition moves from one
//! member to another only after the first reports it has released it, so no two
//! members ever own the same partition.
//!
//! The target comes from the server-side assignor the members ask for
//! ([`super::assignor`]: `uniform`, the default, or `range`, which keeps partition n of
//! co-partitioned topics on one member).
//!
//! Time is passed in (`now`), so tests drive session expiry without sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

pub(crate) use super::assignor::Partitions;
use super::assignor::{Assignor, MemberSpec};

/// Kafka's `group.consumer.session.timeout.ms`.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_millis(45_000);
/// Kafka's `group.consumer.heartbeat.interval.ms`.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(5_000);

/// Epoch a member sends to leave the group.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// Epoch a static member sends to leave temporarily.
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// One member.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    pub subscribed: Vec<String>,
    /// The server assignor the member asked for (`None`: none named).
    pub server_assignor: Option<Assignor>,
    /// What the broker last gave the member.
    pub assigned: Partitions,
    /// What the member last said it owns.
    owned: Partitions,
    last_heartbeat: Instant,
}

/// A heartbeat's content.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed: Option<Vec<String>>,
    /// `None`: unchanged since the last heartbeat.
    pub owned: Option<Partitions>,
    /// The server assignor asked for; `None`: unchanged since the last heartbeat (the
    /// handler refuses names strom does not know).
    pub server_assignor: Option<Assignor>,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's whole assignment, when it changed.
    pub assignment: Option<Partitions>,
}

/// A consumer group.
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment of each member at `assignment_epoch`.
    pub target: BTreeMap<String, Partitions>,
    /// The subscribed topics (id and partition count) the target was computed from:
    /// when a subscribed topic appears, goes or grows, the group's epoch moves on.
    assigned_topics: BTreeMap<String, (Uuid, i32)>,
    /// The assignor the target was computed with.
    pub assignor: Assignor,
}

impl ConsumerGroup {
    /// An empty group.
    pub fn new(id: &str) -> Self {
        ConsumerGroup {
            id: id.to_string(),
            ..ConsumerGroup::default()
        }
    }

    /// Whether `heartbeat` may join under `size_max` members (`group.max.size`): a
    /// member already in the group, or a static member replacing its previous
    /// incarnation, always may; a new one only below the bound.
    pub fn admits(&self, heartbeat: &Heartbeat, size_max: usize) -> bool {
        heartbeat.member_epoch != 0
            || self.members.len() < size_max
            || self.members.contains_key(&heartbeat.member_id)
            || heartbeat.instance_id.as_ref().is_some_and(|instance| {
                self.members
                    .values()
                    .any(|m| m.instance_id.as_ref() == Some(instance))
            })
    }

    /// Kafka's state name.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.assigned != self.target_of(&m.id))
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn target_of(&self, member: &str) -> Partitions {
        self.target.get(member).cloned().unwrap_or_default()
    }

    /// Handles a heartbeat. `topics` maps every existing topic's name to its id and
    /// partition count (the assignor's input).
    pub fn heartbeat(
        &mut self,
        request: Heartbeat,
        topics: &BTreeMap<String, (Uuid, i32)>,
        now: Instant,
    ) -> Result<HeartbeatAnswer, ResponseError> {
        if request.member_epoch == LEAVE_EPOCH || request.member_epoch == STATIC_LEAVE_EPOCH {
            if self.members.remove(&request.member_id).is_none() {
                return Err(ResponseError::UnknownMemberId);
            }
            self.target.remove(&request.member_id);
            self.epoch += 1;
            return Ok(HeartbeatAnswer {
                member_id: request.member_id,
                member_epoch: request.member_epoch,
                assignment: None,
            });
        }
        let mut changed_assignment = false;
        if request.member_epoch == 0 {
            if request.subscribed.as_ref().is_none_or(Vec::is_empty)
                && !self.members.contains_key(&request.member_id)
            {
                return Err(ResponseError::InvalidRequest);
            }
            let id = if request.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                request.member_id.clone()
            };
            // A static member replacing its previous incarnation takes over its place.
            if let Some(instance) = &request.instance_id {
                let previous = self
                    .members
                    .values()
                    .find(|m| m.instance_id.as_deref() == Some(instance) && m.id != id)
                    .map(|m| m.id.clone());
                if let Some(previous) = previous {
                    self.members.remove(&previous);
                    self.target.remove(&previous);
                }
            }
            let existing = self.members.remove(&id);
            self.members.insert(
                id.clone(),
                ConsumerMember {
                    id: id.clone(),
                    instance_id: request.instance_id.clone(),
                    rack_id: request.rack_id.clone(),
                    client_id: request.client_id.clone(),
                    client_host: request.client_host.clone(),
                    epoch: 0,
                    previous_epoch: 0,
                    subscribed: request
                        .subscribed
                        .clone()
                        .or_else(|| existing.as_ref().map(|m| m.subscribed.clone()))
                        .unwrap_or_default(),
                    server_assignor: request
                        .server_assignor
                        .or_else(|| existing.as_ref().and_then(|m| m.server_assignor)),
                    assigned: Partitions::new(),
                    owned: Partitions::new(),
                    last_heartbeat: now,
                },
            );
            self.epoch += 1;
            changed_assignment = true;
            return self.reconcile(&id, topics, changed_assignment);
        }
        let group_epoch = self.epoch;
        let member = self
            .members
            .get_mut(&request.member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if request.member_epoch != member.epoch && request.member_epoch != member.previous_epoch {
            return Err(ResponseError::FencedMemberEpoch);
        }
        member.last_heartbeat = now;
        if let Some(owned) = request.owned {
            member.owned = owned;
        }
        let mut epoch_bump = false;
        if let Some(subscribed) = request.subscribed {
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                epoch_bump = true;
            }
        }
        if request
            .server_assignor
            .is_some_and(|a| member.server_assignor != Some(a))
        {
            member.server_assignor = request.server_assignor;
            epoch_bump = true;
        }
        if epoch_bump {
            self.epoch = group_epoch + 1;
        }
        if request.member_epoch == member.previous_epoch && member.previous_epoch != member.epoch {
            // The member missed our last answer: send its assignment again.
            changed_assignment = true;
        }
        self.reconcile(&request.member_id, topics, changed_assignment)
    }

    /// Recomputes the target if the group changed, then moves the member towards it.
    fn reconcile(
        &mut self,
        member_id: &str,
        topics: &BTreeMap<String, (Uuid, i32)>,
        mut changed: bool,
    ) -> Result<HeartbeatAnswer, ResponseError> {
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        let relevant: BTreeMap<String, (Uuid, i32)> = topics
            .iter()
            .filter(|(name, _)| subscribed.contains(name))
            .map(|(name, t)| (name.clone(), *t))
            .collect();
        let assignor = self.preferred_assignor();
        if self.assignment_epoch == self.epoch
            && (relevant != self.assigned_topics || assignor != self.assignor)
        {
            self.epoch += 1;
        }
        if self.assignment_epoch < self.epoch {
            let empty = Partitions::new();
            // Stickiness starts from the current target (as Kafka's coordinator does),
            // not from what members hold yet: a change in the middle of a hand-over
            // then keeps partitions on the member they are moving to.
            let specs: BTreeMap<String, MemberSpec<'_>> = self
                .members
                .iter()
                .map(|(id, m)| {
                    (
                        id.clone(),
                        MemberSpec {
                            subscribed: &m.subscribed,
                            current: self.target.get(id).unwrap_or(&empty),
                        },
                    )
                })
                .collect();
            let target = assignor.assign(&specs, topics);
            self.target = target;
            self.assignor = assignor;
            self.assignment_epoch = self.epoch;
            self.assigned_topics = relevant;
        }
        let target = self.target_of(member_id);
        // Partitions another member was given or still owns are not free yet.
        let taken: BTreeSet<(Uuid, i32)> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| flatten(&m.assigned).chain(flatten(&m.owned)))
            .collect();
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let revoked: Vec<(Uuid, i32)> = flatten(&member.assigned)
            .filter(|p| !contains(&target, p))
            .collect();
        let next = if !revoked.is_empty() {
            // First the member gives up what it must; its epoch waits until it has.
            let kept = retain(&member.assigned, |p| contains(&target, p));
            if kept != member.assigned {
                member.assigned = kept.clone();
                changed = true;
            }
            kept
        } else {
            let still_owned_revoked = flatten(&member.owned).any(|p| !contains(&target, &p));
            let mut next = member.assigned.clone();
            for p in flatten(&target) {
                if !taken.contains(&p) {
                    next.entry(p.0).or_default().insert(p.1);
                }
            }
            if !still_owned_revoked && member.epoch != self.assignment_epoch {
                member.previous_epoch = member.epoch;
                member.epoch = self.assignment_epoch;
                changed = true;
            }
            if next != member.assigned {
                member.assigned = next.clone();
                changed = true;
            }
            next
        };
        Ok(HeartbeatAnswer {
            member_id: member.id.clone(),
            member_epoch: member.epoch,
            assignment: changed.then_some(next),
        })
    }

    /// The assignor of the group: the one most members ask for (the first in
    /// [`Assignor::ALL`] order on a tie), `uniform` when none asks, as Kafka picks it.
    pub fn preferred_assignor(&self) -> Assignor {
        let mut votes: BTreeMap<Assignor, usize> = BTreeMap::new();
        for a in self.members.values().filter_map(|m| m.server_assignor) {
            *votes.entry(a).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by_key(|(a, n)| (*n, std::cmp::Reverse(*a)))
            .map(|(a, _)| a)
            .unwrap_or_default()
    }

    /// Removes members whose session expired. Returns whether any was removed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.members.len();
        self.members
            .retain(|_, m| now.saturating_duration_since(m.last_heartbeat) <= SESSION_TIMEOUT);
        let removed = self.members.len() != before;
        if removed {
            self.target.retain(|id, _| self.members.contains_key(id));
            self.epoch += 1;
        }
        removed
    }

    /// Checks an OffsetCommit's member and epoch (KIP-848 commits carry the member
    /// epoch in place of the generation).
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch != member.epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

fn flatten(partitions: &Partitions) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    partitions
        .iter()
        .flat_map(|(topic, ps)| ps.iter().map(move |p| (*topic, *p)))
}

fn contains(partitions: &Partitions, (topic, partition): &(Uuid, i32)) -> bool {
    partitions
        .get(topic)
        .is_some_and(|ps| ps.contains(partition))
}

fn retain(partitions: &Partitions, keep: impl Fn(&(Uuid, i32)) -> bool) -> Partitions {
    let mut out = Partitions::new();
    for p in flatten(partitions).filter(|p| keep(p)) {
        out.entry(p.0).or_default().insert(p.1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> (Uuid, BTreeMap<String, (Uuid, i32)>) {
        let id = Uuid::new_v4();
        (id, [("t".to_string(), (id, 6))].into())
    }

    fn join(member: &str) -> Heartbeat {
        Heartbeat {
            member_id: member.to_string(),
            member_epoch: 0,
            subscribed: Some(vec!["t".into()]),
            ..Heartbeat::default()
        }
    }

    fn beat(member: &str, epoch: i32, owned: &Partitions) -> Heartbeat {
        Heartbeat {
            member_id: member.to_string(),
            member_epoch: epoch,
            owned: Some(owned.clone()),
            ..Heartbeat::default()
        }
    }

    fn count(p: &Partitions) -> usize {
        p.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn a_full_group_admits_its_members_and_static_replacements_but_no_newcomer() {
        let (_, topics) = topics();
        let t0 = Instant::now();
        let mut group = ConsumerGroup::new("g");
        let a = group
            .heartbeat(
                Heartbeat {
                    instance_id: Some("i-a".into()),
                    ..join("a")
                },
                &topics,
                t0,
            )
            .expect("a joins");
        assert!(!group.admits(&join("b"), 1), "a newcomer beyond the bound");
        assert!(group.admits(&join("b"), 2), "below the bound");
        assert!(group.admits(&join("a"), 1), "a member rejoining");
        assert!(group.admits(&beat("a", a.member_epoch, &Partitions::new()), 1));
        let replacement = Heartbeat {
            instance_id: Some("i-a".into()),
            ..join("a2")
        };
        assert!(
            group.admits(&replacement, 1),
            "a static member's new incarnation"
        );
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_released_it() {
        let (_, topics) = topics();
        let t0 = Instant::now();
        let mut group = ConsumerGroup::new("g");
        let a = group.heartbeat(join("a"), &topics, t0).expect("a joins");
        let a_parts = a.assignment.clone().expect("assignment");
        assert_eq!(count(&a_parts), 6, "alone, a gets everything");
        assert_eq!(a.member_epoch, 1);

        let b = group.heartbeat(join("b"), &topics, t0).expect("b joins");
        assert_eq!(b.member_epoch, 2);
        assert_eq!(
            b.assignment.as_ref().map(count),
            Some(0),
            "everything is still a's"
        );

        // a is told to give up three partitions; its epoch waits.
        let a2 = group
            .heartbeat(beat("a", 1, &a_parts), &topics, t0)
            .expect("a beats");
        let kept = a2.assignment.clone().expect("changed");
        assert_eq!(count(&kept), 3);
        assert_eq!(a2.member_epoch, 1);
        // b still gets nothing: a has not confirmed.
        let b2 = group
            .heartbeat(beat("b", 2, &Partitions::new()), &topics, t0)
            .expect("b beats");
        assert_eq!(b2.assignment.as_ref().map_or(0, count), 0);
        // a confirms; it reaches the new epoch, then b gets the released partitions.
        let a3 = group
            .heartbeat(beat("a", 1, &kept), &topics, t0)
            .expect("a confirms");
        assert_eq!(a3.member_epoch, 2);
        let b3 = group
            .heartbeat(beat("b", 2, &Partitions::new()), &topics, t0)
            .expect("b beats");
        let b_parts = b3.assignment.expect("b's partitions");
        assert_eq!(count(&b_parts), 3);
        assert!(flatten(&b_parts).all(|p| !contains(&kept, &p)), "disjoint");
        assert_eq!(group.state(), "Stable");
    }

    #[test]
    fn epochs_are_checked_and_silent_members_expire() {
        let (_, topics) = topics();
        let t0 = Instant::now();
        let mut group = ConsumerGroup::new("g");
        group.heartbeat(join("a"), &topics, t0).expect("a joins");
        assert_eq!(
            group.heartbeat(beat("a", 7, &Partitions::new()), &topics, t0),
            Err(ResponseError::FencedMemberEpoch)
        );
        assert_eq!(
            group.heartbeat(beat("nobody", 1, &Partitions::new()), &topics, t0),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(group.check_commit("a", 1), Ok(()));
        assert_eq!(
            group.check_commit("a", 0),
            Err(ResponseError::StaleMemberEpoch)
        );
        assert!(!group.expire(t0 + SESSION_TIMEOUT));
        assert!(group.expire(t0 + SESSION_TIMEOUT + Duration::from_millis(1)));
        assert_eq!(group.state(), "Empty");
    }

    #[test]
    fn new_partitions_of_a_subscribed_topic_are_assigned() {
        let (id, mut topics) = topics();
        let t0 = Instant::now();
        let mut group = ConsumerGroup::new("g");
        let a = group.heartbeat(join("a"), &topics, t0).expect("a joins");
        let owned = a.assignment.expect("assignment");
        assert_eq!(count(&owned), 6);
        topics.insert("t".into(), (id, 8));
        let grown = group
            .heartbeat(beat("a", a.member_epoch, &owned), &topics, t0)
            .expect("beats");
        assert_eq!(grown.assignment.as_ref().map(count), Some(8));
        assert!(grown.member_epoch > a.member_epoch);
    }

    #[test]
    fn leaving_frees_the_partitions_for_the_rest() {
        let (_, topics) = topics();
        let t0 = Instant::now();
        let mut group = ConsumerGroup::new("g");
        let a = group.heartbeat(join("a"), &topics, t0).expect("a");
        group.heartbeat(join("b"), &topics, t0).expect("b");
        let kept = group
            .heartbeat(
                beat("a", 1, a.assignment.as_ref().expect("a's")),
                &topics,
                t0,
            )
            .expect("a beats")
            .assignment
            .expect("a's share");
        group
            .heartbeat(beat("a", 1, &kept), &topics, t0)
            .expect("a confirms");
        let left = group
            .heartbeat(beat("a", LEAVE_EPOCH, &kept), &topics, t0)
            .expect("a leaves");
        assert_eq!(left.member_epoch, LEAVE_EPOCH);
        let b = group
            .heartbeat(beat("b", 2, &Partitions::new()), &topics, t0)
            .expect("b beats");
        assert_eq!(b.assignment.as_ref().map(count), Some(6));
        assert_eq!(b.member_epoch, 3);
    }
}
