"""Quix Streams, a stream-processing library nobody here wrote, against strom: its
state stores keep their changelogs in compacted topics (cleanup.policy=compact),
which strom now accepts and compacts.

A count-per-key application (tests/compat/quix/counter.py, exactly-once) runs over
the first half of the input and stops; its local state is deleted, so the restarted
application must restore its counts from the changelog topic; it then counts the
second half. Every key's last count equals the number of its records, and the
changelog topic is compacted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from compat import (
    GUARD_S,
    cf_admin,
    cf_consume_all,
    cf_create_topic,
    cf_partition_count,
    cf_produce_all,
    cf_producer,
    unique_topic,
)

HERE = Path(__file__).resolve().parents[1]
QUIX_PYTHON = HERE / ".venv-quix" / "bin" / "python"
COUNTER = HERE / "quix" / "counter.py"
KEYS = 8
RECORDS_PER_RUN = 200

pytestmark = pytest.mark.skipif(not QUIX_PYTHON.exists(), reason="Quix Streams venv not installed (install.sh)")


def run_counter(bootstrap, source, sink, group, state_dir, expected):
    r = subprocess.run(
        [str(QUIX_PYTHON), str(COUNTER), bootstrap, source, sink, group, str(state_dir), str(expected)],
        capture_output=True,
        text=True,
        timeout=GUARD_S * 6,
    )
    assert r.returncode == 0, f"counter.py exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def produce(bootstrap, topic, start, n):
    records = [
        {"key": f"k{i % KEYS}".encode(), "value": json.dumps({"i": i}).encode()}
        for i in range(start, start + n)
    ]
    reports = cf_produce_all(cf_producer(bootstrap), records, topic)
    assert all(err is None for err, _ in reports)
    return Counter(f"k{i % KEYS}" for i in range(start, start + n))


def test_quixstreams_restores_state_from_a_compacted_changelog(broker, tmp_path):
    source, sink = unique_topic("quix-in"), unique_topic("quix-out")
    group = unique_topic("quix-app")
    cf_create_topic(broker.bootstrap, source, partitions=2)
    state_dir = tmp_path / "state"

    counts = produce(broker.bootstrap, source, 0, RECORDS_PER_RUN)
    run_counter(broker.bootstrap, source, sink, group, state_dir, RECORDS_PER_RUN)
    shutil.rmtree(state_dir)  # the restart must restore from the changelog
    counts += produce(broker.bootstrap, source, RECORDS_PER_RUN, RECORDS_PER_RUN)
    run_counter(broker.bootstrap, source, sink, group, state_dir, RECORDS_PER_RUN)

    admin = cf_admin(broker.bootstrap)
    partitions = range(cf_partition_count(admin, sink))
    outputs = cf_consume_all(broker.bootstrap, sink, partitions, isolation_level="read_committed")
    assert len(outputs) == 2 * RECORDS_PER_RUN, "every input counted exactly once"
    last = {}
    for msg in outputs:
        value = json.loads(msg.value())
        last[value["key"]] = max(last.get(value["key"], 0), value["count"])
    assert last == dict(counts)

    changelogs = [t for t in admin.list_topics(timeout=10).topics if t.startswith("changelog__") and group in t]
    assert changelogs, "Quix created its changelog topic"
    resource = ConfigResource("topic", changelogs[0])
    configs = admin.describe_configs([resource])[resource].result(timeout=GUARD_S)
    assert configs["cleanup.policy"].value == "compact"
