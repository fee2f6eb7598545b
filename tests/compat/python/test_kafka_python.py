"""kafka-python against strom.

kafka-python 3.x enables the idempotent producer by default (KIP-679), which
needs InitProducerId: every producer here passes enable_idempotence=False.
Consumers use group_id=None and assign() only.
"""

from __future__ import annotations

import random
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as Errors
from kafka.admin import ConfigResource, KafkaAdminClient, OffsetSpec

from compat import (
    CODECS,
    GUARD_S,
    TOPIC_DEFAULTS,
    now_ms,
    payload,
    unique_topic,
    wait_until,
)

GUARD_MS = int(GUARD_S * 1000)


@pytest.fixture(scope="module")
def admin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=GUARD_MS)
    yield a
    a.close()


def producer(bootstrap, **kw):
    conf = dict(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=GUARD_MS,
        delivery_timeout_ms=GUARD_MS + 5000,
        max_block_ms=GUARD_MS,
    )
    conf.update(kw)
    return KafkaProducer(**conf)


def consumer(bootstrap, **kw):
    conf = dict(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        request_timeout_ms=GUARD_MS,
    )
    conf.update(kw)
    return KafkaConsumer(**conf)


def send_all(p, topic, records):
    """Sends records (dicts: value, key, headers, partition, timestamp_ms) and
    returns RecordMetadata in order."""
    futs = [p.send(topic, **r) for r in records]
    p.flush(timeout=GUARD_S)
    return [f.get(timeout=GUARD_S) for f in futs]


def consume_all(bootstrap, topic, partitions, expect=None, start=None):
    """Reads the partitions from the beginning (or `start`) to their end
    offsets as of now (or until `expect` records), returns the records."""
    c = consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        if start is None:
            c.seek_to_beginning(*tps)
        else:
            for tp in tps:
                c.seek(tp, start)
        end = c.end_offsets(tps, timeout_ms=GUARD_MS)
        out = []
        deadline = time.monotonic() + GUARD_S
        while True:
            if all(c.position(tp, timeout_ms=GUARD_MS) >= end[tp] for tp in tps) and (
                expect is None or len(out) >= expect
            ):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out reading {topic}: {len(out)} records, end offsets {end}"
                )
            for tp, recs in c.poll(timeout_ms=500).items():
                out.extend(recs)
            if expect is not None and len(out) < expect:
                end = c.end_offsets(tps, timeout_ms=GUARD_MS)
    finally:
        c.close()


def create(admin, topic, partitions=1, configs=None, **kw):
    res = admin.create_topics(
        {topic: {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}},
        **kw,
    )
    wait_until(lambda: partition_count(admin, topic) == partitions, f"{topic} in metadata")
    return res


def partition_count(admin, topic):
    topics = {t["name"]: t for t in admin.describe_topics([topic])}
    t = topics.get(topic)
    if t is None or t["error_code"] != 0:
        return None
    if any(p["error_code"] != 0 or p["leader_id"] < 0 for p in t["partitions"]):
        return None
    return len(t["partitions"])


def topic_configs(admin, topic, config_filter="all"):
    res = admin.describe_configs([ConfigResource("TOPIC", topic)], config_filter=config_filter)
    return res["topic"][topic]


# ---------------------------------------------------------------- metadata


def test_metadata_cluster_and_leaders(broker, admin):
    topic = unique_topic("kp-md")
    create(admin, topic, partitions=3)
    cluster = admin.describe_cluster()
    assert len(cluster["brokers"]) == 1
    b = cluster["brokers"][0]
    assert (b["host"], b["port"]) == (broker.host, broker.port)
    assert cluster["controller_id"] == b["broker_id"]
    assert cluster["cluster_id"]

    assert topic in admin.list_topics()
    (t,) = admin.describe_topics([topic])
    assert t["name"] == topic and t["error_code"] == 0
    assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1, 2]
    for p in t["partitions"]:
        assert p["leader_id"] == b["broker_id"]
        assert p["replica_nodes"] == [b["broker_id"]]
        assert p["isr_nodes"] == [b["broker_id"]]

    c = consumer(broker.bootstrap)
    try:
        assert c.partitions_for_topic(topic) == {0, 1, 2}
        assert topic in c.topics()
    finally:
        c.close()


def test_describe_log_dirs(broker, admin):
    topic = unique_topic("kp-logdirs")
    create(admin, topic, partitions=2)
    p = producer(broker.bootstrap)
    send_all(p, topic, [{"value": payload(i, 500), "partition": 0} for i in range(20)])
    p.close()
    (resp,) = admin.describe_log_dirs()
    dirs = resp["log_dirs"]
    assert len(dirs) >= 1
    found = {}
    for d in dirs:
        assert d["error_code"] == 0, d
        for t in d["topics"]:
            if t["name"] == topic:
                for part in t["partitions"]:
                    found[part["partition_index"]] = part["partition_size"]
    assert sorted(found) == [0, 1]
    assert found[0] > 20 * 500 and found[1] == 0, found


# ---------------------------------------------------------- topic creation


def test_create_topics_validate_only_and_duplicate(broker, admin):
    topic = unique_topic("kp-create")
    res = admin.create_topics(
        {topic: {"num_partitions": 2, "replication_factor": 1}}, validate_only=True
    )
    assert [t["error_code"] for t in res["topics"]] == [0]
    assert topic not in admin.list_topics(), "validate_only created the topic"

    create(admin, topic, partitions=2)
    with pytest.raises(Errors.TopicAlreadyExistsError):
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})


@pytest.mark.parametrize("name", ["has space", "a/b", "..", "y" * 250], ids=["space", "slash", "dotdot", "too-long"])
def test_create_topic_invalid_name(broker, admin, name):
    with pytest.raises(Errors.InvalidTopicError):
        admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})
    assert name not in admin.list_topics()


def test_create_topic_with_broker_defaults(broker, admin):
    # num_partitions / replication_factor -1 means "broker default" (v4+).
    topic = unique_topic("kp-defaults")
    admin.create_topics([topic])
    wait_until(lambda: partition_count(admin, topic) == 1, "topic with default partition count")


def test_metadata_for_a_missing_topic_does_not_create_it(broker, admin):
    # The admin client asks with allow_auto_topic_creation=False.
    topic = unique_topic("kp-missing")
    (t,) = admin.describe_topics([topic])
    assert t["error_code"] == Errors.UnknownTopicOrPartitionError.errno
    assert topic not in admin.list_topics()


def test_auto_create_by_producing(broker, admin):
    topic = unique_topic("kp-auto")
    assert topic not in admin.list_topics()
    p = producer(broker.bootstrap)
    (md,) = send_all(p, topic, [{"value": b"auto"}])
    p.close()
    assert (md.partition, md.offset) == (0, 0)
    assert partition_count(admin, topic) == 1
    assert [r.value for r in consume_all(broker.bootstrap, topic, [0])] == [b"auto"]


def test_auto_create_by_producer_metadata(broker, admin):
    topic = unique_topic("kp-auto-md")
    p = producer(broker.bootstrap)
    try:
        # partitions_for() asks the broker for this topic's metadata with
        # allow_auto_topic_creation (the producer default).
        assert p.partitions_for(topic) == {0}
    finally:
        p.close()
    assert partition_count(admin, topic) == 1


# ------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec_keys_headers_timestamps(broker, admin, codec):
    topic = unique_topic(f"kp-codec-{codec}")
    create(admin, topic)
    base_ts = 1_710_000_000_000
    n = 250
    records = [
        {
            "value": payload(i, size=(i * 53) % 1100),
            "key": f"key-{i % 11}".encode(),
            "headers": [("idx", str(i).encode()), ("codec", codec.encode())],
            "timestamp_ms": base_ts + 7 * i,
            "partition": 0,
        }
        for i in range(n)
    ]
    p = producer(
        broker.bootstrap,
        compression_type=None if codec == "none" else codec,
        acks="all",
        linger_ms=30,
        batch_size=16384,
    )
    mds = send_all(p, topic, records)
    p.close()
    assert [m.offset for m in mds] == list(range(n))
    assert [m.timestamp for m in mds] == [r["timestamp_ms"] for r in records]

    c = consumer(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    assert c.end_offsets([tp]) == {tp: n}
    assert c.beginning_offsets([tp]) == {tp: 0}
    c.close()

    recs = consume_all(broker.bootstrap, topic, [0])
    assert len(recs) == n
    for i, (rec, r) in enumerate(zip(recs, records)):
        assert rec.offset == i
        assert rec.key == r["key"]
        assert rec.value == r["value"]
        assert rec.headers == r["headers"]
        assert (rec.timestamp, rec.timestamp_type) == (r["timestamp_ms"], 0)


def test_null_key_and_value(broker, admin):
    topic = unique_topic("kp-null")
    create(admin, topic)
    p = producer(broker.bootstrap)
    send_all(p, topic, [{"key": b"k", "value": None}, {"value": b"v"}, {"key": b"", "value": b""}])
    p.close()
    recs = consume_all(broker.bootstrap, topic, [0])
    assert [(r.key, r.value) for r in recs] == [(b"k", None), (None, b"v"), (b"", b"")]


def test_per_partition_order_multi_partition(broker, admin):
    topic = unique_topic("kp-order")
    parts, per = 3, 120
    create(admin, topic, partitions=parts)
    records = [
        {"value": f"p{i % parts}-{i // parts}".encode(), "partition": i % parts}
        for i in range(parts * per)
    ]
    p = producer(broker.bootstrap, linger_ms=10, batch_size=2048)
    mds = send_all(p, topic, records)
    p.close()
    for md, r in zip(mds, records):
        assert md.partition == r["partition"]

    c = consumer(broker.bootstrap)
    tps = [TopicPartition(topic, i) for i in range(parts)]
    assert c.end_offsets(tps) == {tp: per for tp in tps}
    c.close()

    recs = consume_all(broker.bootstrap, topic, list(range(parts)))
    for part in range(parts):
        mine = [r for r in recs if r.partition == part]
        assert [r.value for r in mine] == [f"p{part}-{s}".encode() for s in range(per)]
        assert [r.offset for r in mine] == list(range(per))


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks_levels(broker, admin, acks):
    topic = unique_topic(f"kp-acks{acks}")
    create(admin, topic)
    p = producer(broker.bootstrap, acks=acks)
    mds = send_all(p, topic, [{"value": payload(i)} for i in range(40)])
    p.close()
    if acks != 0:
        assert [m.offset for m in mds] == list(range(40))
    recs = consume_all(broker.bootstrap, topic, [0], expect=40)
    assert [r.value for r in recs] == [payload(i) for i in range(40)]


def test_log_append_time(broker, admin):
    topic = unique_topic("kp-lat")
    create(admin, topic, configs={"message.timestamp.type": "LogAppendTime"})
    supplied = 1_000_000_000_000
    p = producer(broker.bootstrap)
    before = now_ms()
    mds = send_all(p, topic, [{"value": payload(i), "timestamp_ms": supplied + i} for i in range(5)])
    after = now_ms()
    p.close()
    for md in mds:
        # RecordMetadata.timestamp is the broker's log append time when it sent one.
        assert before <= md.timestamp <= after, (before, md.timestamp, after)
    recs = consume_all(broker.bootstrap, topic, [0])
    assert len(recs) == 5
    for md, rec in zip(mds, recs):
        assert rec.timestamp_type == 1, rec
        assert rec.timestamp == md.timestamp
    assert topic_configs(admin, topic)["message.timestamp.type"]["value"] == "LogAppendTime"


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_fetch_from_the_middle_of_a_batch(broker, admin, codec):
    topic = unique_topic(f"kp-mid-{codec}")
    create(admin, topic)
    p = producer(broker.bootstrap, compression_type=None if codec == "none" else codec, linger_ms=100)
    mds = send_all(p, topic, [{"value": payload(i, 40)} for i in range(60)])
    p.close()
    assert [m.offset for m in mds] == list(range(60))
    recs = consume_all(broker.bootstrap, topic, [0], start=33)
    assert [(r.offset, r.value) for r in recs] == [(i, payload(i, 40)) for i in range(33, 60)]


def test_long_poll_receives_new_records(broker, admin):
    topic = unique_topic("kp-tail")
    create(admin, topic)
    p = producer(broker.bootstrap)
    send_all(p, topic, [{"value": b"old"}])
    c = consumer(broker.bootstrap, fetch_max_wait_ms=500)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_end(tp)
        assert c.position(tp) == 1
        assert c.poll(timeout_ms=300) == {}
        send_all(p, topic, [{"value": b"new-1"}, {"value": b"new-2"}])
        got = []

        def more():
            for recs in c.poll(timeout_ms=200).values():
                got.extend((r.offset, r.value) for r in recs)
            return len(got) >= 2

        wait_until(more, "records produced after the consumer reached the end")
        assert got == [(1, b"new-1"), (2, b"new-2")]
    finally:
        c.close()
        p.close()


# ----------------------------------------------------------------- offsets


def test_offsets_for_times_and_list_offsets(broker, admin):
    topic = unique_topic("kp-times")
    create(admin, topic)
    base = 1_620_000_000_000
    p = producer(broker.bootstrap)
    send_all(p, topic, [{"value": payload(i), "timestamp_ms": base + 100 * i} for i in range(8)])
    send_all(p, topic, [{"value": payload(i), "timestamp_ms": base + 100 * i} for i in range(8, 16)])
    p.close()
    tp = TopicPartition(topic, 0)
    c = consumer(broker.bootstrap)
    try:
        cases = {base - 5: (0, base), base + 250: (3, base + 300), base + 799: (8, base + 800),
                 base + 1500: (15, base + 1500)}
        for target, (off, ts) in cases.items():
            got = c.offsets_for_times({tp: target}, timeout_ms=GUARD_MS)[tp]
            assert (got.offset, got.timestamp) == (off, ts), target
        assert c.offsets_for_times({tp: base + 1501}, timeout_ms=GUARD_MS)[tp] is None
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 16}
    finally:
        c.close()

    got = admin.list_partition_offsets(
        {tp: OffsetSpec.MAX_TIMESTAMP}
    )[tp]
    assert (got.offset, got.timestamp) == (15, base + 1500)
    assert admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset == 0
    assert admin.list_partition_offsets({tp: OffsetSpec.LATEST})[tp].offset == 16


# ----------------------------------------------------------------- configs


def test_describe_configs_defaults(broker, admin):
    topic = unique_topic("kp-cfg")
    create(admin, topic)
    configs = topic_configs(admin, topic)
    for name, value in TOPIC_DEFAULTS.items():
        assert name in configs, f"{name} missing"
        assert configs[name]["value"] == value, (name, configs[name])
        assert configs[name]["config_source"] == "DEFAULT_CONFIG", (name, configs[name])
        assert configs[name]["read_only"] is False, (name, configs[name])
    # Default filter ('modified') shows nothing for a topic without overrides.
    assert topic_configs(admin, topic, config_filter="modified") == {}


def test_create_with_configs_and_alter(broker, admin):
    topic = unique_topic("kp-alter")
    create(admin, topic, configs={"retention.ms": "1000000", "segment.ms": "3600000"})
    mod = topic_configs(admin, topic, config_filter="modified")
    assert {k: v["value"] for k, v in mod.items()} == {
        "retention.ms": "1000000",
        "segment.ms": "3600000",
    }
    assert mod["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

    # IncrementalAlterConfigs
    res = admin.alter_configs(
        [ConfigResource("TOPIC", topic, configs={"retention.ms": "2000000"})], incremental=True
    )
    assert res == {"topic": {topic: "OK"}}
    cfg = topic_configs(admin, topic)
    assert cfg["retention.ms"]["value"] == "2000000"
    assert cfg["segment.ms"]["value"] == "3600000"

    # Legacy AlterConfigs (the client re-sends other modified keys itself).
    res = admin.alter_configs(
        [ConfigResource("TOPIC", topic, configs={"segment.bytes": "10485760"})], incremental=False
    )
    assert res == {"topic": {topic: "OK"}}
    cfg = topic_configs(admin, topic)
    assert cfg["segment.bytes"]["value"] == "10485760"
    assert cfg["retention.ms"]["value"] == "2000000"

    # Reset to default.
    admin.reset_configs([ConfigResource("TOPIC", topic, configs=["retention.ms"])])
    cfg = topic_configs(admin, topic)
    assert cfg["retention.ms"]["value"] == "604800000"
    assert cfg["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
    assert cfg["segment.bytes"]["value"] == "10485760"


# ------------------------------------------------ partitions, records, topics


def test_create_partitions(broker, admin):
    topic = unique_topic("kp-parts")
    create(admin, topic, partitions=2)
    admin.create_partitions({topic: 5})
    wait_until(lambda: partition_count(admin, topic) == 5, "5 partitions")
    p = producer(broker.bootstrap)
    (md,) = send_all(p, topic, [{"value": b"p4", "partition": 4}])
    p.close()
    assert (md.partition, md.offset) == (4, 0)
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_partitions({topic: 3})


def test_delete_records(broker, admin):
    topic = unique_topic("kp-delrec")
    create(admin, topic, partitions=2)
    p = producer(broker.bootstrap)
    send_all(p, topic, [{"value": payload(i), "partition": i % 2} for i in range(20)])
    p.close()
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    res = admin.delete_records({tp0: 3, tp1: -1})  # -1: up to the high watermark
    assert res[tp0]["low_watermark"] == 3
    assert res[tp1]["low_watermark"] == 10
    c = consumer(broker.bootstrap)
    try:
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 3, tp1: 10}
        assert c.end_offsets([tp0, tp1]) == {tp0: 10, tp1: 10}
    finally:
        c.close()
    recs = consume_all(broker.bootstrap, topic, [0, 1])
    assert [(r.partition, r.offset) for r in recs] == [(0, o) for o in range(3, 10)]
    with pytest.raises(Errors.OffsetOutOfRangeError):
        admin.delete_records({tp0: 11})


def test_delete_topic(broker, admin):
    topic = unique_topic("kp-del")
    create(admin, topic)
    admin.delete_topics([topic])
    wait_until(lambda: topic not in admin.list_topics(), "deleted topic gone")
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.delete_topics([topic])


# ------------------------------------------------------------------ limits


def test_message_too_large(broker, admin):
    topic = unique_topic("kp-big")
    create(admin, topic)
    p = producer(broker.bootstrap, max_request_size=10_000_000, retries=0)
    big = random.Random(3).randbytes(2 * 1024 * 1024)
    fut = p.send(topic, value=big)  # passes the client-side size check
    p.flush(timeout=GUARD_S)
    with pytest.raises(Errors.MessageSizeTooLargeError) as ei:
        fut.get(timeout=GUARD_S)
    assert getattr(ei.value, "errno", None) == 10, repr(ei.value)
    (md,) = send_all(p, topic, [{"value": b"small"}])
    p.close()
    assert md.offset == 0
    assert [r.value for r in consume_all(broker.bootstrap, topic, [0])] == [b"small"]


# ---------------------------------------------------------------- restarts


def test_data_survives_graceful_restart(broker, admin):
    topic = unique_topic("kp-restart")
    create(admin, topic, partitions=2, configs={"retention.ms": "5000000"})
    records = [
        {"value": payload(i, 64), "key": str(i).encode(), "partition": i % 2,
         "timestamp_ms": 1_700_000_000_000 + i, "headers": [("n", str(i).encode())]}
        for i in range(200)
    ]
    p = producer(broker.bootstrap, compression_type="gzip")
    send_all(p, topic, records)
    p.close()

    assert broker.restart() == 0

    # A fresh admin client: the module one reconnects, but keep this explicit.
    a2 = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=GUARD_MS)
    try:
        assert partition_count(a2, topic) == 2
        assert topic_configs(a2, topic)["retention.ms"]["value"] == "5000000"
    finally:
        a2.close()
    recs = consume_all(broker.bootstrap, topic, [0, 1])
    got = {(r.partition, r.offset): r for r in recs}
    assert len(got) == 200
    for i, r in enumerate(records):
        rec = got[(i % 2, i // 2)]
        assert (rec.key, rec.value, rec.timestamp, rec.headers) == (
            r["key"], r["value"], r["timestamp_ms"], r["headers"])
    # The module's admin client lost its connection in the restart; kafka-python
    # refuses requests (NodeNotReadyError) until its reconnect backoff passes, so let
    # it reconnect before the next test uses it.
    wait_until(lambda: topic in admin.list_topics(), "the module admin client reconnects")


def test_acked_records_survive_sigkill(broker, admin):
    topic = unique_topic("kp-kill")
    create(admin, topic, partitions=3)
    p = producer(broker.bootstrap, acks="all", compression_type="snappy", batch_size=4096)
    records = [{"value": payload(i, 80), "partition": i % 3} for i in range(600)]
    mds = send_all(p, topic, records)
    p.close()
    acked = {(m.partition, m.offset): r["value"] for m, r in zip(mds, records)}
    assert len(acked) == 600

    assert broker.restart(kill=True) == -9

    recs = consume_all(broker.bootstrap, topic, [0, 1, 2])
    got = {(r.partition, r.offset): r.value for r in recs}
    missing = sorted(set(acked) - set(got))
    assert not missing, f"{len(missing)} acknowledged records lost, first {missing[:5]}"
    assert all(got[k] == v for k, v in acked.items())
