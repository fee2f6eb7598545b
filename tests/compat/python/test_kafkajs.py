"""KafkaJS against strom: runs tests/compat/node/kafkajs.test.js with
`node --test` against this module's broker, then reads back everything KafkaJS
produced with confluent-kafka (KafkaJS has no group-less consumer), before and
after a graceful restart and after a SIGKILL (KafkaJS produces with acks=-1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

from compat import cf_consume_all, cf_topic_names, cf_watermarks

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")
NODE_GUARD_S = 300

pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir(),
    reason="node or KafkaJS not installed (run install.sh)",
)


@pytest.fixture(scope="module")
def kafkajs_run(broker, tmp_path_factory):
    """Runs the KafkaJS test file once; returns (returncode, output, produced)."""
    out = tmp_path_factory.mktemp("kafkajs") / "produced.json"
    env = dict(os.environ, STROM_BOOTSTRAP=broker.bootstrap, STROM_COMPAT_OUT=str(out))
    r = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", "kafkajs.test.js"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_GUARD_S,
    )
    produced = json.loads(out.read_text()) if out.exists() else None
    return r.returncode, r.stdout + r.stderr, produced


def test_kafkajs_node_suite(kafkajs_run):
    code, output, _ = kafkajs_run
    print(output)
    assert code == 0, f"node --test kafkajs.test.js failed (exit {code}):\n{output}"


def verify_produced(bootstrap, produced):
    """Every record KafkaJS reported as written is there, byte for byte."""
    assert produced["produced"], "KafkaJS reported no produced records"
    checked = 0
    for entry in produced["produced"]:
        topic = entry["topic"]
        records = entry["records"]
        parts = sorted({r["partition"] for r in records})
        msgs = cf_consume_all(bootstrap, topic, parts)
        got = {(m.partition(), m.offset()): m for m in msgs}
        for r in records:
            m = got.get((r["partition"], r["offset"]))
            assert m is not None, f"{topic} [{r['partition']}] offset {r['offset']} missing ({entry['codec']})"
            assert m.value() == (None if r["value"] is None else r["value"].encode()), (topic, r)
            assert m.key() == (None if r["key"] is None else r["key"].encode()), (topic, r)
            assert [(k, v.decode()) for k, v in (m.headers() or [])] == [tuple(h) for h in r["headers"]]
            if r["timestamp"] is not None:
                assert m.timestamp() == (TIMESTAMP_CREATE_TIME, r["timestamp"]), (topic, r)
            checked += 1
        if not entry.get("partial"):
            for p in parts:
                mine = [r for r in records if r["partition"] == p]
                assert len([m for m in msgs if m.partition() == p]) == len(mine), (topic, p)
        if "lowWatermark" in entry:
            assert cf_watermarks(bootstrap, topic, 0)[0] == entry["lowWatermark"]
    return checked


def verify_expectations(bootstrap, produced):
    exp = produced["expectations"]
    lat = exp.get("logAppendTime")
    if lat:
        (m,) = cf_consume_all(bootstrap, lat["topic"], [0])
        assert m.timestamp() == (TIMESTAMP_LOG_APPEND_TIME, lat["timestamp"])
    if exp.get("deletedTopic"):
        assert exp["deletedTopic"] not in cf_topic_names(bootstrap)


def test_kafkajs_records_read_back_by_librdkafka(broker, kafkajs_run):
    _, output, produced = kafkajs_run
    assert produced is not None, f"KafkaJS run wrote no results:\n{output[-5000:]}"
    codecs = {e["codec"] for e in produced["produced"]}
    assert {"none", "gzip", "snappy", "lz4", "zstd"} <= codecs, codecs
    assert verify_produced(broker.bootstrap, produced) > 0
    verify_expectations(broker.bootstrap, produced)


def test_kafkajs_records_survive_sigkill(broker, kafkajs_run):
    _, _, produced = kafkajs_run
    assert produced is not None
    assert broker.restart(kill=True) == -9
    verify_produced(broker.bootstrap, produced)
    verify_expectations(broker.bootstrap, produced)


def test_kafkajs_records_survive_graceful_restart(broker, kafkajs_run):
    _, _, produced = kafkajs_run
    assert produced is not None
    assert broker.restart() == 0
    verify_produced(broker.bootstrap, produced)
    verify_expectations(broker.bootstrap, produced)
