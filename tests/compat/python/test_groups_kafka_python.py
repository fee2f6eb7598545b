"""Consumer groups with kafka-python (3.x) against strom.

kafka-python 3.x names the group admin calls list_groups, describe_groups,
list_group_offsets, delete_groups, alter_group_offsets, reset_group_offsets
and delete_group_offsets (the 2.x list_consumer_groups & co. are gone). Its
producer enables idempotence by default: enable_idempotence=False here. The
two-member test runs each member in its own process (group_worker.py with
client "kafka-python"); the others use in-process consumers.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as Errors
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.protocol.admin import DescribeGroupsRequest
from kafka.protocol.consumer import OffsetCommitRequest
from kafka.structs import MemberState, OffsetAndMetadata

from compat import (
    GROUP_GUARD_S,
    GUARD_S,
    GroupWorker,
    check_consumed_once,
    unique_topic,
    wait_assignments,
    wait_until,
)

GUARD_MS = int(GUARD_S * 1000)


@pytest.fixture(scope="module")
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=GUARD_MS)
    yield a
    a.close()


@pytest.fixture
def workers(broker, tmp_path):
    made = []

    def start(group, topics, name, **kw):
        w = GroupWorker(broker.bootstrap, group, topics, tmp_path, name, client="kafka-python", **kw)
        made.append(w)
        return w

    yield start
    for w in made:
        w.cleanup()


def create(admin, topic, partitions):
    admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}})

    def ready():
        (t,) = admin.describe_topics([topic])
        return t["error_code"] == 0 and len(t["partitions"]) == partitions and all(
            p["leader_id"] >= 0 for p in t["partitions"]
        )

    wait_until(ready, f"{topic} with {partitions} partitions")


def produce(bootstrap, topic, partitions, per_partition, tag):
    """{(topic, partition, offset): value} of what was written."""
    p = KafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=GUARD_MS,
        max_block_ms=GUARD_MS,
    )
    try:
        futs = [
            (p.send(topic, value=f"{tag}-{part}-{i}".encode(), partition=part), f"{tag}-{part}-{i}")
            for part in range(partitions)
            for i in range(per_partition)
        ]
        p.flush(timeout=GUARD_S)
        out = {}
        for f, v in futs:
            md = f.get(timeout=GUARD_S)
            out[(topic, md.partition, md.offset)] = v
        return out
    finally:
        p.close()


def group_consumer(bootstrap, group, **kw):
    conf = dict(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=30000,
        fetch_max_wait_ms=100,
        request_timeout_ms=GUARD_MS,
    )
    conf.update(kw)
    return KafkaConsumer(**conf)


def drain(c, ends, timeout=GROUP_GUARD_S):
    """Polls a subscribed consumer until it owns every partition of `ends`
    ({TopicPartition: end offset}) and its position there is the end offset.
    Returns the records in arrival order."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        assigned = c.assignment()
        if set(ends) <= assigned and all(c.position(tp, timeout_ms=GUARD_MS) == e for tp, e in ends.items()):
            return out
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out draining: assigned {sorted(assigned)}, {len(out)} records, ends {ends}"
            )
        for _tp, recs in c.poll(timeout_ms=200).items():
            out.extend(recs)


def assigned(member):
    """{(topic, partition)} of a described member (kafka-python decodes the
    consumer-protocol assignment into a dict)."""
    return {
        (a["topic"], p) for a in member["member_assignment"]["assigned_partitions"] for p in a["partitions"]
    }


def group_offsets(admin, group):
    """{(topic, partition): (offset, metadata)} of committed offsets."""
    res = admin.list_group_offsets(group)
    return {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in res[group].items() if om.offset >= 0}


def raw_offset_commit(admin, group, generation, member_id, offsets):
    """Sends one OffsetCommit (kafka-python's protocol layer) to the group's
    coordinator; returns {(topic, partition): error class}."""
    _Topic = OffsetCommitRequest.OffsetCommitRequestTopic
    _Partition = _Topic.OffsetCommitRequestPartition
    by_topic = {}
    for (topic, partition), offset in offsets.items():
        by_topic.setdefault(topic, []).append(
            _Partition(partition_index=partition, committed_offset=offset,
                       committed_leader_epoch=-1, committed_metadata="raw")
        )
    request = OffsetCommitRequest(
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member_id,
        group_instance_id=None,
        retention_time_ms=-1,
        topics=[_Topic(name=t, partitions=ps) for t, ps in by_topic.items()],
        max_version=8,
    )

    async def go():
        coordinator = await admin._find_coordinator_id(group)
        return await admin._manager.send(request, node_id=coordinator)

    response = admin._manager.run(go)
    return {
        (t.name, p.partition_index): Errors.for_code(p.error_code)
        for t in response.topics
        for p in t.partitions
    }


def wait_stable(c, partitions):
    """Polls c until its group membership is stable and it owns `partitions`."""

    def ready():
        c.poll(timeout_ms=100)
        return c.group_metadata().state == MemberState.STABLE and c.assignment() == set(partitions)

    wait_until(ready, "consumer stable with its assignment", timeout=GROUP_GUARD_S, interval=0)


def test_two_members_split_four_partitions_and_consume_each_record_once(broker, admin, workers):
    topic = unique_topic("kpg-two")
    group = unique_topic("kpg-two-g")
    create(admin, topic, 4)
    all_tps = {(topic, p) for p in range(4)}

    ws = [workers(group, [topic], f"k{i}") for i in range(2)]
    sets = wait_assignments(ws, all_tps, "2 kafka-python members splitting 4 partitions")
    assert sorted(len(s) for s in sets) == [2, 2], sets

    batch = produce(broker.bootstrap, topic, 4, 25, "kp")

    def consumed():
        for w in ws:
            assert w.alive(), w.output()
        committed = {}
        for w in ws:
            committed.update(w.committed())
        return all(committed.get(k) == 25 for k in all_tps)

    wait_until(consumed, "all 100 records consumed and committed", timeout=GROUP_GUARD_S)
    seen = check_consumed_once(ws, batch)
    for (t, p, _o), readers in seen.items():
        owner = next(w for w, s in zip(ws, sets) if (t, p) in s)
        assert [n for n, _ in readers] == [owner.name]
    for w in ws:
        assert not w.commit_errors(), w.commit_errors()
    assert group_offsets(admin, group) == {k: (25, "") for k in all_tps}

    (desc,) = admin.describe_groups([group]).values()
    assert desc["error"] is None, desc
    assert desc["group_state"] == "Stable"
    assert desc["protocol_type"] == "consumer"
    assert desc["protocol_data"] == "range"  # kafka-python's first choice
    assert sorted(m["client_id"] for m in desc["members"]) == ["k0", "k1"]
    for m in desc["members"]:
        w = ws[int(m["client_id"][1])]
        assert m["member_metadata"]["topics"] == [topic]
        got = assigned(m)
        assert got == w.assignment(), (m, w.assignment())

    # One member leaves (LeaveGroup on close): the other takes over all four.
    ws[0].terminate()
    wait_assignments([ws[1]], all_tps, "the remaining member owning all partitions")
    more = produce(broker.bootstrap, topic, 4, 5, "kp2")
    wait_until(lambda: all(ws[1].committed().get(k) == 30 for k in all_tps),
               "records after the leave consumed", timeout=GROUP_GUARD_S)
    check_consumed_once(ws, {**batch, **more})
    ws[1].terminate()


def test_commit_metadata_and_resume_after_restart(broker, admin):
    topic = unique_topic("kpg-resume")
    group = unique_topic("kpg-resume-g")
    create(admin, topic, 2)
    produce(broker.bootstrap, topic, 2, 10, "rs")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    c = group_consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        recs = drain(c, {tp0: 10, tp1: 10})
        assert len(recs) == 20
        c.commit({tp0: OffsetAndMetadata(4, "kp-meta-0", -1), tp1: OffsetAndMetadata(7, "", -1)})
        assert c.committed(tp0, metadata=True)[:2] == (4, "kp-meta-0")
        assert c.committed(tp1, metadata=True)[:2] == (7, "")
    finally:
        c.close(autocommit=False)
    want = {(topic, 0): (4, "kp-meta-0"), (topic, 1): (7, "")}
    assert group_offsets(admin, group) == want

    assert broker.restart() == 0
    # A fresh admin client: right after the restart the module one may still
    # be in its reconnect backoff (kafka-python raises NodeNotReadyError).
    a2 = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=GUARD_MS)
    c = group_consumer(broker.bootstrap, group)
    try:
        assert group_offsets(a2, group) == want
        c.subscribe([topic])
        recs = drain(c, {tp0: 10, tp1: 10})
        assert sorted((r.partition, r.offset, r.value) for r in recs) == [
            (0, o, f"rs-0-{o}".encode()) for o in range(4, 10)
        ] + [(1, o, f"rs-1-{o}".encode()) for o in range(7, 10)]
        c.commit()  # the positions: 10 and 10
        assert group_offsets(a2, group) == {(topic, 0): (10, ""), (topic, 1): (10, "")}
    finally:
        c.close(autocommit=False)
        a2.close()


def test_admin_list_describe_offsets_delete(broker, admin):
    topic = unique_topic("kpg-admin")
    group = unique_topic("kpg-admin-g")
    create(admin, topic, 2)
    produce(broker.bootstrap, topic, 2, 6, "ad")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    c = group_consumer(broker.bootstrap, group, client_id="kpg-admin-client")
    try:
        c.subscribe([topic])
        drain(c, {tp0: 6, tp1: 6})
        c.commit({tp0: OffsetAndMetadata(2, "m0", -1), tp1: OffsetAndMetadata(6, "m1", -1)})
        wait_stable(c, {tp0, tp1})
        meta = c.group_metadata()

        groups = {g["group_id"]: g for g in admin.list_groups()}
        assert groups.get(group) == {
            "group_id": group,
            "protocol_type": "consumer",
            "group_state": "Stable",
            "group_type": "classic",
        }, groups.get(group)
        assert group in {g["group_id"] for g in admin.list_groups(states_filter=["Stable"])}
        assert group not in {g["group_id"] for g in admin.list_groups(states_filter=["Empty"])}

        desc = admin.describe_groups([group])[group]
        assert desc["error"] is None
        assert desc["group_state"] == "Stable"
        assert desc["protocol_type"] == "consumer"
        (m,) = desc["members"]
        assert m["member_id"] == meta.member_id
        assert m["client_id"] == "kpg-admin-client"
        assert assigned(m) == {(topic, 0), (topic, 1)}

        assert group_offsets(admin, group) == {(topic, 0): (2, "m0"), (topic, 1): (6, "m1")}
        one = admin.list_group_offsets({group: [tp1]})[group]
        assert {tp: om[:2] for tp, om in one.items()} == {tp1: (6, "m1")}

        # Not while it has a member: deletion, admin commits, offset deletion
        # of a subscribed topic.
        assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}
        res = admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(1, "", -1)})
        assert res == {tp0: Errors.UnknownMemberIdError}, res
        res = admin.delete_group_offsets(group, [tp0])
        assert res == {tp0: Errors.GroupSubscribedToTopicError}, res
        assert group_offsets(admin, group)[(topic, 0)] == (2, "m0")
    finally:
        c.close(autocommit=False)

    desc = admin.describe_groups([group])[group]
    assert desc["group_state"] == "Empty" and desc["members"] == [], desc
    assert group in {g["group_id"] for g in admin.list_groups(states_filter=["Empty"])}

    # Empty: offsets can be changed, reset and deleted.
    res = admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(5, "set", -1)})
    assert res == {tp0: Errors.NoError}, res
    assert group_offsets(admin, group)[(topic, 0)] == (5, "set")
    res = admin.reset_group_offsets(group, {tp0: OffsetSpec.EARLIEST, tp1: 3})
    assert {tp: r["error"] for tp, r in res.items()} == {tp0: Errors.NoError, tp1: Errors.NoError}
    assert {k: o for k, (o, _) in group_offsets(admin, group).items()} == {(topic, 0): 0, (topic, 1): 3}
    res = admin.delete_group_offsets(group, [tp1])
    assert res == {tp1: Errors.NoError}, res
    assert {k: o for k, (o, _) in group_offsets(admin, group).items()} == {(topic, 0): 0}

    assert admin.delete_groups([group]) == {group: "OK"}
    assert group not in {g["group_id"] for g in admin.list_groups()}
    assert group_offsets(admin, group) == {}
    assert admin.delete_groups([group]) == {group: "GroupIdNotFoundError"}


def check_unknown_group_description(admin, group):
    """DescribeGroups of a group that does not exist: state Dead and no
    members before v6, GROUP_ID_NOT_FOUND from v6 on (KIP-1043)."""
    version = admin._manager.broker_version_data.api_version(DescribeGroupsRequest)
    desc = admin.describe_groups([group])[group]
    if version >= 6:
        assert desc["error"] is not None and "GroupIdNotFound" in desc["error"], (version, desc)
    else:
        assert desc["error"] is None, (version, desc)
        assert desc["group_state"] == "Dead" and desc["members"] == [], (version, desc)


def test_describe_unknown_group(broker, admin):
    check_unknown_group_description(admin, unique_topic("kpg-nosuch"))


def test_commit_with_stale_generation_or_unknown_member(broker, admin):
    """OffsetCommit through kafka-python's protocol layer with the identity of
    a live member, but a wrong generation or member id."""
    topic = unique_topic("kpg-gen")
    group = unique_topic("kpg-gen-g")
    create(admin, topic, 1)
    produce(broker.bootstrap, topic, 1, 3, "gn")
    tp = TopicPartition(topic, 0)

    c = group_consumer(broker.bootstrap, group)
    try:
        c.subscribe([topic])
        drain(c, {tp: 3})
        wait_stable(c, {tp})
        meta = c.group_metadata()
        assert meta.generation_id >= 1 and meta.member_id, meta
        key = (topic, 0)
        assert raw_offset_commit(admin, group, meta.generation_id + 1, meta.member_id, {key: 1}) == {
            key: Errors.IllegalGenerationError
        }
        assert raw_offset_commit(admin, group, meta.generation_id, "not-a-member", {key: 1}) == {
            key: Errors.UnknownMemberIdError
        }
        assert raw_offset_commit(admin, group, -1, "", {key: 1}) == {key: Errors.UnknownMemberIdError}
        assert group_offsets(admin, group) == {}, "a refused commit was stored"
        # The real identity is accepted.
        assert raw_offset_commit(admin, group, meta.generation_id, meta.member_id, {key: 2}) == {
            key: Errors.NoError
        }
        assert group_offsets(admin, group) == {key: (2, "raw")}
        # So is the consumer's own commit.
        c.commit({tp: OffsetAndMetadata(3, "", -1)})
        assert group_offsets(admin, group) == {key: (3, "")}
    finally:
        c.close(autocommit=False)
