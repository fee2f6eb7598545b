"""Consumer groups with confluent-kafka (librdkafka) against strom.

The broker runs the classic group protocol (JoinGroup/SyncGroup/Heartbeat);
members that must be killed, paused or run side by side are separate
processes (python/group_worker.py via compat.GroupWorker) that log their
rebalance callbacks, every record they were handed and every commit. Sessions
are short (session.timeout.ms=6000, heartbeat.interval.ms=500); the broker's
group.initial.rebalance.delay.ms (3 s) delays the first assignment of an
empty group. No assertion depends on timing: waits are failure guards.
"""

from __future__ import annotations

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from compat import (
    GROUP_GUARD_S,
    GUARD_S,
    GroupWorker,
    cf_admin,
    cf_create_topic,
    cf_describe_group,
    cf_drain,
    cf_group_consumer,
    cf_group_offsets,
    cf_list_groups,
    check_consumed_once,
    produce_per_partition,
    unique_topic,
    wait_assignments,
    wait_until,
)

STALE_MEMBER_ERRORS = {
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
}


@pytest.fixture
def workers(broker, tmp_path):
    """start(group, topics, name, **kw) -> GroupWorker; all are killed at the end."""
    made = []

    def start(group, topics, name, **kw):
        w = GroupWorker(broker.bootstrap, group, topics, tmp_path, name, **kw)
        made.append(w)
        return w

    yield start
    for w in made:
        w.cleanup()


def node_id(bootstrap):
    md = cf_admin(bootstrap).list_topics(timeout=10)
    return next(iter(md.brokers))


def tps(topic, n):
    return {(topic, p) for p in range(n)}


def wait_consumed(workers, expected, what):
    """Waits until every record in `expected` was handed to some worker and its
    commit logged by that worker (commit mode "each")."""

    def done():
        for w in workers:
            assert w.alive(), f"{w.name} died\n{w.output()}"
        seen = set()
        for w in workers:
            seen |= {(t, p, o) for t, p, o, _ in w.consumed()}
        if not set(expected) <= seen:
            return None
        committed = {}
        for w in workers:
            for k, o in w.committed().items():
                committed[k] = max(committed.get(k, -1), o)
        ends = {}
        for t, p, o in expected:
            ends[(t, p)] = max(ends.get((t, p), 0), o + 1)
        return all(committed.get(k, -1) >= v for k, v in ends.items())

    wait_until(done, what, timeout=GROUP_GUARD_S, interval=0.2)


# ------------------------------------------------------ membership, SIGKILL


def test_three_members_split_partitions_consume_once_and_survive_a_sigkilled_member(
    broker, workers
):
    topic = unique_topic("cfg-three")
    group = unique_topic("cfg-three-g")
    cf_create_topic(broker.bootstrap, topic, partitions=6)
    all_tps = tps(topic, 6)

    ws = [workers(group, [topic], f"m{i}") for i in range(3)]
    sets = wait_assignments(ws, all_tps, "3 members splitting 6 partitions")
    assert sorted(len(s) for s in sets) == [2, 2, 2], sets

    # Produce only once the group is settled: with a commit after every
    # record, each record must reach the application exactly once.
    batch1 = produce_per_partition(broker.bootstrap, topic, 6, 30, "b1")
    wait_consumed(ws, batch1, "all 180 records consumed and committed")
    seen = check_consumed_once(ws, batch1)
    for (t, p, o), readers in seen.items():
        owner = next(w for w, s in zip(ws, sets) if (t, p) in s)
        assert [n for n, _ in readers] == [owner.name], (t, p, o, readers)
    for w in ws:
        assert not w.commit_errors(), w.commit_errors()

    admin = cf_admin(broker.bootstrap)
    assert cf_group_offsets(admin, group) == {k: (30, "") for k in all_tps}

    # SIGKILL one member: no LeaveGroup; after its session timeout the broker
    # must hand its partitions to the two survivors.
    victim, survivors = ws[0], ws[1:]
    victim_parts = sets[0]
    assert victim.kill() == -9
    batch2 = produce_per_partition(broker.bootstrap, topic, 6, 10, "b2")
    new_sets = wait_assignments(survivors, all_tps, "survivors taking over the killed member's partitions")
    assert sorted(len(s) for s in new_sets) == [3, 3], new_sets
    wait_consumed(survivors, batch2, "records produced after the kill consumed")

    # Everything the victim had committed stays consumed: its partitions
    # resume at offset 30 (no re-delivery, no gap).
    check_consumed_once(ws, {**batch1, **batch2})
    for t, p in victim_parts:
        taken = [o for w in survivors for (tt, pp, o, _) in w.consumed() if (tt, pp) == (t, p)]
        assert sorted(taken) == list(range(30, 40)), (p, sorted(taken))
    assert cf_group_offsets(admin, group) == {k: (40, "") for k in all_tps}

    desc = cf_describe_group(admin, group)
    assert desc.state == ConsumerGroupState.STABLE
    assert sorted(m.client_id for m in desc.members) == ["m1", "m2"]
    for w in survivors:
        w.terminate()
    wait_until(
        lambda: cf_describe_group(admin, group).state == ConsumerGroupState.EMPTY,
        "group Empty after the survivors left",
    )


# ------------------------------------------------------- restart, resume


def test_committed_offsets_survive_broker_restarts_and_members_resume(broker):
    """Offsets committed before a SIGTERM restart and before a SIGKILL are
    there afterwards, metadata included, and a new member of the group starts
    exactly at them: no committed record again, no gap."""
    topic = unique_topic("cfg-resume")
    group = unique_topic("cfg-resume-g")
    cf_create_topic(broker.bootstrap, topic, partitions=3)
    produce_per_partition(broker.bootstrap, topic, 3, 20, "r1")
    admin = cf_admin(broker.bootstrap)

    # First member reads everything, commits a different position per
    # partition (with metadata), leaves.
    c = cf_group_consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        msgs = cf_drain(c, {(topic, p): 20 for p in range(3)})
        assert len(msgs) == 60
        commits = [TopicPartition(topic, p, 5 + 4 * p, f"first-{p}") for p in range(3)]
        res = c.commit(offsets=commits, asynchronous=False)
        assert all(r.error is None for r in res), res
    finally:
        c.close()
    want = {(topic, p): (5 + 4 * p, f"first-{p}") for p in range(3)}
    assert cf_group_offsets(admin, group) == want

    assert broker.restart() == 0
    admin = cf_admin(broker.bootstrap)
    assert cf_group_offsets(admin, group) == want

    # A new member resumes exactly at the committed offsets.
    c = cf_group_consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        msgs = cf_drain(c, {(topic, p): 20 for p in range(3)})
        for p in range(3):
            got = [(m.offset(), m.value()) for m in msgs if m.partition() == p]
            assert got == [(i, f"r1-{p}-{i}".encode()) for i in range(5 + 4 * p, 20)], (p, got)
        # commit() with no arguments: the positions (20 on every partition).
        res = c.commit(asynchronous=False)
        assert sorted((r.partition, r.offset) for r in res) == [(p, 20) for p in range(3)]
        assert all(r.error is None for r in res), res
        # And once more with metadata (last acknowledged commit before the kill).
        res = c.commit(
            offsets=[TopicPartition(topic, p, 20, f"second-{p}") for p in range(3)], asynchronous=False
        )
        assert all(r.error is None for r in res), res
    finally:
        c.close()

    produce_per_partition(broker.bootstrap, topic, 3, 3, "r2")
    assert broker.restart(kill=True) == -9
    admin = cf_admin(broker.bootstrap)
    assert cf_group_offsets(admin, group) == {(topic, p): (20, f"second-{p}") for p in range(3)}
    c = cf_group_consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        msgs = cf_drain(c, {(topic, p): 23 for p in range(3)})
        assert sorted((m.partition(), m.offset(), m.value()) for m in msgs) == [
            (p, 20 + i, f"r2-{p}-{i}".encode()) for p in range(3) for i in range(3)
        ]
    finally:
        c.close()


def test_group_left_by_its_members_is_empty_after_restart(broker):
    """Kafka stores the group (no members) when the last member leaves: after
    a restart it is Empty, and any member may join, whatever its assignor."""
    topic = unique_topic("cfg-left")
    group = unique_topic("cfg-left-g")
    cf_create_topic(broker.bootstrap, topic, partitions=2)
    produce_per_partition(broker.bootstrap, topic, 2, 4, "lf")
    admin = cf_admin(broker.bootstrap)

    # A long session: a member wrongly kept would stay for the whole test.
    c = cf_group_consumer(
        broker.bootstrap,
        group,
        partition_assignment_strategy="range",
        session_timeout_ms=45000,
        max_poll_interval_ms=60000,
    )
    try:
        c.subscribe([topic])
        cf_drain(c, {(topic, 0): 4, (topic, 1): 4})
        c.commit(offsets=[TopicPartition(topic, p, 2) for p in range(2)], asynchronous=False)
    finally:
        c.close()
    desc = cf_describe_group(admin, group)
    assert (desc.state, desc.members) == (ConsumerGroupState.EMPTY, [])

    assert broker.restart() == 0
    admin = cf_admin(broker.bootstrap)
    desc = cf_describe_group(admin, group)
    assert (desc.state, [m.member_id for m in desc.members]) == (ConsumerGroupState.EMPTY, [])
    assert cf_group_offsets(admin, group) == {(topic, p): (2, "") for p in range(2)}

    c = cf_group_consumer(broker.bootstrap, group, partition_assignment_strategy="roundrobin")
    try:
        c.subscribe([topic])
        msgs = cf_drain(c, {(topic, 0): 4, (topic, 1): 4})
        assert sorted((m.partition(), m.offset()) for m in msgs) == [(0, 2), (0, 3), (1, 2), (1, 3)]
    finally:
        c.close()


# ------------------------------------------------------ cooperative-sticky


def revoked_count(w):
    """How many partitions a worker's revoke callbacks gave up in total."""
    return sum(len(e["parts"]) for e in w.events() if e["ev"] == "revoke")


def test_cooperative_sticky_member_joins_and_leaves(broker, workers):
    topic = unique_topic("cfg-coop")
    group = unique_topic("cfg-coop-g")
    cf_create_topic(broker.bootstrap, topic, partitions=6)
    all_tps = tps(topic, 6)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    admin = cf_admin(broker.bootstrap)
    expected = {}

    a = workers(group, [topic], "a", conf=conf)
    (sa,) = wait_assignments([a], all_tps, "first member owning all 6 partitions")
    batch = produce_per_partition(broker.bootstrap, topic, 6, 5, "c1")
    expected.update(batch)
    wait_consumed([a], batch, "first batch consumed by the only member")

    # A second member: the first gives up half of its partitions and keeps
    # the rest without ever revoking them (incremental protocol).
    b = workers(group, [topic], "b", conf=conf)
    sa2, sb2 = wait_assignments([a, b], all_tps, "two cooperative members")
    assert sorted([len(sa2), len(sb2)]) == [3, 3]
    assert sa2 < sa
    revoked_a = {tuple(x) for e in a.events() if e["ev"] == "revoke" for x in e["parts"]}
    assert revoked_a == sa - sa2, f"a revoked {revoked_a}, moved {sa - sa2}"
    batch = produce_per_partition(broker.bootstrap, topic, 6, 5, "c2")
    expected.update(batch)
    wait_consumed([a, b], batch, "second batch consumed by two members")

    # A third member: each of the others hands over one partition.
    c = workers(group, [topic], "c", conf=conf)
    sa3, sb3, sc3 = wait_assignments([a, b, c], all_tps, "three cooperative members")
    assert sorted(len(s) for s in (sa3, sb3, sc3)) == [2, 2, 2]
    assert sa3 < sa2 and sb3 < sb2, (sa2, sa3, sb2, sb3)
    batch = produce_per_partition(broker.bootstrap, topic, 6, 5, "c3")
    expected.update(batch)
    wait_consumed([a, b, c], batch, "third batch consumed by three members")

    desc = cf_describe_group(admin, group)
    assert desc.partition_assignor == "cooperative-sticky"
    assert desc.state == ConsumerGroupState.STABLE
    assert sorted(m.client_id for m in desc.members) == ["a", "b", "c"]

    # b leaves (LeaveGroup on close): a and c only gain partitions.
    revokes_before = {w.name: revoked_count(w) for w in (a, c)}
    b.terminate()
    sa4, sc4 = wait_assignments([a, c], all_tps, "b's partitions moving to a and c")
    assert sa3 < sa4 and sc3 < sc4, (sa3, sa4, sc3, sc4)
    for w in (a, c):
        assert revoked_count(w) == revokes_before[w.name], (
            f"{w.name} revoked partitions when b left: {w.rebalance_events()}"
        )
    batch = produce_per_partition(broker.bootstrap, topic, 6, 5, "c4")
    expected.update(batch)
    wait_consumed([a, c], batch, "fourth batch consumed after b left")

    check_consumed_once([a, b, c], expected)
    assert cf_group_offsets(admin, group) == {k: (20, "") for k in all_tps}
    for w in (a, c):
        assert not any(e["ev"] == "lost" for e in w.events()), w.rebalance_events()
        w.terminate()


# ------------------------------------------------------- static membership


def static_group(broker, workers, prefix):
    """Three static members (group.instance.id) over 6 partitions; s0 joins
    alone first, so it is the group leader (the leader stays the leader
    across the rebalance that adds s1 and s2). Returns (topic, group,
    start(i), members, their assignments)."""
    topic = unique_topic(prefix)
    group = unique_topic(prefix + "-g")
    cf_create_topic(broker.bootstrap, topic, partitions=6)
    all_tps = tps(topic, 6)
    # A session long enough for the restarts below to fit in it comfortably.
    conf = {"session.timeout.ms": 20000}

    def start(i):
        return workers(group, [topic], f"s{i}", conf={**conf, "group.instance.id": f"{group}-i{i}"})

    s0 = start(0)
    wait_assignments([s0], all_tps, "the first static member owning everything")
    ws = [s0, start(1), start(2)]
    sets = wait_assignments(ws, all_tps, "3 static members")
    desc = cf_describe_group(cf_admin(broker.bootstrap), group)
    assert desc.state == ConsumerGroupState.STABLE
    by_instance = {m.group_instance_id: m for m in desc.members}
    assert set(by_instance) == {f"{group}-i{i}" for i in range(3)}
    for i, s in enumerate(sets):
        got = {(tp.topic, tp.partition) for tp in by_instance[f"{group}-i{i}"].assignment.topic_partitions}
        assert got == s, (i, got, s)
    return topic, group, start, ws, sets


def restart_static_member(broker, group, start, ws, sets, i, tag):
    """SIGKILLs member i (no LeaveGroup), starts it again with the same
    group.instance.id well within its session timeout, and checks that it gets
    its partitions back while the other members see no rebalance."""
    admin = cf_admin(broker.bootstrap)
    old_member_id = {
        m.group_instance_id: m.member_id for m in cf_describe_group(admin, group).members
    }[f"{group}-i{i}"]
    others = [w for j, w in enumerate(ws) if j != i]
    before = {w.name: len(w.rebalance_events()) for w in others}
    consumed_before = {w.name: len(w.consumed()) for w in ws}
    assert ws[i].kill() == -9
    back = start(i)
    wait_until(lambda: back.assignment(), f"restarted static member s{i} assigned", timeout=GROUP_GUARD_S)
    assert back.assignment() == sets[i], (back.rebalance_events(), sets[i])
    ws[i] = back

    # The group works and nothing moved: records on every partition reach
    # their unchanged owner, and the others never saw a rebalance (with
    # eager assignment, a rebalance revokes everything from every member).
    topic = next(iter(sets[0]))[0]
    batch = produce_per_partition(broker.bootstrap, topic, 6, 2, tag)
    wait_consumed(ws, batch, f"records consumed after restarting s{i}")
    for w, s in zip(ws, sets):
        new = w.consumed()[consumed_before.get(w.name, 0) if w is not back else 0:]
        assert {(t, p) for t, p, o, _v in new if (t, p, o) in batch} == s, (w.name, new, s)
    for w in others:
        assert len(w.rebalance_events()) == before[w.name], (
            f"restarting static member s{i} rebalanced {w.name}: "
            f"{w.rebalance_events()[before[w.name]:]}"
        )

    desc = cf_describe_group(admin, group)
    assert desc.state == ConsumerGroupState.STABLE
    by_instance = {m.group_instance_id: m for m in desc.members}
    assert set(by_instance) == {f"{group}-i{j}" for j in range(3)}
    assert by_instance[f"{group}-i{i}"].member_id != old_member_id


def test_static_followers_restart_get_their_partitions_back_without_rebalance(broker, workers):
    topic, group, start, ws, sets = static_group(broker, workers, "cfg-static")
    restart_static_member(broker, group, start, ws, sets, 1, "st1")
    restart_static_member(broker, group, start, ws, sets, 2, "st2")
    for w in ws:
        w.terminate()


def test_static_leader_restart_gets_its_partitions_back_without_rebalance(broker, workers):
    """Kafka (GroupCoordinator.updateStaticMemberAndRebalance) does not
    rebalance a Stable group when its leader comes back with the same
    group.instance.id either: it answers with the current generation and
    the old leader id (JoinGroup v9+: skipAssignment), so nobody reassigns."""
    topic, group, start, ws, sets = static_group(broker, workers, "cfg-static-leader")
    restart_static_member(broker, group, start, ws, sets, 0, "st0")
    for w in ws:
        w.terminate()


# ------------------------------------------------------------------ admin


def test_admin_list_describe_offsets_alter_and_delete(broker):
    topic = unique_topic("cfg-admin")
    group = unique_topic("cfg-admin-g")
    cf_create_topic(broker.bootstrap, topic, partitions=3)
    produce_per_partition(broker.bootstrap, topic, 3, 10, "ad")
    admin = cf_admin(broker.bootstrap)
    bid = node_id(broker.bootstrap)

    c = cf_group_consumer(broker.bootstrap, group, client_id="cfg-admin-client")
    try:
        c.subscribe([topic])
        assert len(cf_drain(c, {(topic, p): 10 for p in range(3)})) == 30
        res = c.commit(
            offsets=[TopicPartition(topic, 0, 7, "meta-zero"), TopicPartition(topic, 1, 10, "meta-one")],
            asynchronous=False,
        )
        assert all(r.error is None for r in res), res

        listed = cf_list_groups(admin)
        assert group in listed
        assert listed[group].state == ConsumerGroupState.STABLE
        assert listed[group].is_simple_consumer_group is False
        assert group in cf_list_groups(admin, states=[ConsumerGroupState.STABLE])
        assert group not in cf_list_groups(admin, states=[ConsumerGroupState.EMPTY])

        desc = cf_describe_group(admin, group)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.is_simple_consumer_group is False
        assert desc.partition_assignor == "range"  # librdkafka's first choice
        assert desc.coordinator.id == bid
        (m,) = desc.members
        assert m.client_id == "cfg-admin-client"
        assert m.member_id == c.memberid()
        assert m.host
        assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) == [
            (topic, p) for p in range(3)
        ]

        assert cf_group_offsets(admin, group) == {(topic, 0): (7, "meta-zero"), (topic, 1): (10, "meta-one")}
        # Asking for named partitions, one of them never committed.
        assert cf_group_offsets(admin, group, [(topic, 1), (topic, 2)]) == {(topic, 1): (10, "meta-one")}

        # The member's own view of the commits (OffsetFetch from the consumer).
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=GUARD_S)
        assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == [
            (0, 7, "meta-zero"),
            (1, 10, "meta-one"),
        ]

        # A group with a member cannot be deleted, and an admin offset change
        # (generation -1, no member id) is refused while it has members.
        fut = admin.delete_consumer_groups([group], request_timeout=GUARD_S)[group]
        with pytest.raises(KafkaException) as ei:
            fut.result(timeout=GUARD_S)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value
        fut = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])], request_timeout=GUARD_S
        )[group]
        with pytest.raises(KafkaException) as ei:
            res = fut.result(timeout=GUARD_S)
            for tp in res.topic_partitions:
                if tp.error is not None:
                    raise KafkaException(tp.error)
        assert ei.value.args[0].code() == KafkaError.UNKNOWN_MEMBER_ID, ei.value
        assert cf_group_offsets(admin, group)[(topic, 0)] == (7, "meta-zero")
    finally:
        c.close()

    # The member left: Empty, offsets kept.
    desc = cf_describe_group(admin, group)
    assert desc.state == ConsumerGroupState.EMPTY
    assert desc.members == []
    assert group in cf_list_groups(admin, states=[ConsumerGroupState.EMPTY])
    assert group not in cf_list_groups(admin, states=[ConsumerGroupState.STABLE])

    # Offset reset of the empty group, then a member starts from there.
    res = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 8)])],
        request_timeout=GUARD_S,
    )[group].result(timeout=GUARD_S)
    assert sorted((tp.partition, tp.offset) for tp in res.topic_partitions) == [(0, 3), (1, 8)]
    assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions
    assert {k: o for k, (o, _) in cf_group_offsets(admin, group).items()} == {(topic, 0): 3, (topic, 1): 8}
    c = cf_group_consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        msgs = cf_drain(c, {(topic, p): 10 for p in range(3)})
        # Partition 2 has no committed offset: auto.offset.reset=earliest.
        assert sorted((m.partition(), m.offset()) for m in msgs) == (
            [(0, o) for o in range(3, 10)] + [(1, 8), (1, 9)] + [(2, o) for o in range(10)]
        )
    finally:
        c.close()

    # Deleting the empty group removes it and its offsets.
    admin.delete_consumer_groups([group], request_timeout=GUARD_S)[group].result(timeout=GUARD_S)
    assert group not in cf_list_groups(admin)
    assert cf_group_offsets(admin, group) == {}
    gone = describe_unknown(admin, group)
    assert gone is None or (gone.state == ConsumerGroupState.DEAD and gone.members == []), gone


def describe_unknown(admin, group):
    """Describes a group that does not exist: DescribeGroups before v6 answers
    state Dead with no members, v6 (KIP-1043) GROUP_ID_NOT_FOUND. Returns the
    description, or None for GROUP_ID_NOT_FOUND."""
    try:
        return cf_describe_group(admin, group)
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, e
        return None


def test_describe_and_delete_unknown_group(broker):
    admin = cf_admin(broker.bootstrap)
    group = unique_topic("cfg-nosuch")
    d = describe_unknown(admin, group)
    assert d is None or (d.state == ConsumerGroupState.DEAD and d.members == []), vars(d)
    assert group not in cf_list_groups(admin)
    assert cf_group_offsets(admin, group) == {}
    fut = admin.delete_consumer_groups([group], request_timeout=GUARD_S)[group]
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=GUARD_S)
    assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, ei.value


def test_simple_consumer_commit_with_metadata(broker):
    """assign() + commit: offsets stored for a group that never had members
    (generation -1), metadata included; the group lists as Empty."""
    topic = unique_topic("cfg-simple")
    group = unique_topic("cfg-simple-g")
    cf_create_topic(broker.bootstrap, topic, partitions=2)
    produce_per_partition(broker.bootstrap, topic, 2, 4, "sm")
    admin = cf_admin(broker.bootstrap)

    c = cf_group_consumer(broker.bootstrap, group)
    try:
        meta = "x" * 200 + " \u00e9\u00e8 metadata"
        res = c.commit(
            offsets=[TopicPartition(topic, 0, 2, meta), TopicPartition(topic, 1, 4, "")],
            asynchronous=False,
        )
        assert all(r.error is None for r in res), res
    finally:
        c.close()

    c = cf_group_consumer(broker.bootstrap, group)
    try:
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=GUARD_S)
        assert [(tp.offset, tp.metadata or "") for tp in got] == [(2, meta), (4, "")]
        # assign() starts at the committed offset.
        c.assign([TopicPartition(topic, 0)])
        msgs = []
        while len(msgs) < 2:
            m = c.poll(GUARD_S)
            assert m is not None, "timed out"
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                continue
            msgs.append(m)
        assert [(m.offset(), m.value()) for m in msgs] == [(2, b"sm-0-2"), (3, b"sm-0-3")]
    finally:
        c.close()

    assert cf_group_offsets(admin, group) == {(topic, 0): (2, meta), (topic, 1): (4, "")}
    listed = cf_list_groups(admin)
    assert group in listed, sorted(listed)
    assert listed[group].state == ConsumerGroupState.EMPTY


# ----------------------------------------------------------------- errors


def test_commit_from_a_member_kicked_out_of_the_group_fails(broker, workers):
    """A member stalls (SIGSTOP) holding an uncommitted record; its session
    expires and another member takes everything. When it wakes up, its commit
    with the old member id / generation is refused and not stored."""
    topic = unique_topic("cfg-stale")
    group = unique_topic("cfg-stale-g")
    cf_create_topic(broker.bootstrap, topic, partitions=2)
    batch = produce_per_partition(broker.bootstrap, topic, 2, 5, "sl")
    admin = cf_admin(broker.bootstrap)

    stale = workers(group, [topic], "stale", commit="hold")
    wait_until(lambda: any(e["ev"] == "hold" for e in stale.events()), "first record held",
               timeout=GROUP_GUARD_S)
    (held,) = stale.consumed()
    stale.pause()
    try:
        other = workers(group, [topic], "other", commit="none")
        wait_assignments([other], tps(topic, 2), "the other member owning both partitions")
        wait_until(lambda: len(other.consumed()) >= len(batch), "other consumed everything",
                   timeout=GROUP_GUARD_S)
    finally:
        stale.release_hold()
        stale.resume()
    wait_until(lambda: stale.commit_errors() or stale.committed(), "the stale commit's outcome",
               timeout=GROUP_GUARD_S)
    assert not stale.committed(), f"stale commit accepted: {stale.events()}"
    (err,) = stale.commit_errors()
    assert err["code"] in STALE_MEMBER_ERRORS, err
    assert (err["t"], err["p"], err["o"]) == (held[0], held[1], held[2] + 1)
    assert cf_group_offsets(admin, group) == {}, "a refused commit was stored"
    stale.terminate()
    other.terminate()
