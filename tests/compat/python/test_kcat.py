"""kcat (Debian's, librdkafka 2.0.2 builtin) against strom.

kcat has no admin commands: topics with several partitions or special
configs are created with confluent-kafka's AdminClient, everything else goes
through kcat: -L (metadata), -P (produce), -C (consume), -Q (offsets by time).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess

import pytest

from compat import (
    CODECS,
    cf_admin,
    cf_consume_all,
    cf_create_topic,
    cf_partition_count,
    cf_produce_all,
    cf_producer,
    cf_topic_names,
    now_ms,
    unique_topic,
    wait_until,
)

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (run install.sh)")
RUN_GUARD_S = 60


def kcat(broker, *args, input=None, check=True):
    cmd = [KCAT, "-b", broker.bootstrap, "-m", "15", *args]
    r = subprocess.run(
        cmd,
        input=input,
        capture_output=True,
        timeout=RUN_GUARD_S,
    )
    if check and r.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {r.returncode}\nstdout: {r.stdout[-3000:]!r}\n"
            f"stderr: {r.stderr[-3000:]!r}"
        )
    return r


def metadata(broker, topic=None):
    args = ["-L", "-J"] + (["-t", topic] if topic else [])
    return json.loads(kcat(broker, *args).stdout)


def consume_json(broker, topic, *extra, offset="beginning"):
    r = kcat(broker, "-C", "-t", topic, "-o", offset, "-e", "-J", "-q", *extra)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def headers_list(rec):
    h = rec.get("headers") or []
    return list(zip(h[0::2], h[1::2]))


def test_metadata_list(broker):
    topic = unique_topic("kc-md")
    cf_create_topic(broker.bootstrap, topic, partitions=3)
    md = metadata(broker)
    assert len(md["brokers"]) == 1
    b = md["brokers"][0]
    assert b["name"] == broker.bootstrap
    bid = b["id"]
    assert md["controllerid"] == bid
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == bid
        assert [r["id"] for r in p["replicas"]] == [bid]
        assert [r["id"] for r in p["isrs"]] == [bid]
        assert "error" not in p, p

    one = metadata(broker, topic)
    assert [t["topic"] for t in one["topics"]] == [topic]


def test_auto_create_by_producing(broker):
    topic = unique_topic("kc-auto")
    assert topic not in cf_topic_names(broker.bootstrap)
    kcat(broker, "-P", "-t", topic, input=b"one\ntwo\n")
    assert cf_partition_count(cf_admin(broker.bootstrap), topic) == 1
    recs = consume_json(broker, topic)
    assert [(r["partition"], r["offset"], r["payload"]) for r in recs] == [
        (0, 0, "one"),
        (0, 1, "two"),
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec_keys_headers(broker, codec):
    topic = unique_topic(f"kc-{codec}")
    cf_create_topic(broker.bootstrap, topic)
    n = 200
    lines = [f"key{i % 13}:value-{i}-" + "x" * (i % 97) for i in range(n)]
    before = now_ms()
    args = ["-P", "-t", topic, "-p", "0", "-K", ":", "-H", "h1=v1", "-H", "codec=" + codec]
    if codec != "none":
        args += ["-z", codec]
    kcat(broker, *args, "-X", "linger.ms=50", input=("\n".join(lines) + "\n").encode())
    after = now_ms()

    recs = consume_json(broker, topic)
    assert len(recs) == n
    for i, (rec, line) in enumerate(zip(recs, lines)):
        key, value = line.split(":", 1)
        assert (rec["partition"], rec["offset"]) == (0, i)
        assert rec["key"] == key
        assert rec["payload"] == value
        assert headers_list(rec) == [("h1", "v1"), ("codec", codec)]
        assert rec["tstype"] == "create"
        assert before <= rec["ts"] <= after, (before, rec["ts"], after)

    # The same data through the -f formatter.
    r = kcat(broker, "-C", "-t", topic, "-o", "-3", "-e", "-q", "-f", "%p|%o|%k|%s|%h\n")
    assert r.stdout.decode().splitlines() == [
        f"0|{i}|{lines[i].split(':', 1)[0]}|{lines[i].split(':', 1)[1]}|h1=v1,codec={codec}"
        for i in range(n - 3, n)
    ]


def test_null_keys_and_values(broker):
    topic = unique_topic("kc-null")
    # -Z with -K: an empty key or value is sent as NULL; no delimiter: no key.
    kcat(broker, "-P", "-t", topic, "-K", ":", "-Z", input=b"k1:\n:v2\nplain\n")
    recs = consume_json(broker, topic)
    assert [(r["key"], r["payload"]) for r in recs] == [("k1", None), (None, "v2"), (None, "plain")]


def test_partitions_and_order(broker):
    topic = unique_topic("kc-parts")
    cf_create_topic(broker.bootstrap, topic, partitions=3)
    for p in range(3):
        body = "".join(f"p{p}-{s}\n" for s in range(50))
        kcat(broker, "-P", "-t", topic, "-p", str(p), "-z", "gzip", input=body.encode())
    for p in range(3):
        recs = consume_json(broker, topic, "-p", str(p))
        assert [(r["offset"], r["payload"]) for r in recs] == [(s, f"p{p}-{s}") for s in range(50)]
    # All partitions at once: per-partition order holds.
    recs = consume_json(broker, topic)
    assert len(recs) == 150
    for p in range(3):
        mine = [r["payload"] for r in recs if r["partition"] == p]
        assert mine == [f"p{p}-{s}" for s in range(50)]

    # Keyed messages without -p: each key sticks to one partition.
    body = "".join(f"k{i % 7}:{i}\n" for i in range(70))
    kcat(broker, "-P", "-t", topic, "-K", ":", input=body.encode())
    recs = [r for r in consume_json(broker, topic) if r["key"] is not None]
    assert len(recs) == 70
    where = {}
    for r in recs:
        assert where.setdefault(r["key"], r["partition"]) == r["partition"]


def test_log_append_time(broker):
    topic = unique_topic("kc-lat")
    cf_create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    kcat(broker, "-P", "-t", topic, input=b"a\nb\n")
    after = now_ms()
    recs = consume_json(broker, topic)
    assert len(recs) == 2
    for r in recs:
        assert r["tstype"] == "logappend", r
        assert before <= r["ts"] <= after


def test_query_offsets_by_timestamp(broker):
    topic = unique_topic("kc-query")
    cf_create_topic(broker.bootstrap, topic)
    base = 1_500_000_000_000
    p = cf_producer(broker.bootstrap)
    cf_produce_all(p, [{"value": f"v{i}".encode(), "timestamp": base + 10 * i} for i in range(10)], topic)

    def query(ts):
        r = kcat(broker, "-Q", "-t", f"{topic}:0:{ts}")
        m = re.search(rb"offset (-?\d+)", r.stdout)
        assert m, r.stdout
        return int(m.group(1))

    assert query(base) == 0
    assert query(base + 15) == 2
    assert query(base + 90) == 9
    assert query(base + 91) == -1  # past the last record: the end
    # The logical timestamps -1 (latest) and -2 (earliest): watermarks.
    assert query(-1) == 10
    assert query(-2) == 0

    # Consume starting at a timestamp (-o s@ts) and stopping at one (-o e@ts).
    r = kcat(broker, "-C", "-t", topic, "-o", f"s@{base + 35}", "-o", f"e@{base + 70}", "-e", "-q", "-f", "%s\n")
    assert r.stdout.decode().split() == ["v4", "v5", "v6"]


def test_message_too_large(broker):
    topic = unique_topic("kc-big")
    cf_create_topic(broker.bootstrap, topic)
    big = random.Random(5).randbytes(2 * 1024 * 1024).hex()[: 2 * 1024 * 1024]
    r = kcat(
        broker,
        "-P", "-t", topic,
        "-X", "message.max.bytes=10000000",
        "-X", "batch.size=10000000",
        "-X", "message.timeout.ms=20000",
        input=(big + "\n").encode(),
        check=False,
    )
    # kcat exits 1 when a delivery report carries an error.
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert b"Delivery failed for message: Broker: Message size too large" in r.stderr, r.stderr[-2000:]
    assert consume_json(broker, topic) == []


def test_produce_to_invalid_topic_fails(broker):
    r = kcat(broker, "-P", "-t", "bad:topic", "-X", "message.timeout.ms=10000", input=b"x\n", check=False)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert b"Delivery failed" in r.stderr or b"Failed to produce" in r.stderr, r.stderr[-2000:]
    assert "bad:topic" not in cf_topic_names(broker.bootstrap)


def test_acked_records_survive_sigkill_and_restart(broker):
    topic = unique_topic("kc-kill")
    cf_create_topic(broker.bootstrap, topic, partitions=2)
    for p in range(2):
        body = "".join(f"p{p}-{s}\n" for s in range(300))
        # kcat exits only after every message is delivered (acks=all by default).
        kcat(broker, "-P", "-t", topic, "-p", str(p), "-X", "acks=all", "-z", "lz4", input=body.encode())

    assert broker.restart(kill=True) == -9
    recs = consume_json(broker, topic)
    for p in range(2):
        assert [r["payload"] for r in recs if r["partition"] == p] == [f"p{p}-{s}" for s in range(300)]

    assert broker.restart() == 0
    recs = consume_json(broker, topic)
    assert len(recs) == 600
    # Appending after restarts continues the offsets.
    kcat(broker, "-P", "-t", topic, "-p", "0", input=b"after\n")
    recs = consume_json(broker, topic, "-p", "0", offset="-2")
    assert [(r["offset"], r["payload"]) for r in recs] == [(299, "p0-299"), (300, "after")]


def test_consume_empty_topic_exits(broker):
    topic = unique_topic("kc-empty")
    cf_create_topic(broker.bootstrap, topic)
    assert consume_json(broker, topic) == []
    # Cross-check: nothing there for another client either.
    assert cf_consume_all(broker.bootstrap, topic, [0]) == []
