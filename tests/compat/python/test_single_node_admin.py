"""Kafka 4's admin surface as third-party admin clients call it, answered for one
node: DescribeTopicPartitions, DescribeQuorum, ElectLeaders, partition
reassignments, AlterReplicaLogDirs and ListConfigResources (kafka-python 3,
which has them all; confluent-kafka for ElectLeaders; KafkaJS for reassignments); every Kafka 4 topic
config accepted and described, Kafka 3's removed ones accepted as no-ops; broker
configs under Kafka's names."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as CfTopicPartition
from confluent_kafka.admin import ConfigResource as CfConfigResource
from confluent_kafka import ElectionType
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import InvalidReplicationAssignmentError, LogDirNotFoundError, NoError

from compat import (
    GUARD_S,
    cf_admin,
    cf_create_topic,
    cf_produce_all,
    cf_producer,
    now_ms,
    unique_topic,
)

# Every topic config Kafka 4 accepts, with a valid non-default value.
KAFKA4_TOPIC_CONFIGS = {
    "cleanup.policy": "compact,delete",
    "compression.gzip.level": "5",
    "compression.lz4.level": "10",
    "compression.type": "zstd",
    "compression.zstd.level": "7",
    "delete.retention.ms": "1000",
    "file.delete.delay.ms": "1000",
    "flush.messages": "1",
    "flush.ms": "1000",
    "follower.replication.throttled.replicas": "0:1",
    "index.interval.bytes": "8192",
    "leader.replication.throttled.replicas": "*",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "600000",
    "max.message.bytes": "2000000",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "3600000",
    "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.3",
    "min.compaction.lag.ms": "10",
    "min.insync.replicas": "1",
    "preallocate": "true",
    "remote.log.copy.disable": "false",
    "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "100000000",
    "retention.ms": "86400000",
    "segment.bytes": "10000000",
    "segment.index.bytes": "1000000",
    "segment.jitter.ms": "5",
    "segment.ms": "3600000",
    "unclean.leader.election.enable": "true",
}


@pytest.fixture(scope="module")
def cf(broker):
    """One confluent-kafka admin client for the module (a client dropped while its
    futures are pending fails them with _DESTROY)."""
    return cf_admin(broker.bootstrap)


@pytest.fixture(scope="module")
def node(cf):
    return cf.describe_cluster().result(timeout=GUARD_S).nodes[0].id


@pytest.fixture(scope="module")
def kp_admin(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=int(GUARD_S * 1000))
    yield admin
    admin.close()


def topic_configs(cf, topic: str) -> dict:
    resource = CfConfigResource(CfConfigResource.Type.TOPIC, topic)
    entries = cf.describe_configs([resource])[resource].result(timeout=GUARD_S)
    return {name: entry.value for name, entry in entries.items()}


def test_every_kafka4_topic_config_is_accepted_and_described(broker, cf):
    topic = unique_topic("k4-configs")
    cf_create_topic(broker.bootstrap, topic, 1, KAFKA4_TOPIC_CONFIGS)
    described = topic_configs(cf, topic)
    for name, value in KAFKA4_TOPIC_CONFIGS.items():
        assert described.get(name) == value, name


def test_kafka3_configs_are_accepted_as_no_ops(broker, cf):
    topic = unique_topic("k3-configs")
    cf_create_topic(
        broker.bootstrap,
        topic,
        1,
        {"message.format.version": "2.8-IV1", "message.downconversion.enable": "true", "retention.ms": "5000"},
    )
    described = topic_configs(cf, topic)
    assert described["retention.ms"] == "5000"
    assert "message.format.version" not in described


def test_invalid_topic_configs_are_refused_with_invalid_config(broker):
    for config in ({"remote.storage.enable": "true"}, {"compression.type": "brotli"}, {"min.insync.replicas": "0"}):
        with pytest.raises(KafkaException) as failure:
            cf_create_topic(broker.bootstrap, unique_topic("bad-config"), 1, config)
        assert failure.value.args[0].name() == "INVALID_CONFIG", config


def test_broker_configs_carry_kafkas_names(broker, cf, node):
    resource = CfConfigResource(CfConfigResource.Type.BROKER, str(node))
    entries = cf.describe_configs([resource])[resource].result(timeout=GUARD_S)
    values = {name: entry.value for name, entry in entries.items()}
    assert values["listeners"] == f"PLAINTEXT://{broker.bootstrap}"
    assert values["advertised.listeners"] == f"PLAINTEXT://{broker.bootstrap}"
    assert values["log.dirs"].endswith("data")
    for name, value in {
        "num.partitions": "1",
        "group.min.session.timeout.ms": "6000",
        "group.max.session.timeout.ms": "1800000",
        "compression.type": "producer",
        "max.connections": "10000",
        "queued.max.request.bytes": "536870912",
        "transactional.id.expiration.ms": "604800000",
        "producer.id.expiration.ms": "86400000",
    }.items():
        assert values[name] == value, name


def test_describe_topic_partitions_pages_with_a_cursor(broker, kp_admin):
    topic = unique_topic("dtp")
    cf_create_topic(broker.bootstrap, topic, 3)
    whole = kp_admin.describe_topic_partitions([topic])
    [described] = whole["topics"]
    assert described["name"] == topic and described["error_code"] == 0
    assert [p["partition_index"] for p in described["partitions"]] == [0, 1, 2]
    assert whole["next_cursor"] is None
    first = kp_admin.describe_topic_partitions([topic], response_partition_limit=2)
    assert [p["partition_index"] for p in first["topics"][0]["partitions"]] == [0, 1]
    cursor = first["next_cursor"]
    assert (cursor["topic_name"], cursor["partition_index"]) == (topic, 2)
    rest = kp_admin.describe_topic_partitions([topic], response_partition_limit=2, cursor=cursor)
    assert [p["partition_index"] for p in rest["topics"][0]["partitions"]] == [2]


def test_describe_metadata_quorum_names_this_node_as_the_only_voter(broker, kp_admin):
    quorum = kp_admin.describe_metadata_quorum()
    [topic] = quorum["topics"]
    assert topic["topic_name"] == "__cluster_metadata"
    [partition] = topic["partitions"]
    voters = [v["replica_id"] for v in partition["current_voters"]]
    assert voters == [partition["leader_id"]]
    assert partition["observers"] == []
    assert partition["high_watermark"] > 0


def test_elect_leaders_needs_no_election(broker, cf, kp_admin):
    topic = unique_topic("elect")
    cf_create_topic(broker.bootstrap, topic, 2)
    response = kp_admin.elect_leaders(0, {topic: [0, 1]}, raise_errors=False)
    codes = sorted(
        (p.partition_id, p.error_code)
        for t in response.replica_election_results
        for p in t.partition_result
    )
    assert codes == [(0, 84), (1, 84)]  # ELECTION_NOT_NEEDED
    futures = cf.elect_leaders(
        ElectionType.PREFERRED, [CfTopicPartition(topic, 0)]
    )
    results = futures.result(timeout=GUARD_S)
    [(partition, error)] = results.items()
    assert (partition.topic, partition.partition) == (topic, 0)
    assert error is not None and error.name() == "ELECTION_NOT_NEEDED"


def test_partition_reassignments_to_this_node_succeed_and_none_is_ever_listed(broker, node, kp_admin):
    topic = unique_topic("reassign")
    cf_create_topic(broker.bootstrap, topic, 2)
    result = kp_admin.alter_partition_reassignments(
        {TopicPartition(topic, 0): [node], TopicPartition(topic, 1): [node, node + 1]}
    )
    assert result == {
        TopicPartition(topic, 0): None,
        TopicPartition(topic, 1): InvalidReplicationAssignmentError,
    }
    assert kp_admin.list_partition_reassignments() == {}


def test_alter_replica_log_dirs_into_the_data_dir_is_already_done(broker, node, kp_admin):
    topic = unique_topic("logdirs")
    cf_create_topic(broker.bootstrap, topic, 1)
    data_dir = str(broker.data_dir.resolve())
    result = kp_admin.alter_replica_log_dirs({(topic, 0, node): data_dir})
    assert list(result.values()) == [NoError]
    moved = kp_admin.alter_replica_log_dirs({(topic, 0, node): "/no/such/dir"})
    assert list(moved.values()) == [LogDirNotFoundError]


def test_list_config_resources_lists_topics_and_this_broker(broker, node, kp_admin):
    topic = unique_topic("list-config")
    cf_create_topic(broker.bootstrap, topic, 1)
    listed = kp_admin.list_config_resources(["TOPIC", "BROKER"])
    assert topic in listed["topic"]
    assert listed["broker"] == [str(node)]
    configs = kp_admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    assert configs  # the resources it lists can be described


NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")


@pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir(),
    reason="node or KafkaJS not installed (run install.sh)",
)
def test_kafkajs_partition_reassignments(broker):
    run = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", "single_node_admin.test.js"],
        cwd=NODE_DIR,
        env=dict(os.environ, STROM_BOOTSTRAP=broker.bootstrap),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_record_beyond_message_timestamp_after_max_ms_gets_invalid_timestamp(broker):
    topic = unique_topic("ts-bounds")
    cf_create_topic(broker.bootstrap, topic, 1, {"message.timestamp.after.max.ms": "3600000"})
    producer = cf_producer(broker.bootstrap)
    in_two_hours = now_ms() + 2 * 3600 * 1000
    [(refused, _)] = cf_produce_all(producer, [{"value": b"late", "partition": 0, "timestamp": in_two_hours}], topic)
    assert refused is not None and refused.name() == "INVALID_TIMESTAMP", refused
    [(accepted, msg)] = cf_produce_all(producer, [{"value": b"now", "partition": 0, "timestamp": now_ms()}], topic)
    assert accepted is None and msg.offset() == 0
