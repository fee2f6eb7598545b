"""Pipelines reading Avro and Protobuf values through strom's schema registry.

confluent-kafka's `AvroSerializer` and `ProtobufSerializer` (Python, nobody here wrote
them) write views in Confluent's wire format; `strom pipeline run` with `format: avro` /
`format: protobuf` reads each with its writer's schema as JSON, counts views per title
and writes the output contract to Kafka. A record that is not in the format goes to the
pipeline's dead-letter topic with the reason.
"""

from __future__ import annotations

import json
import subprocess
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from compat import (
    cf_consume_all,
    cf_create_topic,
    cf_produce_all,
    cf_producer,
    cf_topic_names,
    headers_of,
    unique_topic,
    wait_until,
)
from conftest import strom_bin

VIEW_AVRO = json.dumps(
    {
        "type": "record",
        "name": "View",
        "fields": [
            {"name": "content_id", "type": "string"},
            {"name": "watch_duration", "type": "long"},
            {"name": "device", "type": ["null", {"type": "enum", "name": "Device", "symbols": ["TV", "PHONE"]}]},
        ],
    }
)


def view_message_class():
    """A generated-like Protobuf class built at run time: <package>.View."""
    package = f"stromview{uuid.uuid4().hex[:8]}"
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax="proto3")
    msg = fdp.message_type.add(name="View")
    F = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="content_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="watch_duration", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.View"))


def run_count_pipeline(broker, tmp_path, fmt: str, topic: str, out: str, name: str):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        f"""
pipeline:
  name: {name}
  format: {fmt}
  schema_registry: {broker.registry_url}
  input_topics: [{topic}]
  processors:
    - name: per-title
      operations: [count_by_content_id, sum_watch_duration]
  output_sinks:
    - type: kafka
      topic: {out}
"""
    )
    return subprocess.Popen(
        [
            str(strom_bin()),
            "pipeline",
            "run",
            str(spec),
            "--bootstrap-servers",
            broker.bootstrap,
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def latest_per_key(broker, topic: str, want: int):
    wait_until(lambda: topic in cf_topic_names(broker.bootstrap), f"the pipeline creates {topic}")
    msgs = cf_consume_all(broker.bootstrap, topic, [0], expect=want, **{"isolation.level": "read_committed"})
    latest = {}
    for m in msgs:
        latest[m.key().decode()] = json.loads(m.value())
    return latest


def check(broker, tmp_path, fmt: str, serialize):
    topic, out, name = unique_topic(f"views-{fmt}"), unique_topic("counts"), unique_topic(f"p-{fmt}")
    cf_create_topic(broker.bootstrap, topic)
    views = [("c1", 10), ("c2", 5), ("c1", 20), ("c1", 1), ("c2", 7)]
    producer = cf_producer(broker.bootstrap)
    ctx = SerializationContext(topic, MessageField.VALUE)
    records = [{"key": cid.encode(), "value": serialize(cid, secs, ctx)} for cid, secs in views]
    records.append({"key": b"bad", "value": b"not " + fmt.encode()})
    cf_produce_all(producer, records, topic)
    proc = run_count_pipeline(broker, tmp_path, fmt, topic, out, name)
    try:
        # Non-windowed aggregates emit on every update: 5 results, the last per title.
        latest = latest_per_key(broker, out, 5)
        assert latest["c1"] == {"content_id": "c1", "count_by_content_id": 3, "sum_watch_duration": 31.0}, latest
        assert latest["c2"] == {"content_id": "c2", "count_by_content_id": 2, "sum_watch_duration": 12.0}, latest
        dead = cf_consume_all(broker.bootstrap, f"{name}-dlq", [0], expect=1)
        assert dead[0].key() == b"bad"
        reason = dict(headers_of(dead[0]))["strom.error"].decode()
        assert reason, "the dead letter names why it could not be read"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


def test_avro_values_run_through_a_pipeline(broker, tmp_path):
    ser = AvroSerializer(SchemaRegistryClient({"url": broker.registry_url}), VIEW_AVRO)
    check(
        broker,
        tmp_path,
        "avro",
        lambda cid, secs, ctx: ser({"content_id": cid, "watch_duration": secs, "device": "TV"}, ctx),
    )


def test_protobuf_values_run_through_a_pipeline(broker, tmp_path):
    View = view_message_class()
    ser = ProtobufSerializer(
        View, SchemaRegistryClient({"url": broker.registry_url}), conf={"use.deprecated.format": False}
    )
    check(broker, tmp_path, "protobuf", lambda cid, secs, ctx: ser(View(content_id=cid, watch_duration=secs), ctx))
