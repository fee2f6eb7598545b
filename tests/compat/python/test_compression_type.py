"""Topic `compression.type` with real clients: every producer codec into a topic of
every compression type reads back identical records (confluent-kafka, kcat), and
the batches on disk are in the topic's codec (or the producer's, for `producer`).
Idempotent and transactional producers keep working across a recompressing topic:
no duplicate after a restart, aborted records stay hidden, and the stored batches
keep their producer id and transactional flag.

The stored codec is read from the segment files themselves (the batch header's
attributes), since no client API exposes it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from confluent_kafka import KafkaException, Producer

from compat import (
    CODECS,
    GUARD_S,
    cf_admin,
    cf_consume_all,
    cf_create_topic,
    cf_produce_all,
    cf_producer,
    unique_topic,
)
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

TOPIC_TYPES = ["uncompressed", "gzip", "snappy", "lz4", "zstd", "producer"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TYPE_CODEC = {"uncompressed": "none", "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}
KCAT = shutil.which("kcat")


def stored_batches(broker, topic: str, partition: int = 0):
    """(attributes, producer id, base sequence, record count) of every batch in the
    partition's segment files, in offset order."""
    directory = broker.data_dir / f"{topic}-{partition}"
    out = []
    for segment in sorted(directory.glob("*.log")):
        data = segment.read_bytes()
        at = 0
        while at + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, at + 8)
            if length <= 0:
                break
            (attributes,) = struct.unpack_from(">h", data, at + 21)
            (producer_id,) = struct.unpack_from(">q", data, at + 43)
            (base_sequence, count) = struct.unpack_from(">ii", data, at + 53)
            out.append((attributes, producer_id, base_sequence, count))
            at += 12 + length
    return out


def data_codecs(broker, topic: str) -> set[int]:
    """Codec ids of the data (non-control) batches on disk."""
    return {attrs & 7 for attrs, *_ in stored_batches(broker, topic) if not attrs & 0x20}


def records(tag: str, n: int = 60):
    return [
        {
            "value": (f"{tag}-value-{i}-" + "abc" * (i % 40)).encode() if i % 11 else None,
            "key": f"key-{i % 7}".encode() if i % 5 else None,
            "partition": 0,
            "timestamp": 1_700_000_000_000 + i * 3 - (i % 4) * 10,
            "headers": [("h", f"{i}".encode()), ("empty", b"")],
        }
        for i in range(n)
    ]


def as_read(msgs):
    return [
        (m.offset(), m.key(), m.value(), m.timestamp()[1], [(k, v) for k, v in (m.headers() or [])])
        for m in msgs
    ]


def as_sent(recs, first_offset=0):
    return [
        (first_offset + i, r["key"], r["value"], r["timestamp"], list(r["headers"]))
        for i, r in enumerate(recs)
    ]


@pytest.mark.parametrize("topic_type", TOPIC_TYPES)
def test_every_codec_into_a_topic_of_each_compression_type_reads_back_identical(
    broker, topic_type
):
    topic = unique_topic(f"ct-{topic_type}")
    cf_create_topic(broker.bootstrap, topic, 1, {"compression.type": topic_type})
    sent = []
    for codec in CODECS:
        recs = records(codec)
        stored_before = len(stored_batches(broker, topic))
        producer = cf_producer(broker.bootstrap, compression_codec=codec, linger_ms=50)
        reports = cf_produce_all(producer, recs, topic)
        assert [err for err, _ in reports if err is not None] == []
        sent += as_sent(recs, len(sent))
        new = {attrs & 7 for attrs, *_ in stored_batches(broker, topic)[stored_before:]}
        if topic_type == "producer":
            # Stored as sent: librdkafka sends a batch uncompressed when the codec
            # would not make it smaller, so `none` may appear beside the codec.
            assert CODEC_IDS[codec] in new and new <= {CODEC_IDS[codec], 0}, (codec, new)
        else:
            assert new == {CODEC_IDS[TYPE_CODEC[topic_type]]}, (topic_type, codec, new)
    got = as_read(cf_consume_all(broker.bootstrap, topic, [0]))
    assert got == sent


@pytest.mark.skipif(KCAT is None, reason="kcat not installed (run install.sh)")
@pytest.mark.parametrize("codec", CODECS)
def test_kcat_produces_each_codec_into_a_zstd_topic(broker, codec):
    topic = unique_topic(f"ct-kcat-{codec}")
    cf_create_topic(broker.bootstrap, topic, 1, {"compression.type": "zstd"})
    lines = [f"k{i % 5}:value-{i}-" + "x" * (i % 50) for i in range(150)]
    args = ["-P", "-t", topic, "-p", "0", "-K", ":", "-H", "codec=" + codec, "-X", "linger.ms=50"]
    if codec != "none":
        args += ["-z", codec]
    subprocess.run(
        [KCAT, "-b", broker.bootstrap, "-m", "15", *args],
        input=("\n".join(lines) + "\n").encode(),
        check=True,
        timeout=60,
    )
    r = subprocess.run(
        [KCAT, "-b", broker.bootstrap, "-m", "15", "-C", "-t", topic, "-o", "beginning", "-e",
         "-q", "-f", "%o|%k|%s|%h\n"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert r.stdout.decode().splitlines() == [
        f"{i}|{line.split(':', 1)[0]}|{line.split(':', 1)[1]}|codec={codec}"
        for i, line in enumerate(lines)
    ]
    assert data_codecs(broker, topic) == {CODEC_IDS["zstd"]}


def test_an_idempotent_producer_across_a_recompressing_topic_and_a_restart(broker):
    topic = unique_topic("ct-idem")
    cf_create_topic(broker.bootstrap, topic, 1, {"compression.type": "gzip"})
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "enable.idempotence": True,
            "compression.codec": "lz4",
            "linger.ms": 20,
        }
    )
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(err)

    n = 300
    for i in range(n):
        producer.produce(topic, f"idem-{i}".encode(), partition=0, on_delivery=report)
    assert producer.flush(GUARD_S) == 0
    broker.restart()
    for i in range(n, 2 * n):
        producer.produce(topic, f"idem-{i}".encode(), partition=0, on_delivery=report)
    assert producer.flush(GUARD_S) == 0
    assert not errors, errors[:3]
    got = [m.value() for m in cf_consume_all(broker.bootstrap, topic, [0])]
    assert got == [f"idem-{i}".encode() for i in range(2 * n)]
    batches = stored_batches(broker, topic)
    assert {attrs & 7 for attrs, *_ in batches} == {CODEC_IDS["gzip"]}
    # The producer id and the sequences survive recompression: consecutive batches
    # continue each other's sequence.
    assert len({pid for _, pid, _, _ in batches}) == 1 and batches[0][1] >= 0
    expected_sequence = 0
    for _, _, base_sequence, count in batches:
        assert base_sequence == expected_sequence
        expected_sequence += count


def test_transactions_across_a_recompressing_topic(broker):
    topic = unique_topic("ct-txn")
    cf_create_topic(broker.bootstrap, topic, 1, {"compression.type": "snappy"})
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "transactional.id": unique_topic("ct-tid"),
            "compression.codec": "zstd",
            "linger.ms": 5,
        }
    )
    producer.init_transactions(GUARD_S)
    committed = []
    for t in range(6):
        producer.begin_transaction()
        batch = [f"t{t}-r{r}" for r in range(20)]
        for value in batch:
            producer.produce(topic, value.encode(), partition=0)
        assert producer.flush(GUARD_S) == 0
        if t % 2 == 0:
            producer.commit_transaction(GUARD_S)
            committed += batch
        else:
            producer.abort_transaction(GUARD_S)
    read = cf_consume_all(broker.bootstrap, topic, [0], isolation_level="read_committed")
    assert [m.value().decode() for m in read] == committed
    data = [b for b in stored_batches(broker, topic) if not b[0] & 0x20]
    assert all(attrs & 0x10 for attrs, *_ in data), "the transactional flag is kept"
    assert {attrs & 7 for attrs, *_ in data} == {CODEC_IDS["snappy"]}
    assert any(attrs & 0x20 for attrs, *_ in stored_batches(broker, topic)), "markers written"


def test_compression_type_is_described_altered_and_applies_to_later_batches(broker):
    topic = unique_topic("ct-alter")
    cf_create_topic(broker.bootstrap, topic, 1)
    admin = cf_admin(broker.bootstrap)

    def described():
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        entries = admin.describe_configs([resource])[resource].result(timeout=GUARD_S)
        return entries["compression.type"].value

    assert described() == "producer"
    producer = cf_producer(broker.bootstrap, compression_codec="gzip", linger_ms=50)
    cf_produce_all(producer, records("before"), topic)
    before = {attrs & 7 for attrs, *_ in stored_batches(broker, topic)}
    assert CODEC_IDS["gzip"] in before and before <= {CODEC_IDS["gzip"], 0}, before
    stored_before = len(stored_batches(broker, topic))
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("compression.type", "lz4", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=GUARD_S)
    assert described() == "lz4"
    cf_produce_all(producer, records("after"), topic)
    after = {attrs & 7 for attrs, *_ in stored_batches(broker, topic)[stored_before:]}
    assert after == {CODEC_IDS["lz4"]}
    # Batches written before the change stay as they were.
    assert {attrs & 7 for attrs, *_ in stored_batches(broker, topic)[:stored_before]} == before
    bad = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("compression.type", "brotli", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    with pytest.raises(KafkaException, match="compression.type"):
        admin.incremental_alter_configs([bad])[bad].result(timeout=GUARD_S)
    assert described() == "lz4"
