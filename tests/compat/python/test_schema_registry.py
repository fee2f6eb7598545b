"""confluent-kafka's schema registry client and serializers against strom.

Confluent's own `SchemaRegistryClient`, `AvroSerializer`/`AvroDeserializer`,
`JSONSerializer`/`JSONDeserializer` and `ProtobufSerializer`/`ProtobufDeserializer`
(PyPI `confluent-kafka[avro,json,protobuf]`) talk to strom's registry port; the
framed records go through strom's Kafka port and back.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import (
    ProtobufDeserializer,
    ProtobufSerializer,
)
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    SerializationError,
)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import timestamp_pb2  # noqa: F401  (puts Timestamp in the default pool)

from compat import cf_consume_all, cf_produce_all, cf_producer, unique_topic


def registry(broker) -> SchemaRegistryClient:
    # A fresh client per test: no cached ids from earlier tests.
    return SchemaRegistryClient({"url": broker.registry_url})


def avro_record(name: str, fields: list[dict]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "strom.test", "fields": fields})


RIDE_V1 = avro_record("Ride", [{"name": "id", "type": "string"}, {"name": "km", "type": "int"}])
# Adds a field with a default: backward and forward compatible.
RIDE_V2 = avro_record(
    "Ride",
    [
        {"name": "id", "type": "string"},
        {"name": "km", "type": "int"},
        {"name": "city", "type": "string", "default": "unknown"},
    ],
)
# Adds a field without a default: forward compatible only.
RIDE_V2_NO_DEFAULT = avro_record(
    "Ride",
    [{"name": "id", "type": "string"}, {"name": "km", "type": "int"}, {"name": "city", "type": "string"}],
)
# Changes a field's type: incompatible both ways.
RIDE_BROKEN = avro_record("Ride", [{"name": "id", "type": "string"}, {"name": "km", "type": "boolean"}])


def round_trip(broker, topic: str, serializer, deserializer, values: list):
    """Serializes `values` for `topic`, produces them through strom, consumes them back
    and deserializes them."""
    ctx = SerializationContext(topic, MessageField.VALUE)
    framed = [serializer(v, ctx) for v in values]
    for f in framed:
        assert f[0] == 0, "Confluent framing starts with magic byte 0"
    producer = cf_producer(broker.bootstrap)
    cf_produce_all(producer, [{"value": f} for f in framed], topic)
    msgs = cf_consume_all(broker.bootstrap, topic, [0], expect=len(values))
    assert [m.value() for m in msgs] == framed
    return [deserializer(m.value(), ctx) for m in msgs]


def schema_id_of(framed: bytes) -> int:
    return int.from_bytes(framed[1:5], "big")


def http(broker, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        broker.registry_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.loads(e.read() or b"null")


# ---- Avro ----------------------------------------------------------------------


def test_avro_round_trip_through_strom_registers_once(broker):
    client = registry(broker)
    topic = unique_topic("sr-avro")
    ser = AvroSerializer(client, RIDE_V1)
    de = AvroDeserializer(client)
    values = [{"id": f"r{i}", "km": i} for i in range(5)]
    assert round_trip(broker, topic, ser, de, values) == values
    assert client.get_subjects().count(f"{topic}-value") == 1
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.version == 1
    # The same schema under another subject gets the same global id.
    other = registry(broker).register_schema(f"{topic}-other", Schema(RIDE_V1, "AVRO"))
    assert other == latest.schema_id
    # Registering it again returns the same id and version.
    again = registry(broker).register_schema_full_response(f"{topic}-value", Schema(RIDE_V1, "AVRO"))
    assert again.schema_id == latest.schema_id


def test_avro_auto_register_off_needs_a_registered_schema(broker):
    topic = unique_topic("sr-noauto")
    ctx = SerializationContext(topic, MessageField.VALUE)
    ser = AvroSerializer(registry(broker), RIDE_V1, conf={"auto.register.schemas": False})
    with pytest.raises(SchemaRegistryError) as e:
        ser({"id": "a", "km": 1}, ctx)
    assert e.value.error_code == 40401
    schema_id = registry(broker).register_schema(f"{topic}-value", Schema(RIDE_V1, "AVRO"))
    ser = AvroSerializer(registry(broker), RIDE_V1, conf={"auto.register.schemas": False})
    framed = ser({"id": "a", "km": 1}, ctx)
    assert schema_id_of(framed) == schema_id


def test_avro_use_latest_version(broker):
    topic = unique_topic("sr-latest")
    subject = f"{topic}-value"
    client = registry(broker)
    client.register_schema(subject, Schema(RIDE_V1, "AVRO"))
    v2 = client.register_schema(subject, Schema(RIDE_V2, "AVRO"))
    # A producer still on v1 writes with the latest registered version (v2).
    ser = AvroSerializer(
        registry(broker), RIDE_V1, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    de = AvroDeserializer(registry(broker))
    out = round_trip(broker, topic, ser, de, [{"id": "x", "km": 3, "city": "Oslo"}])
    assert out == [{"id": "x", "km": 3, "city": "Oslo"}]
    framed = ser({"id": "y", "km": 4, "city": "Bergen"}, SerializationContext(topic, MessageField.VALUE))
    assert schema_id_of(framed) == v2
    # A reader on v1 evolves v2 data to v1's shape.
    old_reader = AvroDeserializer(registry(broker), RIDE_V1)
    assert old_reader(framed, SerializationContext(topic, MessageField.VALUE)) == {"id": "y", "km": 4}


@pytest.mark.parametrize(
    "level, new, accepted",
    [
        ("BACKWARD", RIDE_V2, True),
        ("BACKWARD", RIDE_V2_NO_DEFAULT, False),
        ("FORWARD", RIDE_V2_NO_DEFAULT, True),
        ("FORWARD", RIDE_BROKEN, False),
        ("FULL", RIDE_V2, True),
        ("FULL", RIDE_V2_NO_DEFAULT, False),
        ("NONE", RIDE_BROKEN, True),
        ("BACKWARD_TRANSITIVE", RIDE_V2, True),
        ("FORWARD_TRANSITIVE", RIDE_BROKEN, False),
        ("FULL_TRANSITIVE", RIDE_V2_NO_DEFAULT, False),
    ],
)
def test_compatibility_levels_answer_409(broker, level, new, accepted):
    subject = unique_topic("sr-compat") + "-value"
    client = registry(broker)
    client.register_schema(subject, Schema(RIDE_V1, "AVRO"))
    client.set_compatibility(subject, level)
    assert client.get_compatibility(subject) == level
    assert client.test_compatibility(subject, Schema(new, "AVRO")) is accepted
    if accepted:
        client.register_schema(subject, Schema(new, "AVRO"))
        assert client.get_versions(subject) == [1, 2]
    else:
        with pytest.raises(SchemaRegistryError) as e:
            client.register_schema(subject, Schema(new, "AVRO"))
        assert e.value.http_status_code == 409
        assert e.value.error_code == 409
        assert client.get_versions(subject) == [1]


def test_transitive_checks_every_version(broker):
    subject = unique_topic("sr-transitive") + "-value"
    client = registry(broker)
    client.set_compatibility(subject, "NONE")
    client.register_schema(subject, Schema(RIDE_V1, "AVRO"))
    client.register_schema(subject, Schema(RIDE_BROKEN, "AVRO"))
    back_to_v1_shape = avro_record(
        "Ride", [{"name": "id", "type": "string"}, {"name": "km", "type": "int"}, {"name": "n", "type": "int", "default": 0}]
    )
    client.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    # Incompatible with version 2 (km boolean → int) even though fine against version 1.
    assert client.test_compatibility(subject, Schema(back_to_v1_shape, "AVRO")) is False
    client.set_compatibility(subject, "BACKWARD")
    assert client.test_compatibility(subject, Schema(back_to_v1_shape, "AVRO"), version=1) is True


def test_soft_delete_then_deserialize_by_id(broker):
    topic = unique_topic("sr-softdel")
    subject = f"{topic}-value"
    # A schema no other test registers, so that its id is used by this subject alone.
    own = avro_record(f"Ride{uuid.uuid4().hex}", [{"name": "id", "type": "string"}, {"name": "km", "type": "int"}])
    ser = AvroSerializer(registry(broker), own)
    framed = ser({"id": "a", "km": 7}, SerializationContext(topic, MessageField.VALUE))
    client = registry(broker)
    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    with pytest.raises(SchemaRegistryError) as e:
        client.get_latest_version(subject)
    assert e.value.error_code == 40401
    # Still readable by id: old records still deserialize.
    de = AvroDeserializer(registry(broker))
    assert de(framed, SerializationContext(topic, MessageField.VALUE)) == {"id": "a", "km": 7}
    # A permanent delete removes it; the id is not reused afterwards.
    assert client.delete_subject(subject, permanent=True) == [1]
    with pytest.raises(SchemaRegistryError) as e:
        registry(broker).get_schema(schema_id_of(framed))
    assert e.value.error_code == 40403
    unseen = avro_record(f"Unseen{uuid.uuid4().hex}", [{"name": "x", "type": "int"}])
    new_id = client.register_schema(subject, Schema(unseen, "AVRO"))
    assert new_id > schema_id_of(framed)


def test_references_and_referencedby(broker):
    base = unique_topic("sr-ref")
    client = registry(broker)
    address = avro_record("Address", [{"name": "street", "type": "string"}])
    address_id = client.register_schema(f"{base}-address", Schema(address, "AVRO"))
    person = avro_record("Person", [{"name": "home", "type": "strom.test.Address"}])
    refs = [SchemaReference("strom.test.Address", f"{base}-address", 1)]
    person_id = client.register_schema(f"{base}-person", Schema(person, "AVRO", refs))
    assert client.get_referenced_by(f"{base}-address", 1) == [person_id]
    fetched = client.get_schema(person_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [
        ("strom.test.Address", f"{base}-address", 1)
    ]
    # A referenced schema cannot be deleted.
    with pytest.raises(SchemaRegistryError) as e:
        client.delete_version(f"{base}-address", 1)
    assert e.value.error_code == 42206
    # Without the reference the schema does not parse.
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(f"{base}-orphan", Schema(person, "AVRO"))
    assert e.value.error_code == 42201
    assert address_id != person_id


def test_normalize_gives_one_id_for_reformatted_schemas(broker):
    subject = unique_topic("sr-norm") + "-value"
    client = registry(broker)
    compact = RIDE_V1
    spaced = json.dumps(json.loads(RIDE_V1), indent=4)
    a = client.register_schema(subject, Schema(compact, "AVRO"), normalize_schemas=True)
    b = client.register_schema(subject, Schema(spaced, "AVRO"), normalize_schemas=True)
    assert a == b
    assert client.get_versions(subject) == [1]


def test_config_and_mode_endpoints(broker):
    client = registry(broker)
    subject = unique_topic("sr-config") + "-value"
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(level="FULL")
    try:
        assert client.get_compatibility() == "FULL"
    finally:
        client.set_compatibility(level="BACKWARD")
    client.register_schema(subject, Schema(RIDE_V1, "AVRO"))
    assert client.update_mode(subject, "READONLY") == "READONLY"
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(subject, Schema(RIDE_V2, "AVRO"))
    assert e.value.error_code == 42205
    assert client.delete_mode(subject) == "READONLY"
    assert client.get_global_mode() == "READWRITE"
    assert client.get_schema_types() == ["JSON", "PROTOBUF", "AVRO"] or sorted(client.get_schema_types()) == [
        "AVRO",
        "JSON",
        "PROTOBUF",
    ]


def test_rest_details_clients_rely_on(broker):
    # Newer clients ask for associations first and take a 404 as "none".
    status, _, body = http(broker, "GET", "/associations/resources/x")
    assert status == 404
    status, ctype, body = http(broker, "GET", "/subjects/no-such-subject/versions")
    assert (status, body["error_code"]) == (404, 40401)
    assert ctype == "application/vnd.schemaregistry.v1+json"
    status, _, body = http(broker, "GET", "/subjects/x/versions/zero")
    assert (status, body["error_code"]) == (422, 42202)
    status, _, body = http(broker, "POST", "/subjects/x/versions", {"schema": "{not json"})
    assert (status, body["error_code"]) == (422, 42201)
    # Percent-encoded subject names.
    subject = unique_topic("sr with/slash")
    client = registry(broker)
    client.register_schema(subject, Schema(RIDE_V1, "AVRO"))
    assert subject in client.get_subjects()
    assert client.get_latest_version(subject).version == 1
    status, _, contexts = http(broker, "GET", "/contexts")
    assert status == 200 and "." in contexts


# ---- JSON Schema ---------------------------------------------------------------

RIDE_JSON = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Ride",
        "type": "object",
        "properties": {"id": {"type": "string"}, "km": {"type": "integer"}},
        "required": ["id"],
        "additionalProperties": False,
    }
)


def test_json_schema_round_trip_and_validation(broker):
    topic = unique_topic("sr-json")
    ser = JSONSerializer(RIDE_JSON, registry(broker))
    de = JSONDeserializer(RIDE_JSON, schema_registry_client=registry(broker))
    values = [{"id": "a", "km": 1}, {"id": "b"}]
    assert round_trip(broker, topic, ser, de, values) == values
    with pytest.raises(SerializationError):
        ser({"km": "not a number"}, SerializationContext(topic, MessageField.VALUE))
    client = registry(broker)
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "JSON"
    # Making a property required breaks backward compatibility.
    stricter = json.loads(RIDE_JSON)
    stricter["required"] = ["id", "km"]
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(f"{topic}-value", Schema(json.dumps(stricter), "JSON"))
    assert e.value.error_code == 409


# ---- Protobuf ------------------------------------------------------------------


def proto_message_class(with_timestamp: bool = True):
    """A generated-like message class built at run time: stromtest.Ride, with a
    google.protobuf.Timestamp field (a well-known import the server must resolve)."""
    name = f"strom_test_{uuid.uuid4().hex}.proto"
    package = f"stromtest{uuid.uuid4().hex[:8]}"
    fdp = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    msg = fdp.message_type.add(name="Ride")
    F = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="km", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    if with_timestamp:
        fdp.dependency.append("google/protobuf/timestamp.proto")
        msg.field.add(
            name="at", number=3, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=F.LABEL_OPTIONAL
        )
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Ride"))


@pytest.mark.parametrize("skip_known_types", [True, False])
def test_protobuf_round_trip_with_well_known_import(broker, skip_known_types):
    Ride = proto_message_class()
    topic = unique_topic("sr-proto")
    ser = ProtobufSerializer(Ride, registry(broker), conf={"skip.known.types": skip_known_types})
    de = ProtobufDeserializer(Ride, schema_registry_client=registry(broker))
    values = [Ride(id="a", km=3), Ride(id="b", km=4)]
    values[1].at.FromSeconds(1_700_000_000)
    out = round_trip(broker, topic, ser, de, values)
    assert out == values
    client = registry(broker)
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF"
    refs = [r.name for r in latest.schema.references or []]
    if skip_known_types:
        assert refs == []
    else:
        assert refs == ["google/protobuf/timestamp.proto"]
        assert "google/protobuf/timestamp.proto" in client.get_subjects()


def test_protobuf_text_schema_and_serialized_format(broker):
    subject = unique_topic("sr-proto-text") + "-value"
    client = registry(broker)
    text = 'syntax = "proto3";\npackage acme;\nmessage Ride { string id = 1; int32 km = 2; }\n'
    schema_id = client.register_schema(subject, Schema(text, "PROTOBUF"))
    assert client.get_schema(schema_id).schema_str == text
    serialized = registry(broker).get_schema(schema_id, fmt="serialized").schema_str
    fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized))
    assert [m.name for m in fdp.message_type] == ["Ride"]
    # A field changing wire type is incompatible; a new field is not.
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(subject, Schema(text.replace("int32 km", "string km"), "PROTOBUF"))
    assert e.value.error_code == 409
    client.register_schema(subject, Schema(text.replace("int32 km = 2;", "int32 km = 2; bool paid = 3;"), "PROTOBUF"))
    assert client.get_versions(subject) == [1, 2]


# ---- durability ----------------------------------------------------------------


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_restart_keeps_every_id(broker, kill):
    topic = unique_topic("sr-restart")
    client = registry(broker)
    ids = {}
    ids["v1"] = client.register_schema(f"{topic}-value", Schema(RIDE_V1, "AVRO"))
    ids["v2"] = client.register_schema(f"{topic}-value", Schema(RIDE_V2, "AVRO"))
    ids["json"] = client.register_schema(f"{topic}-json", Schema(RIDE_JSON, "JSON"))
    client.set_compatibility(f"{topic}-value", "FULL")
    client.delete_version(f"{topic}-value", 1)
    framed = AvroSerializer(registry(broker), RIDE_V2, conf={"auto.register.schemas": False})(
        {"id": "a", "km": 1, "city": "c"}, SerializationContext(topic, MessageField.VALUE)
    )
    broker.restart(kill=kill)
    after = registry(broker)
    assert after.get_schema(ids["v1"]).schema_str == RIDE_V1, "soft-deleted, still readable by id"
    assert after.get_versions(f"{topic}-value") == [2]
    assert after.get_compatibility(f"{topic}-value") == "FULL"
    assert after.register_schema(f"{topic}-value", Schema(RIDE_V2, "AVRO")) == ids["v2"]
    assert after.register_schema(f"{topic}-json", Schema(RIDE_JSON, "JSON")) == ids["json"]
    de = AvroDeserializer(registry(broker))
    assert de(framed, SerializationContext(topic, MessageField.VALUE)) == {"id": "a", "km": 1, "city": "c"}
    unseen = avro_record(f"Unseen{uuid.uuid4().hex}", [{"name": "x", "type": "int"}])
    fresh = after.register_schema(f"{topic}-new", Schema(unseen, "AVRO"))
    assert fresh > max(ids.values()), "ids are never reused"


# ---- a second client: @kafkajs/confluent-schema-registry (npm) ------------------

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")
NODE_GUARD_S = 300


@pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "@kafkajs" / "confluent-schema-registry").is_dir(),
    reason="node or @kafkajs/confluent-schema-registry not installed (run install.sh)",
)
def test_npm_registry_client_round_trip(broker, tmp_path):
    topic = unique_topic("sr-npm")
    # Python frames a record first; the JS client must decode it.
    py_framed = AvroSerializer(registry(broker), RIDE_V1)(
        {"id": "py", "km": 42}, SerializationContext(f"{topic}-py", MessageField.VALUE)
    )
    # A Protobuf schema registered by Python as a base64 descriptor: the JS client reads
    # it back as .proto text.
    Ride = proto_message_class(with_timestamp=False)
    py_proto = ProtobufSerializer(Ride, registry(broker))(
        Ride(id="pyproto", km=5), SerializationContext(f"{topic}-pyproto", MessageField.VALUE)
    )
    out = tmp_path / "produced.json"
    env = dict(
        os.environ,
        STROM_BOOTSTRAP=broker.bootstrap,
        STROM_REGISTRY_URL=broker.registry_url,
        STROM_TOPIC=topic,
        STROM_PY_FRAMED=base64.b64encode(py_framed).decode(),
        STROM_PY_PROTO_FRAMED=base64.b64encode(py_proto).decode(),
        STROM_COMPAT_OUT=str(out),
    )
    r = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", "schema_registry.test.js"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_GUARD_S,
    )
    assert r.returncode == 0, f"node --test schema_registry.test.js failed:\n{r.stdout}{r.stderr}"
    produced = json.loads(out.read_text())
    # What the JS client framed and produced, Confluent's Python deserializer reads.
    msgs = cf_consume_all(broker.bootstrap, topic, [0], expect=len(produced["records"]))
    de = AvroDeserializer(registry(broker))
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert [de(m.value(), ctx) for m in msgs] == [rec["value"] for rec in produced["records"]]
