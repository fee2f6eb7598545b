"""Kafka's own Java Admin client (kafka-clients 4.1 from Maven Central, installed
by install.sh) against strom: describeTopics (DescribeTopicPartitions),
describeMetadataQuorum, electLeaders, partition reassignments, alterReplicaLogDirs,
broker and topic configs and listConfigResources, through `java/AdminCheck.java`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from compat import unique_topic

HERE = Path(__file__).resolve().parents[1]
JARS = HERE / "kafka" / "target" / "dependency"
JAVA = shutil.which("java")
pytestmark = pytest.mark.skipif(
    JAVA is None or not any(JARS.glob("kafka-clients-*.jar")),
    reason="java or the Kafka jars are missing (run install.sh)",
)
RUN_GUARD_S = 120


def test_the_java_admin_client_gets_single_node_answers(broker):
    topic = unique_topic("java-admin")
    run = subprocess.run(
        [JAVA, "-cp", f"{JARS}/*", str(HERE / "java" / "AdminCheck.java"), broker.bootstrap, topic,
         str(broker.data_dir.resolve())],
        capture_output=True,
        timeout=RUN_GUARD_S,
    )
    assert run.returncode == 0, run.stderr.decode()[-4000:]
    seen = dict(line.split("=", 1) for line in run.stdout.decode().splitlines() if "=" in line)
    assert seen == {
        "describe.partitions": "3",
        "describe.isr": "1",
        "describe.leader_is_node": "true",
        "quorum.leader_is_node": "true",
        "quorum.voters": "1",
        "quorum.observers": "0",
        "elect": "ElectionNotNeededException",
        "reassign.to_node": "ok",
        "reassign.to_other": "InvalidReplicaAssignmentException",
        "reassign.listed": "0",
        "logdirs.data_dir": "ok",
        "logdirs.other": "LogDirNotFoundException",
        "broker.listeners": f"PLAINTEXT://{broker.bootstrap}",
        "broker.advertised.listeners": f"PLAINTEXT://{broker.bootstrap}",
        "broker.num.partitions": "1",
        "topic.compression.type": "lz4",
        "topic.min.insync.replicas": "1",
        "topic.message.format.version": "null",
        "config_resources.has_topic": "true",
    }
