"""Log compaction (cleanup.policy=compact) against real clients.

Topics are created by confluent-kafka's AdminClient and by KafkaJS, filled with
1,000 keys x 50 updates and 100 tombstones; after the log cleaner has run, a
consumer reading from the beginning sees exactly the latest value of every live
key, once, at the offset it was written, and no tombstoned key (delete.retention.ms
is 0); the partition's size on disk (DescribeLogDirs, through kafka-python) has
shrunk. A transactional producer's aborted records disappear as well.

The broker's cleaner wakes every 100 ms here (log_cleaner_backoff_ms); waits are
failure guards, not timing assertions.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from kafka.admin import KafkaAdminClient

from compat import (
    GUARD_S,
    cf_consumer,
    cf_create_topic,
    cf_produce_all,
    cf_producer,
    unique_topic,
    wait_until,
)
from conftest import running_broker
from test_kafkajs import NODE, NODE_DIR, NODE_GUARD_S

KEYS = 1000
UPDATES = 50
TOMBSTONES = 100
SEGMENT_MS = 200


@pytest.fixture(scope="module")
def broker(request):
    with running_broker(request, config=lambda _: "log_cleaner_backoff_ms = 100\n") as b:
        yield b


def read_from_start(bootstrap: str, topic: str, isolation: str = "read_uncommitted"):
    """Every record of partition 0 from the log start: [(offset, key, value)]."""
    consumer = cf_consumer(bootstrap, isolation_level=isolation)
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    try:
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == msg.error()._PARTITION_EOF:
                    break
                raise AssertionError(msg.error())
            out.append((msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def roll(bootstrap: str, topic: str):
    """Appends one record after segment.ms so the data before it is sealed, hence
    cleanable (the active segment is never cleaned)."""
    time.sleep(SEGMENT_MS / 1000 + 0.1)
    producer = cf_producer(bootstrap)
    cf_produce_all(producer, [{"key": b"~roll", "value": b"roll"}], topic)


def partition_size(bootstrap: str, topic: str) -> int:
    """Bytes on disk of the topic, from DescribeLogDirs (kafka-python)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        brokers = admin.describe_log_dirs([topic])
    finally:
        admin.close()
    return sum(
        p["partition_size"]
        for b in brokers
        for d in b["log_dirs"]
        for t in d["topics"]
        if t["name"] == topic
        for p in t["partitions"]
    )


def expected_latest():
    return {
        f"key-{k}".encode(): f"value-{k}-{UPDATES - 1}".encode()
        for k in range(TOMBSTONES, KEYS)
    }


def check_compacted(bootstrap: str, topic: str, written: dict[int, tuple]):
    """Waits until a reader from the start sees exactly the live keys' latest values."""
    want = expected_latest()
    want[b"~roll"] = b"roll"

    def compacted():
        records = read_from_start(bootstrap, topic)
        got = {k: v for _, k, v in records}
        return records if len(records) == len(want) and got == want else None

    records = wait_until(compacted, f"{topic} compacted to the latest value per key", timeout=120)
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets increase"
    for offset, key, value in records:
        if key != b"~roll":
            assert written[offset] == (key, value), "records keep their offsets"


def test_confluent_admin_created_compacted_topic_keeps_the_latest_value_per_key(broker):
    topic = unique_topic("compact-cf")
    cf_create_topic(
        broker.bootstrap,
        topic,
        config={
            "cleanup.policy": "compact",
            "segment.bytes": "131072",
            "segment.ms": str(SEGMENT_MS),
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "0",
        },
    )
    producer = cf_producer(broker.bootstrap, linger_ms=20, batch_size=16384)
    records = [
        {"key": f"key-{k}".encode(), "value": f"value-{k}-{r}".encode()}
        for r in range(UPDATES)
        for k in range(KEYS)
    ]
    records += [{"key": f"key-{k}".encode(), "value": None} for k in range(TOMBSTONES)]
    reports = cf_produce_all(producer, records, topic)
    assert [err for err, _ in reports if err is not None] == []
    written = {msg.offset(): (msg.key(), msg.value()) for _, msg in reports}
    size_before = partition_size(broker.bootstrap, topic)
    roll(broker.bootstrap, topic)
    check_compacted(broker.bootstrap, topic, written)
    size_after = partition_size(broker.bootstrap, topic)
    assert size_after < size_before / 10, (size_before, size_after)


def test_keyless_records_are_refused_on_a_compacted_topic(broker):
    topic = unique_topic("compact-nokey")
    cf_create_topic(broker.bootstrap, topic, config={"cleanup.policy": "compact"})
    producer = cf_producer(broker.bootstrap, message_timeout_ms=5000, retries=0)
    reports = cf_produce_all(producer, [{"value": b"no key"}], topic)
    err = reports[0][0]
    assert err is not None and err.name() == "INVALID_RECORD", err


@pytest.mark.skipif(NODE is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir(), reason="KafkaJS not installed")
def test_kafkajs_created_compacted_topic_keeps_the_latest_value_per_key(broker):
    topic = unique_topic("compact-js")
    env = dict(
        os.environ,
        STROM_BOOTSTRAP=broker.bootstrap,
        TOPIC=topic,
        KEYS=str(KEYS),
        UPDATES=str(UPDATES),
        TOMBSTONES=str(TOMBSTONES),
        SEGMENT_MS=str(SEGMENT_MS),
    )
    r = subprocess.run(
        [NODE, "compaction.js"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=NODE_GUARD_S
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # KafkaJS wrote offsets in order: round by round, key by key, then tombstones.
    written = {}
    offset = 0
    for rnd in range(UPDATES):
        for k in range(KEYS):
            written[offset] = (f"key-{k}".encode(), f"value-{k}-{rnd}".encode())
            offset += 1
    roll(broker.bootstrap, topic)
    check_compacted(broker.bootstrap, topic, written)


def test_aborted_transactional_records_disappear(broker):
    topic = unique_topic("compact-txn")
    cf_create_topic(
        broker.bootstrap,
        topic,
        config={
            "cleanup.policy": "compact",
            "segment.ms": str(SEGMENT_MS),
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "0",
        },
    )
    producer = cf_producer(broker.bootstrap, transactional_id=unique_topic("txn"), enable_idempotence=True)
    producer.init_transactions(GUARD_S)
    producer.begin_transaction()
    for k in range(20):
        producer.produce(topic, key=f"k{k}".encode(), value=b"committed")
    producer.commit_transaction(GUARD_S)
    producer.begin_transaction()
    for k in range(20):
        producer.produce(topic, key=f"k{k}".encode(), value=b"aborted")
    producer.abort_transaction(GUARD_S)
    roll(broker.bootstrap, topic)

    def cleaned():
        records = read_from_start(broker.bootstrap, topic)
        values = [v for _, _, v in records]
        return records if b"aborted" not in values and len(records) == 21 else None

    records = wait_until(cleaned, "aborted records removed", timeout=120)
    assert sorted(k for _, k, _ in records) == sorted([f"k{k}".encode() for k in range(20)] + [b"~roll"])
    committed = read_from_start(broker.bootstrap, topic, isolation="read_committed")
    assert sorted(v for _, _, v in committed) == [b"committed"] * 20 + [b"roll"]
