"""KafkaJS transactions against strom: runs tests/compat/node/transactions.test.js
with `node --test` against this module's broker (commit/abort isolation,
sendOffsets, fencing by a second producer with the same transactional.id),
then reads the transactional topics back with librdkafka read_committed and
read_uncommitted, and checks the group offsets the transactions committed
(kafka-python: offsets and metadata; librdkafka: offsets), before and after a
SIGKILL and a graceful restart.

confluent-kafka sends commit metadata with a trailing NUL (its size is
strlen + 1) and hands fetched metadata out as a C string, so metadata another
client committed comes back with whatever byte follows it in memory ("txn-4"
read as "txn-4" plus a stray byte): only kafka-python checks metadata here.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from kafka.admin import KafkaAdminClient

from compat import GUARD_S, cf_admin, cf_consume_all, cf_group_offsets
from test_groups_kafka_python import group_offsets as kp_group_offsets
from test_kafkajs import NODE, NODE_DIR, NODE_GUARD_S, pytestmark  # noqa: F401 (pytestmark applies here)


@pytest.fixture(scope="module")
def kafkajs_txn(broker, tmp_path_factory):
    """Runs the KafkaJS transaction tests once; returns (returncode, output, left)."""
    out = tmp_path_factory.mktemp("kafkajs-txn") / "transactions.json"
    env = dict(os.environ, STROM_BOOTSTRAP=broker.bootstrap, STROM_COMPAT_OUT=str(out))
    r = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", "transactions.test.js"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_GUARD_S,
    )
    left = json.loads(out.read_text()) if out.exists() else None
    return r.returncode, r.stdout + r.stderr, left


def test_kafkajs_transactions_node_suite(kafkajs_txn):
    code, output, _ = kafkajs_txn
    print(output)
    assert code == 0, f"node --test transactions.test.js failed (exit {code}):\n{output}"


def check_topics(bootstrap, left):
    """librdkafka sees exactly the committed (and non-transactional) records
    read_committed, and every record read_uncommitted, at the same offsets."""
    assert left and left["topics"], "KafkaJS left no transactional topics"
    for entry in left["topics"]:
        topic, parts = entry["topic"], list(range(entry["partitions"]))
        for level, want in (("read_committed", entry["committed"]), ("read_uncommitted", entry["all"])):
            msgs = cf_consume_all(bootstrap, topic, parts, isolation_level=level)
            got = sorted([m.partition(), m.offset(), m.value().decode()] for m in msgs)
            assert got == want, f"{topic} {level}"


def check_groups(bootstrap, left):
    assert left and left["groups"], "KafkaJS left no transactionally committed offsets"
    kp = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(GUARD_S * 1000))
    cf = cf_admin(bootstrap)
    try:
        for entry in left["groups"]:
            want = {
                (entry["topic"], int(p)): (offset, metadata)
                for p, (offset, metadata) in entry["offsets"].items()
            }
            assert kp_group_offsets(kp, entry["groupId"]) == want, entry
            got = cf_group_offsets(cf, entry["groupId"])
            assert {k: o for k, (o, _) in got.items()} == {k: o for k, (o, _) in want.items()}, entry
    finally:
        kp.close()


def test_transactional_topics_read_by_librdkafka(broker, kafkajs_txn):
    check_topics(broker.bootstrap, kafkajs_txn[2])


def test_transactional_offsets_read_by_librdkafka(broker, kafkajs_txn):
    check_groups(broker.bootstrap, kafkajs_txn[2])


def test_transactions_survive_sigkill(broker, kafkajs_txn):
    assert kafkajs_txn[2] is not None
    assert broker.restart(kill=True) == -9
    check_topics(broker.bootstrap, kafkajs_txn[2])
    check_groups(broker.bootstrap, kafkajs_txn[2])


def test_transactions_survive_graceful_restart(broker, kafkajs_txn):
    assert kafkajs_txn[2] is not None
    assert broker.restart() == 0
    check_topics(broker.bootstrap, kafkajs_txn[2])
    check_groups(broker.bootstrap, kafkajs_txn[2])
