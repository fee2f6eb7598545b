"""Helpers shared by the client test modules.

Timeouts here are failure guards only: a test never asserts on how long
something took, it only refuses to hang forever.
"""

from __future__ import annotations

import os
import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
GUARD_S = 30.0

# Topic config defaults the broker promises (DescribeConfigs).
TOPIC_DEFAULTS = {
    "retention.ms": "604800000",
    "cleanup.policy": "delete",
    "max.message.bytes": "1048588",
    "segment.bytes": "1073741824",
    "message.timestamp.type": "CreateTime",
}


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(pred, what: str, timeout: float = GUARD_S, interval: float = 0.1):
    """Polls pred() until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except Exception as e:  # keep polling, report the last failure
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}; last result: {last!r}")
        time.sleep(interval)


def payload(i: int, size: int = 0) -> bytes:
    """A deterministic value: compressible text, optionally padded."""
    base = f"value-{i:06d}-".encode()
    if size <= len(base):
        return base
    return base + (b"abcdefgh" * (size // 8 + 1))[: size - len(base)]


# --------------------------------------------------------------------------
# confluent-kafka helpers (also used by the kcat and KafkaJS modules to set up
# topics and to read back what the other client produced)
# --------------------------------------------------------------------------


def cf_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def cf_create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None):
    admin = cf_admin(bootstrap)
    futs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=10,
        request_timeout=GUARD_S,
    )
    futs[name].result(timeout=GUARD_S)
    wait_until(
        lambda: cf_partition_count(admin, name) == partitions,
        f"topic {name} with {partitions} partitions in metadata",
    )


def cf_partition_count(admin, topic: str) -> int | None:
    md = admin.list_topics(timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    if any(p.error is not None or p.leader < 0 for p in t.partitions.values()):
        return None
    return len(t.partitions)


def cf_topic_names(bootstrap: str) -> set[str]:
    return set(cf_admin(bootstrap).list_topics(timeout=10).topics)


def cf_producer(bootstrap: str, **conf) -> Producer:
    base = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,
        "linger.ms": 5,
        "message.timeout.ms": int(GUARD_S * 1000),
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(base)


def cf_produce_all(producer: Producer, records, topic: str):
    """Produces records (dicts with value/key/partition/timestamp/headers) and
    flushes. Returns the delivery reports (err, msg) in production order."""
    reports = [None] * len(records)

    def cb(i):
        def on_delivery(err, msg):
            reports[i] = (err, msg)

        return on_delivery

    for i, r in enumerate(records):
        kwargs = {k: v for k, v in r.items() if v is not None and k != "value"}
        producer.produce(topic, value=r.get("value"), on_delivery=cb(i), **kwargs)
        producer.poll(0)
    left = producer.flush(GUARD_S)
    assert left == 0, f"{left} messages still undelivered after flush"
    assert all(rep is not None for rep in reports), "a delivery report is missing"
    return reports


def cf_consumer(bootstrap: str, **conf) -> Consumer:
    # group.id is mandatory for confluent-kafka's Consumer but is never used:
    # the tests only assign() explicit partitions and never commit.
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": "strom-compat-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 100,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(base)


def cf_consume_all(
    bootstrap: str,
    topic: str,
    partitions,
    start=OFFSET_BEGINNING,
    expect: int | None = None,
    **conf,
):
    """Reads every record of the given partitions from `start` up to the end
    (partition EOF), returns the messages in arrival order. If `expect` is
    given, keeps reading until that many records arrived (and EOF)."""
    c = cf_consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        msgs = []
        eof = set()
        deadline = time.monotonic() + GUARD_S
        while True:
            done = len(eof) == len(partitions) and (expect is None or len(msgs) >= expect)
            if done:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out consuming {topic} {list(partitions)}: got {len(msgs)} "
                    f"records, eof on {sorted(eof)}, expected {expect}"
                )
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            eof.discard(m.partition())
            msgs.append(m)
        return msgs
    finally:
        c.close()


def cf_watermarks(bootstrap: str, topic: str, partition: int):
    c = cf_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def by_partition(msgs):
    out = {}
    for m in msgs:
        out.setdefault(m.partition(), []).append(m)
    return out


def headers_of(m):
    """confluent-kafka headers as a list of (str, bytes|None) tuples."""
    return list(m.headers() or [])


def client_versions() -> dict:
    import confluent_kafka
    import kafka

    return {
        "confluent-kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka-python": kafka.__version__,
    }


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")
