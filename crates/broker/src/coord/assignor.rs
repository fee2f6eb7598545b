//! Server-side assignors of the new consumer group protocol (KIP-848): pure functions
//! from the members (subscriptions and current target) and the topics (id and partition
//! count) to the next target assignment. The group ([`super::consumer`]) moves members
//! towards the target through their heartbeats; an assignor only says where each
//! partition should end up.
//!
//! - `uniform` (the default) spreads each topic's partitions evenly over its
//!   subscribers, keeping partitions where they are while a member is under its quota.
//! - `range` keeps **partition n of co-partitioned topics on one member**: topics with
//!   the same subscribers and the same partition count form a co-partition group, and
//!   the assignor hands out *slots* (partition numbers) of that group rather than
//!   partitions, so a stream–stream join, a merge or a stream–table join finds both
//!   inputs of a task on one member. It is sticky: a member keeps the slots it holds up
//!   to its quota, and the extra slots (when the count does not divide evenly) go first
//!   to members that already hold that many, so a join or a leave moves the fewest
//!   slots a balanced assignment allows.
//!
//! Invariants (checked by the property tests below):
//! - every partition of a subscribed, existing topic is in exactly one member's target,
//!   and only in the target of a member subscribed to its topic;
//! - `range`: within a co-partition group, a member's partition numbers are the same
//!   for every topic of the group, and each member holds `P / k` or `P / k + 1` slots;
//! - `range`: when a member joins a group whose target came from this assignor, no
//!   other member gains a slot; when a member leaves, no other member loses one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub(crate) type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// Every existing topic by name: its id and partition count.
pub(crate) type Topics = BTreeMap<String, (Uuid, i32)>;

/// One member as an assignor sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemberSpec<'a> {
    /// Topic names the member subscribes to.
    pub subscribed: &'a [String],
    /// The member's partitions in the current target assignment: what stickiness keeps.
    pub current: &'a Partitions,
}

/// A server-side assignor, named as the heartbeat's `ServerAssignor` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum Assignor {
    /// Each topic spread evenly on its own (Kafka's default, `uniform`).
    #[default]
    Uniform,
    /// Co-partitioned topics spread together, partition n of each on one member.
    Range,
}

impl Assignor {
    /// Every assignor, in the order Kafka lists its defaults (`group.consumer.assignors`).
    pub const ALL: [Assignor; 2] = [Assignor::Uniform, Assignor::Range];

    /// The assignor a client asks for by name; `None` for a name strom does not know
    /// (answered with UNSUPPORTED_ASSIGNOR).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name clients use (`group.remote.assignor`) and ConsumerGroupDescribe shows.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The next target assignment: every member of `members` gets an entry (possibly
    /// empty). Topics missing from `topics` are skipped until they exist.
    pub fn assign(
        self,
        members: &BTreeMap<String, MemberSpec<'_>>,
        topics: &Topics,
    ) -> BTreeMap<String, Partitions> {
        match self {
            Assignor::Uniform => uniform(members, topics),
            Assignor::Range => range(members, topics),
        }
    }
}

fn holds(partitions: &Partitions, topic: &Uuid, partition: i32) -> bool {
    partitions
        .get(topic)
        .is_some_and(|ps| ps.contains(&partition))
}

fn empty_target(members: &BTreeMap<String, MemberSpec<'_>>) -> BTreeMap<String, Partitions> {
    members
        .keys()
        .map(|id| (id.clone(), Partitions::new()))
        .collect()
}

/// The uniform assignor: each topic's partitions are spread over the members that
/// subscribe to it, keeping each member's current partitions where the spread allows,
/// so that a change moves as few partitions as possible.
fn uniform(
    members: &BTreeMap<String, MemberSpec<'_>>,
    topics: &Topics,
) -> BTreeMap<String, Partitions> {
    let mut target = empty_target(members);
    let subscribed: BTreeSet<&String> = members.values().flat_map(|m| m.subscribed).collect();
    for topic in subscribed {
        let Some((topic_id, count)) = topics.get(topic) else {
            continue;
        };
        let subscribers: Vec<(&String, &MemberSpec<'_>)> = members
            .iter()
            .filter(|(_, m)| m.subscribed.contains(topic))
            .collect();
        let n = subscribers.len();
        let count = (*count).max(0) as usize;
        // Quotas: the first `count % n` members (in id order) get one more.
        let quota = |i: usize| count / n + usize::from(i < count % n);
        let mut load: Vec<usize> = vec![0; n];
        let mut unassigned = Vec::new();
        for partition in 0..count as i32 {
            // Sticky: a member that has the partition keeps it while under its quota.
            let keeper = subscribers
                .iter()
                .enumerate()
                .find(|(i, (_, m))| load[*i] < quota(*i) && holds(m.current, topic_id, partition));
            match keeper {
                Some((i, (id, _))) => {
                    load[i] += 1;
                    add(&mut target, id, *topic_id, partition);
                }
                None => unassigned.push(partition),
            }
        }
        for partition in unassigned {
            let Some(i) = (0..n).find(|i| load[*i] < quota(*i)) else {
                break;
            };
            load[i] += 1;
            add(&mut target, subscribers[i].0, *topic_id, partition);
        }
    }
    target
}

fn add(target: &mut BTreeMap<String, Partitions>, member: &str, topic: Uuid, partition: i32) {
    if let Some(partitions) = target.get_mut(member) {
        partitions.entry(topic).or_default().insert(partition);
    }
}

/// Topics assigned together: the same subscribers (member ids, sorted) and the same
/// partition count.
type CoPartitionGroups<'a> = BTreeMap<(Vec<&'a str>, usize), Vec<Uuid>>;

/// The co-partition groups of the subscribed, existing topics.
fn co_partition_groups<'a>(
    members: &'a BTreeMap<String, MemberSpec<'_>>,
    topics: &Topics,
) -> CoPartitionGroups<'a> {
    let subscribed: BTreeSet<&String> = members.values().flat_map(|m| m.subscribed).collect();
    let mut groups = CoPartitionGroups::new();
    for topic in subscribed {
        let Some(&(topic_id, count)) = topics.get(topic) else {
            continue;
        };
        if count <= 0 {
            continue;
        }
        let subscribers: Vec<&str> = members
            .iter()
            .filter(|(_, m)| m.subscribed.contains(topic))
            .map(|(id, _)| id.as_str())
            .collect();
        groups
            .entry((subscribers, count as usize))
            .or_default()
            .push(topic_id);
    }
    groups
}

/// The range assignor: for each co-partition group, slot n (partition n of every topic
/// of the group) goes to one member.
fn range(
    members: &BTreeMap<String, MemberSpec<'_>>,
    topics: &Topics,
) -> BTreeMap<String, Partitions> {
    let mut target = empty_target(members);
    // Partitions given so far per member: the tie-break that spreads the extra slots of
    // several groups over different members.
    let mut load: BTreeMap<&str, usize> = members.keys().map(|id| (id.as_str(), 0)).collect();
    for ((subscribers, count), topic_ids) in co_partition_groups(members, topics) {
        let owners = assign_slots(&subscribers, count, &topic_ids, members, &load);
        for (slot, owner) in owners.iter().enumerate() {
            for topic in &topic_ids {
                add(&mut target, owner, *topic, slot as i32);
            }
            *load.entry(owner).or_default() += topic_ids.len();
        }
    }
    target
}

/// The owner of each of `count` slots of one co-partition group, among `subscribers`
/// (sorted ids, at least one).
fn assign_slots<'a>(
    subscribers: &[&'a str],
    count: usize,
    topic_ids: &[Uuid],
    members: &BTreeMap<String, MemberSpec<'_>>,
    load: &BTreeMap<&str, usize>,
) -> Vec<&'a str> {
    let k = subscribers.len();
    // How many of the group's topics have partition n in member i's current target.
    let score = |i: usize, slot: usize| {
        members.get(subscribers[i]).map_or(0, |m| {
            topic_ids
                .iter()
                .filter(|t| holds(m.current, t, slot as i32))
                .count()
        })
    };
    // The slots each member holds now: a slot held (wholly or in part) by several
    // members belongs to the one holding most of its topics, the first in id order on
    // a tie. A target this assignor computed has every slot whole on one member.
    let mut held: Vec<Vec<(usize, usize)>> = vec![Vec::new(); k];
    for slot in 0..count {
        let best = (0..k)
            .map(|i| (score(i, slot), Reverse(i)))
            .max()
            .filter(|(s, _)| *s > 0);
        if let Some((s, Reverse(i))) = best {
            held[i].push((s, slot));
        }
    }
    let (quota_min, extras) = (count / k, count % k);
    // The extra slots go first to members that hold more than the minimum already (they
    // keep it instead of giving it up), then to the least loaded.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by_key(|&i| {
        (
            Reverse(held[i].len().min(quota_min + 1)),
            load.get(subscribers[i]).copied().unwrap_or(0),
            i,
        )
    });
    let mut quota = vec![quota_min; k];
    for &i in order.iter().take(extras) {
        quota[i] += 1;
    }
    let mut owner: Vec<Option<usize>> = vec![None; count];
    let mut kept = vec![0; k];
    for i in 0..k {
        // Keep whole slots first, then the lowest numbers.
        held[i].sort_by_key(|&(s, slot)| (Reverse(s), slot));
        for &(_, slot) in held[i].iter().take(quota[i]) {
            owner[slot] = Some(i);
            kept[i] += 1;
        }
    }
    // The free slots, in order, to the members under quota, in id order: each gets a
    // contiguous run of what is free (ranges, when nothing was held before).
    let free: Vec<usize> = (0..count).filter(|s| owner[*s].is_none()).collect();
    let mut free = free.into_iter();
    for i in 0..k {
        for _ in kept[i]..quota[i] {
            if let Some(slot) = free.next() {
                owner[slot] = Some(i);
            }
        }
    }
    debug_assert!(owner.iter().all(Option::is_some), "every slot has an owner");
    owner
        .into_iter()
        .map(|o| subscribers[o.unwrap_or(0)])
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Members by id: their subscriptions and current targets.
    type Group = BTreeMap<String, (Vec<String>, Partitions)>;

    fn specs(group: &Group) -> BTreeMap<String, MemberSpec<'_>> {
        group
            .iter()
            .map(|(id, (subscribed, current))| {
                (
                    id.clone(),
                    MemberSpec {
                        subscribed,
                        current,
                    },
                )
            })
            .collect()
    }

    /// Runs `assignor` and stores the result as the members' current targets.
    fn rebalance(assignor: Assignor, group: &mut Group, topics: &Topics) {
        let target = assignor.assign(&specs(group), topics);
        for (id, (_, current)) in group.iter_mut() {
            *current = target.get(id).cloned().unwrap_or_default();
        }
    }

    fn topics(list: &[(&str, i32)]) -> Topics {
        list.iter()
            .map(|(name, count)| (name.to_string(), (Uuid::new_v4(), *count)))
            .collect()
    }

    fn subscribe(names: &[&str]) -> (Vec<String>, Partitions) {
        (
            names.iter().map(|n| n.to_string()).collect(),
            Partitions::new(),
        )
    }

    fn slots(p: &Partitions, topic: &Uuid) -> BTreeSet<i32> {
        p.get(topic).cloned().unwrap_or_default()
    }

    fn flat(group: &Group) -> BTreeMap<String, BTreeSet<(Uuid, i32)>> {
        group
            .iter()
            .map(|(id, (_, p))| {
                (
                    id.clone(),
                    p.iter()
                        .flat_map(|(t, ps)| ps.iter().map(move |n| (*t, *n)))
                        .collect(),
                )
            })
            .collect()
    }

    /// Every partition of every subscribed topic exactly once, only to subscribers.
    fn check_complete(group: &Group, topics: &Topics) {
        for (name, (id, count)) in topics {
            let subscribers: Vec<&String> = group
                .iter()
                .filter(|(_, (s, _))| s.contains(name))
                .map(|(m, _)| m)
                .collect();
            for n in 0..*count {
                let owners: Vec<&String> = group
                    .iter()
                    .filter(|(_, (_, p))| holds(p, id, n))
                    .map(|(m, _)| m)
                    .collect();
                if subscribers.is_empty() {
                    assert!(owners.is_empty(), "{name}-{n} given without a subscriber");
                } else {
                    assert_eq!(owners.len(), 1, "{name}-{n}: {owners:?}");
                    assert!(
                        subscribers.contains(&owners[0]),
                        "{name}-{n} to a non-subscriber"
                    );
                }
            }
        }
    }

    /// Within each co-partition group: the same partition numbers of every topic on a
    /// member, and `P / k` or `P / k + 1` slots per member.
    fn check_co_partitioned(group: &Group, topics: &Topics) {
        let by_id: BTreeMap<Uuid, &str> = topics
            .iter()
            .map(|(name, (id, _))| (*id, name.as_str()))
            .collect();
        let members: Group = group.clone();
        let specs = specs(&members);
        for ((subscribers, count), topic_ids) in co_partition_groups(&specs, topics) {
            let k = subscribers.len();
            for m in &subscribers {
                let current = &group[*m].1;
                let first = slots(current, &topic_ids[0]);
                for t in &topic_ids[1..] {
                    assert_eq!(
                        slots(current, t),
                        first,
                        "{m}: {} and {} not co-partitioned",
                        by_id[&topic_ids[0]],
                        by_id[t]
                    );
                }
                let n = first.len();
                assert!(
                    n == count / k || n == count / k + 1,
                    "{m} holds {n} of {count} slots with {k} members"
                );
            }
        }
    }

    #[test]
    fn partition_n_of_two_co_partitioned_topics_lands_on_one_member() {
        let topics = topics(&[("left", 6), ("right", 6)]);
        let mut group: Group = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), subscribe(&["left", "right"])))
            .collect();
        rebalance(Assignor::Range, &mut group, &topics);
        check_complete(&group, &topics);
        check_co_partitioned(&group, &topics);
        let (left, right) = (topics["left"].0, topics["right"].0);
        // Ranges, in member order, when nothing was held before.
        assert_eq!(slots(&group["a"].1, &left), [0, 1].into());
        assert_eq!(slots(&group["b"].1, &right), [2, 3].into());
        assert_eq!(slots(&group["c"].1, &left), [4, 5].into());
    }

    #[test]
    fn a_uniform_assignment_that_split_slots_is_repaired_with_the_fewest_moves() {
        // What `uniform` may leave after joins and leaves: left-0 on a, right-0 on b.
        let topics = topics(&[("left", 2), ("right", 2)]);
        let (left, right) = (topics["left"].0, topics["right"].0);
        let mut group: Group = Group::new();
        let both = vec!["left".to_string(), "right".to_string()];
        group.insert(
            "a".into(),
            (
                both.clone(),
                [(left, [0].into()), (right, [1].into())].into(),
            ),
        );
        group.insert(
            "b".into(),
            (both, [(left, [1].into()), (right, [0].into())].into()),
        );
        rebalance(Assignor::Range, &mut group, &topics);
        check_co_partitioned(&group, &topics);
        // Each keeps one of its two partitions and gets its partner.
        assert_eq!(slots(&group["a"].1, &left), [0].into());
        assert_eq!(slots(&group["b"].1, &left), [1].into());
    }

    #[test]
    fn topics_of_different_partition_counts_or_subscribers_are_assigned_apart() {
        let topics = topics(&[("a6", 6), ("b6", 6), ("c4", 4), ("only-x", 6)]);
        let mut group: Group = Group::new();
        group.insert("x".into(), subscribe(&["a6", "b6", "c4", "only-x"]));
        group.insert("y".into(), subscribe(&["a6", "b6", "c4"]));
        rebalance(Assignor::Range, &mut group, &topics);
        check_complete(&group, &topics);
        check_co_partitioned(&group, &topics);
        assert_eq!(slots(&group["x"].1, &topics["only-x"].0).len(), 6);
        assert!(slots(&group["y"].1, &topics["only-x"].0).is_empty());
    }

    #[test]
    fn assignors_are_chosen_by_name() {
        assert_eq!(Assignor::from_name("range"), Some(Assignor::Range));
        assert_eq!(Assignor::from_name("uniform"), Some(Assignor::Uniform));
        assert_eq!(Assignor::from_name("cooperative-sticky"), None);
        assert_eq!(Assignor::default(), Assignor::Uniform);
    }

    /// A membership change of the property tests.
    #[derive(Debug, Clone)]
    enum Step {
        Join,
        Leave(usize),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            prop_oneof![Just(Step::Join), (0usize..8).prop_map(Step::Leave)],
            1..24,
        )
    }

    proptest! {
        /// Members join and leave one at a time: after every rebalance the target is
        /// complete and co-partitioned, a join takes slots only from others (none
        /// gains), and a leave moves only the leaver's slots (none loses).
        #[test]
        fn range_keeps_co_partitioning_and_moves_only_what_a_change_requires(
            counts in prop::collection::vec(1i32..13, 1..4),
            copies in 1usize..4,
            steps in steps(),
        ) {
            // `copies` co-partitioned topics of each count.
            let mut list = Vec::new();
            for (g, count) in counts.iter().enumerate() {
                for c in 0..copies {
                    list.push((format!("t{g}-{c}"), *count));
                }
            }
            let topics: Topics = list
                .iter()
                .map(|(name, count)| (name.clone(), (Uuid::new_v4(), *count)))
                .collect();
            let names: Vec<String> = list.into_iter().map(|(n, _)| n).collect();
            let mut group: Group = Group::new();
            let mut next = 0;
            for step in steps {
                let before = flat(&group);
                let changed = match step {
                    Step::Join => {
                        let id = format!("m{next:02}");
                        next += 1;
                        group.insert(id.clone(), (names.clone(), Partitions::new()));
                        id
                    }
                    Step::Leave(i) => {
                        let Some(id) = group.keys().nth(i % group.len().max(1)).cloned() else {
                            continue;
                        };
                        group.remove(&id);
                        id
                    }
                };
                rebalance(Assignor::Range, &mut group, &topics);
                check_complete(&group, &topics);
                check_co_partitioned(&group, &topics);
                let after = flat(&group);
                for (id, now) in &after {
                    if *id == changed {
                        continue;
                    }
                    let was = before.get(id).cloned().unwrap_or_default();
                    match step {
                        Step::Join => prop_assert!(
                            now.is_subset(&was),
                            "{id} gained partitions when {changed} joined"
                        ),
                        Step::Leave(_) => prop_assert!(
                            was.is_subset(now),
                            "{id} lost partitions when {changed} left"
                        ),
                    }
                }
            }
        }

        /// Whatever the current targets (split slots included), the result is complete
        /// and co-partitioned, and every member keeps at least `min(quota_min, slots it
        /// wholly held)` of its whole slots.
        #[test]
        fn range_repairs_any_current_assignment(
            members in 1usize..6,
            count in 1i32..10,
            current in prop::collection::vec(prop::collection::vec(0usize..6, 0..10), 2),
        ) {
            let topics = topics(&[("l", count), ("r", count)]);
            let ids: Vec<Uuid> = ["l", "r"].iter().map(|t| topics[*t].0).collect();
            let mut group: Group = (0..members)
                .map(|m| (format!("m{m}"), subscribe(&["l", "r"])))
                .collect();
            // current[t][n] = the member that holds partition n of topic t now.
            for (t, owners) in current.iter().enumerate() {
                for (n, owner) in owners.iter().enumerate().take(count as usize) {
                    if let Some((_, (_, p))) = group.iter_mut().nth(owner % members) {
                        p.entry(ids[t]).or_default().insert(n as i32);
                    }
                }
            }
            let before = group.clone();
            rebalance(Assignor::Range, &mut group, &topics);
            check_complete(&group, &topics);
            check_co_partitioned(&group, &topics);
            let quota_min = count as usize / members;
            for (id, (_, was)) in &before {
                let whole: BTreeSet<i32> = slots(was, &ids[0])
                    .intersection(&slots(was, &ids[1]))
                    .copied()
                    .collect();
                let kept = whole.intersection(&slots(&group[id].1, &ids[0])).count();
                prop_assert!(kept >= whole.len().min(quota_min), "{id} kept {kept} of {whole:?}");
            }
        }

        /// The uniform assignor: complete and balanced per topic.
        #[test]
        fn uniform_is_complete_and_balanced(members in 1usize..6, count in 0i32..13) {
            let topics = topics(&[("t", count)]);
            let mut group: Group = (0..members)
                .map(|m| (format!("m{m}"), subscribe(&["t"])))
                .collect();
            rebalance(Assignor::Uniform, &mut group, &topics);
            check_complete(&group, &topics);
            for (_, p) in group.values() {
                let n = slots(p, &topics["t"].0).len();
                prop_assert!(n == count as usize / members || n == count as usize / members + 1);
            }
        }
    }
}
