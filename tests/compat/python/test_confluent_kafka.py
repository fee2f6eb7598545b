"""confluent-kafka (librdkafka) against strom.

Producers run without idempotence (librdkafka's default); consumers only
assign() explicit partitions and never commit, so no group coordinator is
needed.
"""

from __future__ import annotations

import os
import random

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from compat import (
    CODECS,
    GUARD_S,
    TOPIC_DEFAULTS,
    by_partition,
    cf_admin,
    cf_consume_all,
    cf_consumer,
    cf_create_topic,
    cf_partition_count,
    cf_produce_all,
    cf_producer,
    cf_topic_names,
    cf_watermarks,
    headers_of,
    now_ms,
    payload,
    unique_topic,
    wait_until,
)


def node_id(bootstrap):
    md = cf_admin(bootstrap).list_topics(timeout=10)
    assert len(md.brokers) == 1, md.brokers
    return next(iter(md.brokers))


def describe_topic_configs(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    futs = admin.describe_configs([res], request_timeout=GUARD_S)
    return futs[res].result(timeout=GUARD_S)


def source(entry) -> ConfigSource:
    """ConfigEntry.source as the enum (confluent-kafka hands out the int)."""
    return ConfigSource(entry.source)


def create_error(admin, topic, **kwargs):
    """Creates `topic` and returns the KafkaError it failed with (or None)."""
    futs = admin.create_topics(
        [NewTopic(topic, num_partitions=kwargs.pop("partitions", 1), replication_factor=1)],
        request_timeout=GUARD_S,
        **kwargs,
    )
    try:
        futs[topic].result(timeout=GUARD_S)
        return None
    except KafkaException as e:
        return e.args[0]


# ---------------------------------------------------------------- metadata


def test_metadata_brokers_topics_and_leaders(broker):
    topic = unique_topic("cf-md")
    cf_create_topic(broker.bootstrap, topic, partitions=3)
    admin = cf_admin(broker.bootstrap)
    md = admin.list_topics(timeout=10)

    assert len(md.brokers) == 1
    (bid, b) = next(iter(md.brokers.items()))
    assert (b.host, b.port) == (broker.host, broker.port)
    assert md.controller_id == bid
    assert md.cluster_id, "cluster id missing"

    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert p.error is None
        assert p.leader == bid
        assert list(p.replicas) == [bid]
        assert list(p.isrs) == [bid]

    # Metadata for one topic only.
    one = admin.list_topics(topic=topic, timeout=10)
    assert topic in one.topics and one.topics[topic].error is None


def test_describe_cluster(broker):
    admin = cf_admin(broker.bootstrap)
    bid = node_id(broker.bootstrap)
    desc = admin.describe_cluster(request_timeout=GUARD_S).result(timeout=GUARD_S)
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(bid, broker.host, broker.port)]
    assert desc.controller is not None and desc.controller.id == bid
    assert desc.cluster_id == admin.list_topics(timeout=10).cluster_id


# ---------------------------------------------------------- topic creation


def test_create_topic_explicit_and_duplicate(broker):
    admin = cf_admin(broker.bootstrap)
    topic = unique_topic("cf-create")
    assert create_error(admin, topic, partitions=4) is None
    wait_until(lambda: cf_partition_count(admin, topic) == 4, "4 partitions in metadata")

    err = create_error(admin, topic, partitions=4)
    assert err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err


def test_create_topic_validate_only(broker):
    admin = cf_admin(broker.bootstrap)
    topic = unique_topic("cf-validate")
    assert create_error(admin, topic, partitions=2, validate_only=True) is None
    assert topic not in cf_topic_names(broker.bootstrap), "validate_only created the topic"

    # A validate_only request for an invalid topic is still rejected.
    err = create_error(admin, "bad name " + topic, validate_only=True)
    assert err is not None and err.code() == KafkaError.TOPIC_EXCEPTION, err

    # And the real creation works afterwards.
    assert create_error(admin, topic, partitions=2) is None
    wait_until(lambda: cf_partition_count(admin, topic) == 2, "topic created after validate_only")


@pytest.mark.parametrize(
    "name",
    ["has space", "slash/name", "..", ".", "x" * 250, "star*"],
    ids=["space", "slash", "dotdot", "dot", "too-long", "star"],
)
def test_create_topic_invalid_name(broker, name):
    admin = cf_admin(broker.bootstrap)
    err = create_error(admin, name)
    assert err is not None and err.code() == KafkaError.TOPIC_EXCEPTION, err
    assert name not in cf_topic_names(broker.bootstrap)


def test_create_topic_invalid_partitions(broker):
    admin = cf_admin(broker.bootstrap)
    topic = unique_topic("cf-zero-parts")
    futs = admin.create_topics(
        [NewTopic(topic, num_partitions=0, replication_factor=1)], request_timeout=GUARD_S
    )
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=GUARD_S)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert topic not in cf_topic_names(broker.bootstrap)


def test_create_topic_rejections(broker):
    admin = cf_admin(broker.bootstrap)
    cases = [
        ({"replication_factor": 3}, KafkaError.INVALID_REPLICATION_FACTOR),
        ({"config": {"retention.ms": "abc"}}, KafkaError.INVALID_CONFIG),
        ({"config": {"no.such.config": "1"}}, KafkaError.INVALID_CONFIG),
    ]
    for kwargs, code in cases:
        topic = unique_topic("cf-reject")
        spec = {"num_partitions": 1, "replication_factor": 1, **kwargs}
        futs = admin.create_topics([NewTopic(topic, **spec)], request_timeout=GUARD_S)
        with pytest.raises(KafkaException) as ei:
            futs[topic].result(timeout=GUARD_S)
        assert ei.value.args[0].code() == code, (kwargs, ei.value.args[0])
        assert topic not in cf_topic_names(broker.bootstrap), kwargs


def test_describe_broker_configs(broker):
    bid = node_id(broker.bootstrap)
    admin = cf_admin(broker.bootstrap)
    res = ConfigResource(ResourceType.BROKER, str(bid))
    configs = admin.describe_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    assert configs["num.partitions"].value == "1"
    assert configs["message.max.bytes"].value == "1048588"
    assert configs["auto.create.topics.enable"].value == "true"


def test_auto_create_by_producing(broker):
    topic = unique_topic("cf-auto-produce")
    assert topic not in cf_topic_names(broker.bootstrap)
    p = cf_producer(broker.bootstrap)
    reports = cf_produce_all(p, [{"value": b"first"}], topic)
    err, msg = reports[0]
    assert err is None, err
    assert (msg.partition(), msg.offset()) == (0, 0)
    admin = cf_admin(broker.bootstrap)
    assert cf_partition_count(admin, topic) == 1  # num.partitions=1
    msgs = cf_consume_all(broker.bootstrap, topic, [0])
    assert [m.value() for m in msgs] == [b"first"]


def test_auto_create_by_metadata_request(broker):
    topic = unique_topic("cf-auto-md")
    p = cf_producer(broker.bootstrap)
    # A producer's metadata request for one topic asks for auto creation.
    p.list_topics(topic=topic, timeout=10)
    admin = cf_admin(broker.bootstrap)
    wait_until(lambda: cf_partition_count(admin, topic) == 1, "auto-created topic in metadata")


def test_produce_to_invalid_topic_name_fails(broker):
    p = cf_producer(broker.bootstrap, message_timeout_ms=10000)
    reports = cf_produce_all(p, [{"value": b"x"}], "bad topic name!")
    err, _ = reports[0]
    assert err is not None, "produce to an invalid topic name was acknowledged"
    assert "bad topic name!" not in cf_topic_names(broker.bootstrap)


# ------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec_keys_headers_timestamps(broker, codec):
    topic = unique_topic(f"cf-codec-{codec}")
    cf_create_topic(broker.bootstrap, topic, partitions=1)
    base_ts = 1_700_000_000_000
    n = 300
    records = []
    for i in range(n):
        records.append(
            {
                "value": payload(i, size=(i * 37) % 900),
                "key": f"key-{i % 17}".encode(),
                "timestamp": base_ts + i * 1000 + (i % 3),
                "headers": [("idx", str(i).encode()), ("codec", codec.encode()), ("empty", b"")],
                "partition": 0,
            }
        )
    # Several batches: linger lets records pile up, batch.num.messages splits them.
    p = cf_producer(
        broker.bootstrap,
        **{"compression.type": codec, "linger.ms": 50, "batch.num.messages": 64, "acks": "all"},
    )
    reports = cf_produce_all(p, records, topic)
    for i, (err, msg) in enumerate(reports):
        assert err is None, f"record {i}: {err}"
        assert msg.offset() == i
        assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, records[i]["timestamp"])

    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, n)
    msgs = cf_consume_all(broker.bootstrap, topic, [0])
    assert len(msgs) == n
    for i, m in enumerate(msgs):
        r = records[i]
        assert m.offset() == i
        assert m.key() == r["key"]
        assert m.value() == r["value"]
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, r["timestamp"])
        assert headers_of(m) == r["headers"]


def test_null_and_empty_keys_values(broker):
    topic = unique_topic("cf-nulls")
    cf_create_topic(broker.bootstrap, topic)
    records = [
        {"value": None, "key": b"tombstone"},
        {"value": b"", "key": b""},
        {"value": b"no-key"},
        {"value": None},
        {"value": b"h", "headers": [("null-header", None), ("empty", b""), ("null-header", b"again")]},
    ]
    p = cf_producer(broker.bootstrap)
    for err, _ in cf_produce_all(p, records, topic):
        assert err is None
    msgs = cf_consume_all(broker.bootstrap, topic, [0])
    got = [(m.key(), m.value(), m.headers()) for m in msgs]
    assert got == [
        (b"tombstone", None, None),
        (b"", b"", None),
        (None, b"no-key", None),
        (None, None, None),
        (None, b"h", [("null-header", None), ("empty", b""), ("null-header", b"again")]),
    ]


def test_per_partition_order_multi_partition(broker):
    topic = unique_topic("cf-order")
    parts = 4
    per = 150
    cf_create_topic(broker.bootstrap, topic, partitions=parts)
    records = [
        {"value": f"p{i % parts}-seq{i // parts}".encode(), "partition": i % parts}
        for i in range(parts * per)
    ]
    p = cf_producer(broker.bootstrap, **{"linger.ms": 20, "batch.num.messages": 40})
    reports = cf_produce_all(p, records, topic)
    for (err, msg), r in zip(reports, records):
        assert err is None
        assert msg.partition() == r["partition"]

    for part in range(parts):
        assert cf_watermarks(broker.bootstrap, topic, part) == (0, per)
    msgs = cf_consume_all(broker.bootstrap, topic, list(range(parts)))
    got = by_partition(msgs)
    assert sorted(got) == list(range(parts))
    for part in range(parts):
        assert [m.value() for m in got[part]] == [
            f"p{part}-seq{s}".encode() for s in range(per)
        ]
        assert [m.offset() for m in got[part]] == list(range(per))


def test_keyed_partitioning_keeps_key_order(broker):
    topic = unique_topic("cf-keyed")
    cf_create_topic(broker.bootstrap, topic, partitions=3)
    keys = [f"k{j}".encode() for j in range(12)]
    records = [{"key": keys[i % 12], "value": f"{i}".encode()} for i in range(240)]
    p = cf_producer(broker.bootstrap)
    reports = cf_produce_all(p, records, topic)
    part_of_key = {}
    for (err, msg), r in zip(reports, records):
        assert err is None
        assert part_of_key.setdefault(r["key"], msg.partition()) == msg.partition()
    assert len(set(part_of_key.values())) > 1, "all keys hashed to one partition"

    msgs = cf_consume_all(broker.bootstrap, topic, [0, 1, 2])
    assert len(msgs) == len(records)
    seen = {}
    for m in msgs:
        assert part_of_key[m.key()] == m.partition()
        seen.setdefault(m.key(), []).append(int(m.value()))
    for k, vals in seen.items():
        assert vals == sorted(vals), f"key {k} out of order"


def test_many_topics_and_partitions_in_shared_requests(broker):
    topics = [unique_topic(f"cf-multi{i}") for i in range(3)]
    for t in topics:
        cf_create_topic(broker.bootstrap, t, partitions=8)
    # One producer, long linger: produce requests carry several topics and
    # partitions; one consumer fetches all 24 partitions in shared requests.
    p = cf_producer(broker.bootstrap, **{"linger.ms": 200, "compression.type": "snappy"})
    expected = {}
    for i in range(480):
        t, part = topics[i % 3], (i // 3) % 8
        expected.setdefault((t, part), []).append(f"{t}/{part}/{i}".encode())
        p.produce(t, value=expected[(t, part)][-1], partition=part)
    assert p.flush(GUARD_S) == 0
    c = cf_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(t, part, OFFSET_BEGINNING) for t in topics for part in range(8)])
        got = {}
        n = 0

        def more():
            nonlocal n
            for m in c.consume(100, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                got.setdefault((m.topic(), m.partition()), []).append(m.value())
                n += 1
            return n >= 480

        wait_until(more, "480 records from 24 partitions")
    finally:
        c.close()
    assert got == expected


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_levels(broker, acks):
    topic = unique_topic(f"cf-acks{acks}")
    cf_create_topic(broker.bootstrap, topic)
    n = 50
    p = cf_producer(broker.bootstrap, acks=acks)
    reports = cf_produce_all(p, [{"value": payload(i)} for i in range(n)], topic)
    for i, (err, msg) in enumerate(reports):
        assert err is None
        if acks != "0":
            assert msg.offset() == i
    msgs = cf_consume_all(broker.bootstrap, topic, [0], expect=n)
    assert [m.value() for m in msgs] == [payload(i) for i in range(n)]
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, n)


def test_consume_from_offset_and_tail(broker):
    topic = unique_topic("cf-tail")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": payload(i)} for i in range(10)], topic)

    # From an absolute offset.
    msgs = cf_consume_all(broker.bootstrap, topic, [0], start=7)
    assert [m.offset() for m in msgs] == [7, 8, 9]

    # Long poll at the end: the consumer waits, then receives new records.
    c = cf_consumer(broker.bootstrap, **{"fetch.wait.max.ms": 500})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        # Wait until positioned at the end (EOF), then produce.
        wait_until(
            lambda: (lambda m: m is not None and m.error() is not None
                     and m.error().code() == KafkaError._PARTITION_EOF)(c.poll(0.2)),
            "EOF at the end of the partition",
        )
        cf_produce_all(p, [{"value": b"late-1"}, {"value": b"late-2"}], topic)
        got = []

        def more():
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append((m.offset(), m.value()))
            return len(got) == 2

        wait_until(more, "records produced after the consumer reached the end")
        assert got == [(10, b"late-1"), (11, b"late-2")]
    finally:
        c.close()


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_fetch_from_the_middle_of_a_batch(broker, codec):
    topic = unique_topic(f"cf-mid-{codec}")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap, **{"compression.type": codec, "linger.ms": 100})
    reports = cf_produce_all(p, [{"value": payload(i, 50)} for i in range(100)], topic)
    assert [msg.offset() for _, msg in reports] == list(range(100))
    # The broker answers with whole batches; the client skips what precedes 57.
    msgs = cf_consume_all(broker.bootstrap, topic, [0], start=57)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, payload(i, 50)) for i in range(57, 100)]


def test_record_bigger_than_fetch_limits_is_still_returned(broker):
    topic = unique_topic("cf-bigfetch")
    cf_create_topic(broker.bootstrap, topic)
    big = random.Random(11).randbytes(600_000)
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": b"small"}, {"value": big}, {"value": b"after"}], topic)
    # KIP-74: the first batch is returned even when larger than the limits.
    msgs = cf_consume_all(
        broker.bootstrap,
        topic,
        [0],
        **{"max.partition.fetch.bytes": 1024, "fetch.max.bytes": 1024, "message.max.bytes": 1024},
    )
    assert [m.value() for m in msgs] == [b"small", big, b"after"]


def test_empty_topic_offsets(broker):
    topic = unique_topic("cf-empty")
    cf_create_topic(broker.bootstrap, topic)
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, 0)
    c = cf_consumer(broker.bootstrap)
    try:
        (got,) = c.offsets_for_times([TopicPartition(topic, 0, 1_600_000_000_000)], timeout=GUARD_S)
        assert got.error is None and got.offset == OFFSET_END
    finally:
        c.close()
    admin = cf_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    r = admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=GUARD_S)[tp].result(timeout=GUARD_S)
    assert r.offset == -1, (r.offset, r.timestamp)


# ------------------------------------------------------------- timestamps


def test_log_append_time_topic(broker):
    topic = unique_topic("cf-lat")
    cf_create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    supplied = 1_000_000_000_000  # 2001: far from now
    p = cf_producer(broker.bootstrap)
    before = now_ms()
    reports = cf_produce_all(p, [{"value": payload(i), "timestamp": supplied + i} for i in range(5)], topic)
    after = now_ms()
    for err, msg in reports:
        assert err is None
        ts_type, ts = msg.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, msg.timestamp()
        assert before <= ts <= after, (before, ts, after)

    msgs = cf_consume_all(broker.bootstrap, topic, [0])
    assert len(msgs) == 5
    for m in msgs:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, m.timestamp()
        assert before <= ts <= after, (before, ts, after)
    # Every record of the topic got a broker time, none kept the supplied one.
    assert all(m.timestamp()[1] != supplied + i for i, m in enumerate(msgs))

    configs = describe_topic_configs(cf_admin(broker.bootstrap), topic)
    assert configs["message.timestamp.type"].value == "LogAppendTime"


def test_create_time_without_explicit_timestamp(broker):
    topic = unique_topic("cf-ct-now")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap)
    before = now_ms()
    reports = cf_produce_all(p, [{"value": b"now"}], topic)
    after = now_ms()
    _, msg = reports[0]
    ts_type, ts = msg.timestamp()
    assert ts_type == TIMESTAMP_CREATE_TIME
    assert before <= ts <= after
    (m,) = cf_consume_all(broker.bootstrap, topic, [0])
    assert m.timestamp() == (TIMESTAMP_CREATE_TIME, ts)


# ----------------------------------------------------------------- offsets


def test_offsets_for_times_and_list_offsets(broker):
    topic = unique_topic("cf-times")
    cf_create_topic(broker.bootstrap, topic)
    base = 1_600_000_000_000
    p = cf_producer(broker.bootstrap)
    # Two produce calls so the lookups cross batch boundaries.
    first = [{"value": payload(i), "timestamp": base + 1000 * i} for i in range(10)]
    second = [{"value": payload(i), "timestamp": base + 1000 * i} for i in range(10, 20)]
    cf_produce_all(p, first, topic)
    cf_produce_all(p, second, topic)

    c = cf_consumer(broker.bootstrap)
    try:
        queries = {
            base - 1: 0,  # before everything: first record
            base: 0,
            base + 1: 1,  # first record with ts >= target
            base + 4500: 5,
            base + 9000: 9,
            base + 9001: 10,  # crosses into the second batch
            base + 19000: 19,
            base + 19001: OFFSET_END,  # after everything: -1 (end)
        }
        for ts, want in queries.items():
            # One lookup per call: librdkafka merges duplicate partitions.
            (got,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=GUARD_S)
            assert got.error is None, (ts - base, got.error)
            assert got.offset == want, (ts - base, got.offset, want)
    finally:
        c.close()

    admin = cf_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)

    def list_offset(spec):
        futs = admin.list_offsets({tp: spec}, request_timeout=GUARD_S)
        return futs[tp].result(timeout=GUARD_S)

    assert list_offset(OffsetSpec.earliest()).offset == 0
    assert list_offset(OffsetSpec.latest()).offset == 20
    r = list_offset(OffsetSpec.for_timestamp(base + 4500))
    assert (r.offset, r.timestamp) == (5, base + 5000)
    r = list_offset(OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (19, base + 19000)


def test_max_timestamp_not_last(broker):
    topic = unique_topic("cf-maxts")
    cf_create_topic(broker.bootstrap, topic)
    base = 1_650_000_000_000
    offsets_ts = [base + 10, base + 50, base + 20, base + 30]
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": b"a", "timestamp": offsets_ts[0]}], topic)
    cf_produce_all(p, [{"value": b"b", "timestamp": offsets_ts[1]}], topic)
    cf_produce_all(p, [{"value": b"c", "timestamp": ts} for ts in offsets_ts[2:]], topic)
    admin = cf_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    r = admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=GUARD_S)[tp].result(
        timeout=GUARD_S
    )
    assert (r.offset, r.timestamp) == (1, base + 50)


# ----------------------------------------------------------------- configs


def test_describe_configs_defaults(broker):
    topic = unique_topic("cf-cfg")
    cf_create_topic(broker.bootstrap, topic, config={"retention.ms": "3600000"})
    configs = describe_topic_configs(cf_admin(broker.bootstrap), topic)
    for name, value in TOPIC_DEFAULTS.items():
        if name == "retention.ms":
            continue
        assert name in configs, f"{name} missing from DescribeConfigs"
        e = configs[name]
        assert e.value == value, (name, e.value)
        assert e.is_default, name
        assert source(e) == ConfigSource.DEFAULT_CONFIG, (name, e.source)
    r = configs["retention.ms"]
    assert r.value == "3600000"
    assert not r.is_default
    assert source(r) == ConfigSource.DYNAMIC_TOPIC_CONFIG

    plain = unique_topic("cf-cfg-plain")
    cf_create_topic(broker.bootstrap, plain)
    configs = describe_topic_configs(cf_admin(broker.bootstrap), plain)
    r = configs["retention.ms"]
    assert (r.value, r.is_default, source(r)) == ("604800000", True, ConfigSource.DEFAULT_CONFIG)


def test_describe_configs_unknown_topic(broker):
    admin = cf_admin(broker.bootstrap)
    topic = unique_topic("cf-cfg-missing")
    res = ConfigResource(ResourceType.TOPIC, topic)
    with pytest.raises(KafkaException) as ei:
        admin.describe_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_incremental_alter_configs(broker):
    topic = unique_topic("cf-ialter")
    cf_create_topic(broker.bootstrap, topic)
    admin = cf_admin(broker.bootstrap)

    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.bytes", "5000000", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    admin.incremental_alter_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    configs = describe_topic_configs(admin, topic)
    assert configs["retention.ms"].value == "123456"
    assert source(configs["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert configs["retention.bytes"].value == "5000000"

    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)
        ],
    )
    admin.incremental_alter_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    configs = describe_topic_configs(admin, topic)
    assert configs["retention.ms"].value == "604800000"
    assert source(configs["retention.ms"]) == ConfigSource.DEFAULT_CONFIG
    assert configs["retention.bytes"].value == "5000000", "an untouched key was reset"

    # An unknown config name is rejected.
    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    with pytest.raises(KafkaException) as ei:
        admin.incremental_alter_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_legacy_alter_configs_replaces_all(broker):
    topic = unique_topic("cf-alter")
    cf_create_topic(broker.bootstrap, topic, config={"retention.bytes": "5000000"})
    admin = cf_admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "7200000"})
    admin.alter_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    configs = describe_topic_configs(admin, topic)
    assert configs["retention.ms"].value == "7200000"
    # AlterConfigs (non-incremental) resets every key it does not name.
    assert configs["retention.bytes"].value == "-1"
    assert source(configs["retention.bytes"]) == ConfigSource.DEFAULT_CONFIG


# ------------------------------------------------ partitions, records, topics


def test_create_partitions(broker):
    topic = unique_topic("cf-addparts")
    cf_create_topic(broker.bootstrap, topic, partitions=1)
    admin = cf_admin(broker.bootstrap)
    futs = admin.create_partitions([NewPartitions(topic, 3)], request_timeout=GUARD_S)
    futs[topic].result(timeout=GUARD_S)
    wait_until(lambda: cf_partition_count(admin, topic) == 3, "3 partitions after CreatePartitions")

    p = cf_producer(broker.bootstrap)
    reports = cf_produce_all(p, [{"value": b"in-new-partition", "partition": 2}], topic)
    assert reports[0][0] is None and reports[0][1].partition() == 2
    msgs = cf_consume_all(broker.bootstrap, topic, [2])
    assert [m.value() for m in msgs] == [b"in-new-partition"]

    # Shrinking is refused.
    futs = admin.create_partitions([NewPartitions(topic, 2)], request_timeout=GUARD_S)
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=GUARD_S)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert cf_partition_count(admin, topic) == 3


def test_delete_records(broker):
    topic = unique_topic("cf-delrec")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": payload(i)} for i in range(10)], topic)
    admin = cf_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0, 4)
    res = admin.delete_records([tp], request_timeout=GUARD_S)
    (fut,) = res.values()
    assert fut.result(timeout=GUARD_S).low_watermark == 4

    assert cf_watermarks(broker.bootstrap, topic, 0) == (4, 10)
    msgs = cf_consume_all(broker.bootstrap, topic, [0])
    assert [m.offset() for m in msgs] == list(range(4, 10))
    assert [m.value() for m in msgs] == [payload(i) for i in range(4, 10)]
    futs = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}, request_timeout=GUARD_S)
    assert next(iter(futs.values())).result(timeout=GUARD_S).offset == 4

    # Reading below the log start offset is out of range.
    c = cf_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 1)])
        m = wait_until(lambda: c.poll(0.2), "a result when fetching below the log start")
        # With auto.offset.reset=error librdkafka reports the broker's
        # OFFSET_OUT_OF_RANGE as _AUTO_OFFSET_RESET.
        assert m.error() is not None, m.offset()
        assert m.error().code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET), m.error()
        assert "Offset out of range" in m.error().str(), m.error()
    finally:
        c.close()


def test_delete_topic(broker):
    topic = unique_topic("cf-del")
    cf_create_topic(broker.bootstrap, topic, partitions=2)
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": b"old", "partition": 1}], topic)
    del p  # destroys the producer: it would otherwise refresh (and re-create) the topic
    admin = cf_admin(broker.bootstrap)
    futs = admin.delete_topics([topic], operation_timeout=10, request_timeout=GUARD_S)
    futs[topic].result(timeout=GUARD_S)
    wait_until(lambda: topic not in cf_topic_names(broker.bootstrap), "topic gone from metadata")

    futs = admin.delete_topics([topic], request_timeout=GUARD_S)
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=GUARD_S)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    # The name can be used again, for a new, empty topic.
    cf_create_topic(broker.bootstrap, topic, partitions=1)
    assert cf_watermarks(broker.bootstrap, topic, 0) == (0, 0)
    assert cf_consume_all(broker.bootstrap, topic, [0]) == []


# ------------------------------------------------------------------ limits


def test_message_too_large(broker):
    topic = unique_topic("cf-big")
    cf_create_topic(broker.bootstrap, topic)
    # The client must not refuse the record itself.
    p = cf_producer(
        broker.bootstrap,
        **{"message.max.bytes": 10_000_000, "batch.size": 10_000_000, "message.timeout.ms": 20000},
    )
    big = random.Random(7).randbytes(2 * 1024 * 1024)
    reports = cf_produce_all(p, [{"value": big}], topic)
    err, _ = reports[0]
    assert err is not None, "a 2 MiB record was accepted by a topic with max.message.bytes=1048588"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err

    # Smaller records still go through on the same producer, and nothing big was stored.
    reports = cf_produce_all(p, [{"value": b"small"}], topic)
    assert reports[0][0] is None
    assert [m.value() for m in cf_consume_all(broker.bootstrap, topic, [0])] == [b"small"]


def test_compressed_batch_under_the_limit_is_accepted(broker):
    # The limit applies to the batch as sent: 2 MB of zeros gzip to a few KB.
    topic = unique_topic("cf-big-gzip")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap, **{"compression.type": "gzip", "message.max.bytes": 10_000_000})
    value = bytes(2_000_000)
    reports = cf_produce_all(p, [{"value": value}], topic)
    assert reports[0][0] is None, reports[0][0]
    (m,) = cf_consume_all(broker.bootstrap, topic, [0], **{"fetch.message.max.bytes": 10_000_000})
    assert m.value() == value


def test_fetch_beyond_the_high_watermark_is_out_of_range(broker):
    topic = unique_topic("cf-beyond")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": b"x"}] * 3, topic)
    c = cf_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 100)])
        m = wait_until(lambda: c.poll(0.2), "a result when fetching past the end")
        assert m.error() is not None, (m.offset(), m.value())
        assert m.error().code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET), m.error()
        assert "Offset out of range" in m.error().str(), m.error()
    finally:
        c.close()


def test_topic_max_message_bytes_override(broker):
    topic = unique_topic("cf-small-max")
    cf_create_topic(broker.bootstrap, topic, config={"max.message.bytes": "2000"})
    p = cf_producer(broker.bootstrap, **{"message.timeout.ms": 20000})
    reports = cf_produce_all(
        p, [{"value": random.Random(1).randbytes(5000)}], topic
    )
    assert reports[0][0] is not None and reports[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, reports[0][0]
    reports = cf_produce_all(p, [{"value": b"x" * 100}], topic)
    assert reports[0][0] is None


# ---------------------------------------------------------------- restarts


def test_data_survives_graceful_restart(broker):
    topic = unique_topic("cf-restart")
    lat = unique_topic("cf-restart-lat")
    cf_create_topic(broker.bootstrap, topic, partitions=3, config={"retention.ms": "86400000"})
    cf_create_topic(broker.bootstrap, lat, config={"message.timestamp.type": "LogAppendTime"})
    records = [
        {
            "value": payload(i, 200),
            "key": f"k{i}".encode(),
            "partition": i % 3,
            "timestamp": 1_690_000_000_000 + i,
            "headers": [("h", str(i).encode())],
        }
        for i in range(300)
    ]
    p = cf_producer(broker.bootstrap, **{"compression.type": "lz4"})
    cf_produce_all(p, records, topic)
    lat_reports = cf_produce_all(p, [{"value": b"lat"}], lat)
    del p
    lat_ts = lat_reports[0][1].timestamp()

    code = broker.restart()
    assert code == 0, f"strom exited with {code} on SIGTERM"

    md = cf_admin(broker.bootstrap).list_topics(timeout=10)
    assert len(md.topics[topic].partitions) == 3
    for part in range(3):
        assert cf_watermarks(broker.bootstrap, topic, part) == (0, 100)
    msgs = cf_consume_all(broker.bootstrap, topic, [0, 1, 2])
    got = {(m.partition(), m.offset()): m for m in msgs}
    assert len(got) == 300
    for i, r in enumerate(records):
        m = got[(i % 3, i // 3)]
        assert (m.key(), m.value(), m.timestamp()[1], headers_of(m)) == (
            r["key"], r["value"], r["timestamp"], r["headers"]
        )
    configs = describe_topic_configs(cf_admin(broker.bootstrap), topic)
    assert configs["retention.ms"].value == "86400000"
    (m,) = cf_consume_all(broker.bootstrap, lat, [0])
    assert m.timestamp() == lat_ts and lat_ts[0] == TIMESTAMP_LOG_APPEND_TIME

    # Appends continue at the old end.
    p = cf_producer(broker.bootstrap)
    reports = cf_produce_all(p, [{"value": b"after", "partition": 0}], topic)
    assert reports[0][1].offset() == 100


def test_acked_records_survive_sigkill(broker):
    topic = unique_topic("cf-kill")
    cf_create_topic(broker.bootstrap, topic, partitions=2)
    p = cf_producer(
        broker.bootstrap, **{"acks": "all", "compression.type": "zstd", "batch.num.messages": 50}
    )
    records = [{"value": payload(i, 100), "partition": i % 2} for i in range(1000)]
    reports = cf_produce_all(p, records, topic)
    del p
    acked = {}
    for r, (err, msg) in zip(records, reports):
        assert err is None
        acked[(msg.partition(), msg.offset())] = r["value"]

    code = broker.restart(kill=True)
    assert code == -9

    msgs = cf_consume_all(broker.bootstrap, topic, [0, 1])
    got = {(m.partition(), m.offset()): m.value() for m in msgs}
    missing = sorted(set(acked) - set(got))
    assert not missing, f"{len(missing)} acknowledged records lost, first: {missing[:5]}"
    for k, v in acked.items():
        assert got[k] == v, f"record {k} changed"


def test_admin_changes_survive_restart(broker):
    admin = cf_admin(broker.bootstrap)
    altered = unique_topic("cf-rs-alter")
    grown = unique_topic("cf-rs-grow")
    trimmed = unique_topic("cf-rs-trim")
    deleted = unique_topic("cf-rs-del")
    for t in (altered, grown, trimmed, deleted):
        cf_create_topic(broker.bootstrap, t)

    res = ConfigResource(
        ResourceType.TOPIC,
        altered,
        incremental_configs=[
            ConfigEntry("retention.ms", "999999", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    admin.create_partitions([NewPartitions(grown, 4)], request_timeout=GUARD_S)[grown].result(timeout=GUARD_S)
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": payload(i)} for i in range(10)], trimmed)
    cf_produce_all(p, [{"value": b"gone"}], deleted)
    del p
    (fut,) = admin.delete_records([TopicPartition(trimmed, 0, 6)], request_timeout=GUARD_S).values()
    assert fut.result(timeout=GUARD_S).low_watermark == 6
    admin.delete_topics([deleted], request_timeout=GUARD_S)[deleted].result(timeout=GUARD_S)
    wait_until(lambda: deleted not in cf_topic_names(broker.bootstrap), "deleted topic gone")

    assert broker.restart() == 0

    admin = cf_admin(broker.bootstrap)
    assert describe_topic_configs(admin, altered)["retention.ms"].value == "999999"
    assert cf_partition_count(admin, grown) == 4
    assert cf_watermarks(broker.bootstrap, trimmed, 0) == (6, 10)
    assert [m.offset() for m in cf_consume_all(broker.bootstrap, trimmed, [0])] == list(range(6, 10))
    assert deleted not in cf_topic_names(broker.bootstrap)


def test_clients_carry_on_across_a_restart(broker):
    topic = unique_topic("cf-live")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap, acks="all")
    c = cf_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []

        def read(n):
            def more():
                m = c.poll(0.2)
                if m is not None and not m.error():
                    got.append((m.offset(), m.value()))
                return len(got) >= n

            wait_until(more, f"{n} records")

        first = cf_produce_all(p, [{"value": f"before-{i}".encode()} for i in range(10)], topic)
        assert [msg.offset() for _, msg in first] == list(range(10))
        read(10)

        assert broker.restart() == 0

        # The same producer and consumer reconnect by themselves.
        second = cf_produce_all(p, [{"value": f"after-{i}".encode()} for i in range(10)], topic)
        assert [(err, msg.offset()) for err, msg in second] == [(None, 10 + i) for i in range(10)]
        read(20)
        assert got == [(i, f"before-{i}".encode()) for i in range(10)] + [
            (10 + i, f"after-{i}".encode()) for i in range(10)
        ]
    finally:
        c.close()


def test_switching_to_log_append_time_applies_to_new_records(broker):
    topic = unique_topic("cf-switch-lat")
    cf_create_topic(broker.bootstrap, topic)
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": b"create-time", "timestamp": 1_000_000_000_000}], topic)
    admin = cf_admin(broker.bootstrap)
    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    admin.incremental_alter_configs([res], request_timeout=GUARD_S)[res].result(timeout=GUARD_S)
    before = now_ms()
    (report,) = cf_produce_all(p, [{"value": b"append-time", "timestamp": 1_000_000_000_000}], topic)
    after = now_ms()
    first, second = cf_consume_all(broker.bootstrap, topic, [0])
    assert first.timestamp() == (TIMESTAMP_CREATE_TIME, 1_000_000_000_000)
    assert second.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME
    assert before <= second.timestamp()[1] <= after
    assert report[1].timestamp() == second.timestamp()


def test_concurrent_producers_to_one_partition(broker):
    import threading

    topic = unique_topic("cf-concurrent")
    cf_create_topic(broker.bootstrap, topic)
    per, writers = 400, 4
    errors = []

    def write(w):
        try:
            p = cf_producer(broker.bootstrap, **{"linger.ms": w * 3, "compression.type": CODECS[w % 5]})
            reports = cf_produce_all(
                p, [{"value": f"w{w}-{i}".encode(), "partition": 0} for i in range(per)], topic
            )
            assert all(err is None for err, _ in reports)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD_S * 2)
    assert not errors, errors
    msgs = cf_consume_all(broker.bootstrap, topic, [0])
    assert [m.offset() for m in msgs] == list(range(per * writers))  # dense, no gaps
    for w in range(writers):
        mine = [m.value() for m in msgs if m.value().startswith(f"w{w}-".encode())]
        assert mine == [f"w{w}-{i}".encode() for i in range(per)], f"writer {w} out of order or lost"


def test_small_segments_roll_and_stay_readable(broker):
    topic = unique_topic("cf-segments")
    cf_create_topic(broker.bootstrap, topic, config={"segment.bytes": "65536"})
    base = 1_680_000_000_000
    n = 3000
    p = cf_producer(broker.bootstrap, **{"batch.num.messages": 37, "linger.ms": 20})
    records = [{"value": payload(i, 200), "timestamp": base + i * 10} for i in range(n)]
    for start in range(0, n, 500):  # several flushes, many batches, ~10 segments
        cf_produce_all(p, records[start : start + 500], topic)
    del p

    def check(low):
        assert cf_watermarks(broker.bootstrap, topic, 0) == (low, n)
        msgs = cf_consume_all(broker.bootstrap, topic, [0])
        assert [m.offset() for m in msgs] == list(range(low, n))
        assert all(m.value() == payload(m.offset(), 200) for m in msgs)
        c = cf_consumer(broker.bootstrap)
        try:
            for off in (low, 777, 1499, 1500, 2222, n - 1):
                (got,) = c.offsets_for_times([TopicPartition(topic, 0, base + off * 10 - 5)], timeout=GUARD_S)
                assert got.offset == max(off, low), (off, got.offset)
        finally:
            c.close()

    check(0)
    admin = cf_admin(broker.bootstrap)
    (fut,) = admin.delete_records([TopicPartition(topic, 0, 1234)], request_timeout=GUARD_S).values()
    assert fut.result(timeout=GUARD_S).low_watermark == 1234
    check(1234)
    assert broker.restart(kill=True) == -9
    check(1234)
