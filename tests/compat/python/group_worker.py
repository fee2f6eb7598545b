"""One consumer-group member, run as its own process by the group tests (see
`compat.GroupWorker`), so that a test can SIGKILL it or SIGSTOP it.

    python group_worker.py '<json spec>'

The spec: {"client": "confluent" | "kafka-python", "bootstrap", "group",
"topics": [...], "events": path, "conf": {client config overrides},
"commit": "each" | "none" | "hold", "name"}.

Every event is one JSON line appended to `events` (flushed at once), with
its wall-clock time "ts" (for reading failures, never asserted on):
  {"ev": "started"}
  {"ev": "assign" | "revoke" | "lost", "parts": [[topic, partition], ...]}
  {"ev": "msg", "t", "p", "o", "v"}                 a record handed to the app
  {"ev": "commit", "t", "p", "o"}                   commit of offset o succeeded
  {"ev": "commit_error", "t", "p", "o", "code", "name"}
  {"ev": "error", "code", "name", "fatal"}          consumer error event
  {"ev": "closed"}                                   after a clean close (SIGTERM)
With "commit": "each", every record is committed synchronously (offset + 1)
right after it is logged, before the next poll. With "hold" (confluent only),
the first record is logged, then {"ev": "hold"}, then the worker stops
polling until the file `events` + ".go" exists, commits that one record and
goes on without committing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

STOP = threading.Event()


class EventLog:
    def __init__(self, path: str):
        self._f = open(path, "a", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, ev: str, **fields):
        line = json.dumps({"ev": ev, **fields, "ts": round(time.time(), 3)})
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()


def parts_of(tps):
    return sorted([tp.topic, tp.partition] for tp in tps)


def run_confluent(spec, log):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": spec["group"],
        "client.id": spec.get("name", "strom-compat-worker"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 30000,
        "fetch.wait.max.ms": 100,
    }
    conf.update(spec.get("conf", {}))
    c = Consumer(conf)

    c.subscribe(
        spec["topics"],
        on_assign=lambda _c, tps: log("assign", parts=parts_of(tps)),
        on_revoke=lambda _c, tps: log("revoke", parts=parts_of(tps)),
        on_lost=lambda _c, tps: log("lost", parts=parts_of(tps)),
    )
    log("started")
    while not STOP.is_set():
        m = c.poll(0.2)
        if m is None:
            continue
        err = m.error()
        if err is not None:
            log("error", code=err.code(), name=err.name(), fatal=err.fatal())
            continue
        v = m.value()
        log("msg", t=m.topic(), p=m.partition(), o=m.offset(), v=None if v is None else v.decode())
        mode = spec.setdefault("commit", "each")
        if mode == "hold":
            log("hold")
            go = spec["events"] + ".go"
            while not os.path.exists(go) and not STOP.is_set():
                time.sleep(0.05)
            spec["commit"] = "each_once"
        if spec["commit"] in ("each", "each_once"):
            if spec["commit"] == "each_once":
                spec["commit"] = "none"
            tp = TopicPartition(m.topic(), m.partition(), m.offset() + 1)
            try:
                res = c.commit(offsets=[tp], asynchronous=False)
            except KafkaException as e:
                ke = e.args[0]
                log("commit_error", t=tp.topic, p=tp.partition, o=tp.offset, code=ke.code(), name=ke.name())
                continue
            for r in res or []:
                if r.error is not None:
                    log("commit_error", t=r.topic, p=r.partition, o=tp.offset,
                        code=r.error.code(), name=r.error.name())
                else:
                    log("commit", t=r.topic, p=r.partition, o=r.offset)
    c.close()
    log("closed")


def run_kafka_python(spec, log):
    from kafka import KafkaConsumer, TopicPartition
    from kafka import errors as Errors
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.structs import OffsetAndMetadata

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            log("revoke", parts=parts_of(revoked))

        def on_partitions_assigned(self, assigned):
            log("assign", parts=parts_of(assigned))

        def on_partitions_lost(self, lost):
            log("lost", parts=parts_of(lost))

    conf = dict(
        bootstrap_servers=spec["bootstrap"],
        group_id=spec["group"],
        client_id=spec.get("name", "strom-compat-worker"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=30000,
        fetch_max_wait_ms=100,
        request_timeout_ms=30000,
    )
    conf.update(spec.get("conf", {}))
    c = KafkaConsumer(**conf)
    c.subscribe(spec["topics"], listener=Listener())
    log("started")
    while not STOP.is_set():
        batches = c.poll(timeout_ms=200)
        for tp, recs in batches.items():
            for r in recs:
                log("msg", t=r.topic, p=r.partition, o=r.offset,
                    v=None if r.value is None else r.value.decode())
                if spec.get("commit", "each") != "each":
                    continue
                off = r.offset + 1
                try:
                    c.commit({TopicPartition(r.topic, r.partition): OffsetAndMetadata(off, "", -1)})
                except Errors.KafkaError as e:
                    log("commit_error", t=r.topic, p=r.partition, o=off,
                        code=getattr(e, "errno", -1), name=type(e).__name__)
                else:
                    log("commit", t=r.topic, p=r.partition, o=off)
    c.close(autocommit=False)
    log("closed")


def main():
    spec = json.loads(sys.argv[1])
    log = EventLog(spec["events"])
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    if spec.get("client", "confluent") == "confluent":
        run_confluent(spec, log)
    else:
        run_kafka_python(spec, log)
    os._exit(0)


if __name__ == "__main__":
    main()
