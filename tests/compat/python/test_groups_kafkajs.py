"""KafkaJS consumer groups against strom: runs tests/compat/node/groups.test.js
with `node --test` against this module's broker, then checks the offsets
KafkaJS left committed with librdkafka (AdminClient.list_consumer_group_offsets),
has a librdkafka member of the same group resume from them (it reads but does
not commit), and checks the offsets again after a SIGKILL and a graceful
restart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from compat import cf_admin, cf_drain, cf_group_consumer, cf_group_offsets

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")
NODE_GUARD_S = 300

pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir(),
    reason="node or KafkaJS not installed (run install.sh)",
)


@pytest.fixture(scope="module")
def kafkajs_groups(broker, tmp_path_factory):
    """Runs the KafkaJS group tests once; returns (returncode, output, left)."""
    out = tmp_path_factory.mktemp("kafkajs-groups") / "groups.json"
    env = dict(os.environ, STROM_BOOTSTRAP=broker.bootstrap, STROM_COMPAT_OUT=str(out))
    r = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", "groups.test.js"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_GUARD_S,
    )
    left = json.loads(out.read_text())["groups"] if out.exists() else None
    return r.returncode, r.stdout + r.stderr, left


def test_kafkajs_groups_node_suite(kafkajs_groups):
    code, output, _ = kafkajs_groups
    print(output)
    assert code == 0, f"node --test groups.test.js failed (exit {code}):\n{output}"


def expected_offsets(entry):
    return {
        (entry["topic"], int(p)): (offset, metadata)
        for p, (offset, metadata) in entry["offsets"].items()
    }


def check_left_offsets(bootstrap, left):
    assert left, "KafkaJS left no committed group offsets"
    admin = cf_admin(bootstrap)
    for entry in left:
        assert cf_group_offsets(admin, entry["groupId"]) == expected_offsets(entry), entry


def test_kafkajs_offsets_read_by_librdkafka(broker, kafkajs_groups):
    check_left_offsets(broker.bootstrap, kafkajs_groups[2])


def test_librdkafka_member_resumes_where_kafkajs_committed(broker, kafkajs_groups):
    left = kafkajs_groups[2]
    assert left
    for entry in left:
        topic, end = entry["topic"], entry["end"]
        want = expected_offsets(entry)
        c = cf_group_consumer(broker.bootstrap, entry["groupId"])
        try:
            c.subscribe([topic])
            msgs = cf_drain(c, {(topic, p): end for p in range(entry["partitions"])})
        finally:
            c.close()
        for p in range(entry["partitions"]):
            got = [m.offset() for m in msgs if m.partition() == p]
            assert got == list(range(want[(topic, p)][0], end)), (p, got)


def test_kafkajs_offsets_survive_sigkill(broker, kafkajs_groups):
    assert broker.restart(kill=True) == -9
    check_left_offsets(broker.bootstrap, kafkajs_groups[2])


def test_kafkajs_offsets_survive_graceful_restart(broker, kafkajs_groups):
    assert broker.restart() == 0
    check_left_offsets(broker.bootstrap, kafkajs_groups[2])
