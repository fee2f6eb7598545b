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


# --------------------------------------------------------------------------
# consumer groups (test_groups_*.py)
# --------------------------------------------------------------------------

import json as _json
import signal as _signal
import subprocess as _subprocess
import sys as _sys
from pathlib import Path as _Path

# Small session timeouts keep member-failure tests short; 6000 ms is Kafka's
# default group.min.session.timeout.ms.
GROUP_CONF = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "max.poll.interval.ms": 30000,
}
# Covers the initial rebalance delay (3 s), a session timeout and a few
# rebalances; a failure guard only.
GROUP_GUARD_S = 60.0
GROUP_WORKER = _Path(__file__).resolve().parent / "group_worker.py"


def cf_group_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    """A confluent-kafka consumer in `group` (manual commits: commit() with no
    arguments commits the positions of the records handed out; earliest
    reset; partition EOF events on)."""
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        **GROUP_CONF,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(base)


def cf_drain(consumer: Consumer, ends: dict, timeout: float = GROUP_GUARD_S):
    """Polls a subscribed consumer until it has been assigned every partition in
    `ends` ({(topic, partition): end offset}) and reported EOF at exactly that
    end offset on each. Returns the records in arrival order. Anything that
    arrives before the EOFs (duplicates included) is returned too."""
    msgs = []
    at_end = {}
    deadline = time.monotonic() + timeout
    while True:
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        if set(ends) <= assigned and all(at_end.get(k) == v for k, v in ends.items()):
            return msgs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out draining: assigned {sorted(assigned)}, EOF at {at_end}, "
                f"expected ends {ends}, {len(msgs)} records"
            )
        m = consumer.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_end[(m.topic(), m.partition())] = m.offset()
                continue
            raise KafkaException(m.error())
        at_end.pop((m.topic(), m.partition()), None)
        msgs.append(m)


def cf_group_offsets(admin, group: str, partitions=None) -> dict:
    """Committed offsets of `group` via AdminClient.list_consumer_group_offsets:
    {(topic, partition): (offset, metadata)}; partitions without a committed
    offset are left out. confluent-kafka hands out empty metadata as None: it
    is given back as "" here."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    req = ConsumerGroupTopicPartitions(
        group, [TopicPartition(t, p) for t, p in partitions] if partitions else None
    )
    res = admin.list_consumer_group_offsets([req], request_timeout=GUARD_S)[group].result(
        timeout=GUARD_S
    )
    assert res.group_id == group
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, f"{group} {tp}: {tp.error}"
        if tp.offset >= 0:
            out[(tp.topic, tp.partition)] = (tp.offset, tp.metadata or "")
    return out


def cf_describe_group(admin, group: str):
    return admin.describe_consumer_groups([group], request_timeout=GUARD_S)[group].result(
        timeout=GUARD_S
    )


def cf_list_groups(admin, states=None) -> dict:
    """{group_id: ConsumerGroupListing} from AdminClient.list_consumer_groups."""
    kw = {"request_timeout": GUARD_S}
    if states is not None:
        kw["states"] = set(states)
    res = admin.list_consumer_groups(**kw).result(timeout=GUARD_S)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def produce_per_partition(bootstrap: str, topic: str, partitions: int, per_partition: int, tag: str):
    """Produces `per_partition` records to each partition with values
    f"{tag}-{partition}-{i}"; returns {(topic, partition, offset): value}."""
    p = cf_producer(bootstrap)
    records = [
        {"value": f"{tag}-{part}-{i}".encode(), "partition": part}
        for part in range(partitions)
        for i in range(per_partition)
    ]
    reports = cf_produce_all(p, records, topic)
    out = {}
    for err, msg in reports:
        assert err is None, err
        out[(topic, msg.partition(), msg.offset())] = msg.value().decode()
    return out


class GroupWorker:
    """A group member in its own process (python/group_worker.py), so it can
    be SIGKILLed or SIGSTOPped. Its events (assignments, records, commits) are
    read back from a JSON-lines file."""

    def __init__(self, bootstrap, group, topics, workdir, name, client="confluent",
                 conf=None, commit="each"):
        self.name = name
        self.group = group
        self.events_path = _Path(workdir) / f"{name}.jsonl"
        self.log_path = _Path(workdir) / f"{name}.log"
        spec = {
            "client": client,
            "bootstrap": bootstrap,
            "group": group,
            "topics": list(topics),
            "events": str(self.events_path),
            "conf": conf or {},
            "commit": commit,
            "name": name,
        }
        self._log = open(self.log_path, "ab")
        self.proc = _subprocess.Popen(
            [_sys.executable, str(GROUP_WORKER), _json.dumps(spec)],
            stdin=_subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )

    def __repr__(self):
        return f"<GroupWorker {self.name} pid={self.proc.pid} rc={self.proc.poll()}>"

    def events(self):
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(_json.loads(line))
            except ValueError:  # a line being written
                break
        return out

    def assignment(self, events=None) -> set:
        """The current assignment as the rebalance callbacks told it (works for
        eager and incremental callbacks alike): {(topic, partition)}."""
        cur = set()
        for e in events if events is not None else self.events():
            parts = {tuple(x) for x in e.get("parts", [])}
            if e["ev"] == "assign":
                cur |= parts
            elif e["ev"] in ("revoke", "lost"):
                cur -= parts
        return cur

    def rebalance_events(self):
        return [e for e in self.events() if e["ev"] in ("assign", "revoke", "lost")]

    def consumed(self):
        """[(topic, partition, offset, value)] in the order the app saw them."""
        return [(e["t"], e["p"], e["o"], e["v"]) for e in self.events() if e["ev"] == "msg"]

    def committed(self) -> dict:
        """{(topic, partition): highest offset whose commit succeeded}."""
        out = {}
        for e in self.events():
            if e["ev"] == "commit":
                k = (e["t"], e["p"])
                out[k] = max(out.get(k, -1), e["o"])
        return out

    def commit_errors(self):
        return [e for e in self.events() if e["ev"] == "commit_error"]

    def errors(self):
        return [e for e in self.events() if e["ev"] == "error"]

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = GUARD_S) -> int:
        """SIGTERM: the worker closes its consumer (LeaveGroup) and exits."""
        if self.alive():
            self.proc.send_signal(_signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except _subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not exit on SIGTERM\n{self.output()}")
        assert code == 0, f"{self.name} exited with {code}\n{self.output()}"
        assert self.events() and self.events()[-1]["ev"] == "closed", self.output()
        return code

    def kill(self) -> int:
        if self.alive():
            self.proc.send_signal(_signal.SIGKILL)
        return self.proc.wait(timeout=GUARD_S)

    def pause(self):
        self.proc.send_signal(_signal.SIGSTOP)

    def release_hold(self):
        """Lets a "hold" worker go on (it commits the held record)."""
        _Path(str(self.events_path) + ".go").touch()

    def resume(self):
        self.proc.send_signal(_signal.SIGCONT)

    def cleanup(self):
        if self.alive():
            self.resume()
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def wait_assignments(workers, partitions, what="a stable assignment", timeout=GROUP_GUARD_S):
    """Waits until the workers' current assignments are pairwise disjoint,
    each non-empty and together exactly `partitions` ({(topic, p)}); returns
    them as a list of sets (in `workers` order)."""
    partitions = set(partitions)

    def check():
        for w in workers:
            assert w.alive(), f"{w.name} died\n{w.output()}"
        sets = [w.assignment() for w in workers]
        union = set().union(*sets)
        if sum(len(s) for s in sets) == len(union) == len(partitions) and union == partitions \
                and all(sets):
            return sets
        return None

    try:
        return wait_until(check, what, timeout=timeout, interval=0.2)
    except AssertionError as e:
        detail = "\n".join(f"{w.name}: {w.rebalance_events()[-6:]}" for w in workers)
        raise AssertionError(f"{e}\n{detail}") from None


def check_consumed_once(workers, expected: dict, allow_dups_on_failed_commit=True):
    """Every record in `expected` ({(t, p, o): value}) was handed to the
    application, with its value, and none more than once -- except a record
    at offset o whose commit (of o + 1) failed in some member, which Kafka
    semantics let the next owner read again."""
    seen = {}
    for w in workers:
        for t, p, o, v in w.consumed():
            seen.setdefault((t, p, o), []).append((w.name, v))
    failed = set()
    if allow_dups_on_failed_commit:
        for w in workers:
            for e in w.commit_errors():
                failed.add((e["t"], e["p"], e["o"] - 1))
    missing = sorted(k for k in expected if k not in seen)
    assert not missing, f"{len(missing)} records never consumed, e.g. {missing[:10]}"
    wrong = [(k, vs) for k, vs in seen.items() if k in expected and any(v != expected[k] for _, v in vs)]
    assert not wrong, f"wrong values: {wrong[:5]}"
    dups = {k: vs for k, vs in seen.items() if k in expected and len(vs) > 1 and k not in failed}
    assert not dups, f"{len(dups)} records consumed more than once: {list(dups.items())[:10]}"
    return seen
