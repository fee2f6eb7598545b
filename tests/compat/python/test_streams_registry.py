"""strom-streams' schema-registry serdes against confluent-kafka's, through strom.

confluent-kafka's `AvroSerializer` (Python, nobody here wrote it) writes rides with
an old schema; a strom-streams application (crates/streams/examples/registry_rides.rs,
the real runtime over strom's Kafka port, its `AvroSerde` over strom's registry port)
reads them with a newer reader schema (a field added with a default), prices them and
writes Avro registered under the output's value subject; confluent-kafka's
`AvroDeserializer` reads that back. A record that is not Avro goes to the
application's dead-letter topic with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from compat import (
    GUARD_S,
    cf_consume_all,
    cf_create_topic,
    cf_produce_all,
    cf_producer,
    headers_of,
    unique_topic,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = "registry_rides"

# What the Python producer knows: no `city` yet.
RIDE_V1 = json.dumps(
    {
        "type": "record",
        "name": "Ride",
        "namespace": "strom.examples",
        "fields": [{"name": "id", "type": "string"}, {"name": "km", "type": "double"}],
    }
)


def example_bin() -> Path:
    """The example, built once with the `registry` feature (cargo is a no-op when it
    is up to date)."""
    env = os.environ.get("STROM_STREAMS_REGISTRY_EXAMPLE")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    r = subprocess.run(
        ["cargo", "build", "--locked", "-p", "strom-streams", "--features", "registry", "--example", EXAMPLE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=GUARD_S * 40,
    )
    assert r.returncode == 0, f"building the example failed:\n{r.stderr}"
    return target / "debug" / "examples" / EXAMPLE


def test_confluent_avro_into_strom_streams_and_back(broker, tmp_path):
    source, sink = unique_topic("rides"), unique_topic("priced")
    for topic in (source, sink, f"{source}-dlq"):
        cf_create_topic(broker.bootstrap, topic)
    client = SchemaRegistryClient({"url": broker.registry_url})
    serialize = AvroSerializer(client, RIDE_V1)
    ctx = SerializationContext(source, MessageField.VALUE)
    rides = [{"id": "r1", "km": 2.5}, {"id": "r2", "km": 10.0}]
    records = [{"key": r["id"].encode(), "value": serialize(r, ctx)} for r in rides]
    records.append({"key": b"junk", "value": b"not avro"})
    reports = cf_produce_all(cf_producer(broker.bootstrap), records, source)
    assert all(err is None for err, _ in reports)

    log = open(tmp_path / "app.log", "wb")
    app = subprocess.Popen(
        [str(example_bin()), broker.bootstrap, broker.registry_url, source, sink],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=log,
    )
    try:
        priced = cf_consume_all(broker.bootstrap, sink, [0], expect=len(rides))
        dead = cf_consume_all(broker.bootstrap, f"{source}-dlq", [0], expect=1)
    finally:
        app.stdin.close()  # the example closes cleanly when its input ends
        code = app.wait(timeout=GUARD_S)
        log.close()
    assert code == 0, (tmp_path / "app.log").read_text()

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": broker.registry_url}))
    out_ctx = SerializationContext(sink, MessageField.VALUE)
    values = [deserialize(m.value(), out_ctx) for m in priced]
    # `city` was read with its default (null): the reader schema evolved v1 records.
    assert values == [
        {"id": "r1", "city": "unknown", "fare_cents": 550},
        {"id": "r2", "city": "unknown", "fare_cents": 1450},
    ]
    assert [m.key() for m in priced] == [b"r1", b"r2"]
    # The application registered its output schema on first use; the payloads name it.
    latest = client.get_latest_version(f"{sink}-value")
    assert latest.version == 1
    assert json.loads(latest.schema.schema_str)["name"] == "PricedRide"
    assert {int.from_bytes(m.value()[1:5], "big") for m in priced} == {latest.schema_id}
    # The input's subject still has only the Python producer's schema.
    assert client.get_latest_version(f"{source}-value").version == 1

    assert [m.value() for m in dead] == [b"not avro"]
    headers = dict(headers_of(dead[0]))
    assert headers["strom.error.kind"] == b"deserialization"
    assert b"unknown magic byte" in headers["strom.error"]
    assert headers["strom.original.topic"] == source.encode()
