"""The schema registry with TLS and HTTP Basic auth against the broker's SCRAM users.

One broker (its own module fixture, `--config`): `[tls]` with a certificate made
here with the `openssl` CLI, bootstrap users admin (super user), alice and bob, the
authorizer on; `schema_registry_tls` and `schema_registry_basic_auth` on. Confluent's
Python `SchemaRegistryClient` and `AvroSerializer` talk HTTPS with Basic auth;
permissions come from the broker's topic ACLs (subject `T-value` is topic `T`).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from compat import GUARD_S, unique_topic, wait_until
from conftest import running_broker

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
SCHEMA = json.dumps(
    {"type": "record", "name": "Ride", "fields": [{"name": "id", "type": "string"}]}
)


def openssl(*args, cwd: Path):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d: Path):
    """ca.pem; server.pem/.key for 127.0.0.1 and localhost."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=strom registry test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    # Extensions make X.509 v3 certificates, which rustls (webpki) requires.
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=d)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def secured(request):
    certs = {}
    sasl_port = free_port()

    def config(workdir: Path) -> str:
        make_certificates(workdir)
        certs["ca"] = workdir / "ca.pem"
        users = "".join(f'[[users]]\nname = "{u}"\npassword = "{p}"\n\n' for u, p in USERS.items())
        return (
            "schema_registry_tls = true\n"
            "schema_registry_basic_auth = true\n\n"
            f'[tls]\ncert_file = "{workdir / "server.pem"}"\nkey_file = "{workdir / "server.key"}"\n\n'
            + users
            + f'[[listeners]]\nname = "SASL"\naddress = "127.0.0.1:{sasl_port}"\nsecurity_protocol = "SASL_PLAINTEXT"\n\n'
            + '[sasl]\nmechanisms = ["SCRAM-SHA-512"]\n\n'
            + '[authorizer]\nenabled = true\nsuper_users = ["User:admin"]\n'
        )

    with running_broker(request, config) as b:
        b.registry_https = f"https://127.0.0.1:{b.registry_port}"
        b.ca = str(certs["ca"])
        b.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
        yield b


def client(b, user: str | None, password: str | None = None) -> SchemaRegistryClient:
    conf = {"url": b.registry_https, "ssl.ca.location": b.ca}
    if user is not None:
        conf["basic.auth.user.info"] = f"{user}:{password if password is not None else USERS[user]}"
    return SchemaRegistryClient(conf)


def grant(b, user: str, topic: str, operation):
    # ACLs are created by the super user over the SASL listener.
    admin = AdminClient(
        {
            "bootstrap.servers": b.sasl_bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin",
            "sasl.password": USERS["admin"],
        }
    )
    binding = AclBinding(
        ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{user}", "*",
        operation, AclPermissionType.ALLOW,
    )
    futures = admin.create_acls([binding])
    for f in futures.values():
        f.result(timeout=GUARD_S)


def test_https_with_basic_auth_as_super_user(secured):
    topic = unique_topic("srsec")
    admin = client(secured, "admin")
    schema_id = admin.register_schema(f"{topic}-value", Schema(SCHEMA, "AVRO"))
    ser = AvroSerializer(client(secured, "admin"), SCHEMA, conf={"auto.register.schemas": False})
    ctx = SerializationContext(topic, MessageField.VALUE)
    framed = ser({"id": "a"}, ctx)
    assert int.from_bytes(framed[1:5], "big") == schema_id
    assert AvroDeserializer(client(secured, "admin"))(framed, ctx) == {"id": "a"}


def test_missing_or_wrong_credentials_are_401(secured):
    with pytest.raises(SchemaRegistryError) as e:
        client(secured, None).get_subjects()
    assert e.value.http_status_code == 401
    with pytest.raises(SchemaRegistryError) as e:
        client(secured, "alice", "wrong").get_subjects()
    assert e.value.http_status_code == 401
    with pytest.raises(SchemaRegistryError) as e:
        client(secured, "nobody", "x").get_subjects()
    assert e.value.http_status_code == 401


def test_plain_http_is_refused(secured):
    with pytest.raises(Exception):
        SchemaRegistryClient(
            {"url": f"http://127.0.0.1:{secured.registry_port}", "basic.auth.user.info": "admin:admin-secret"}
        ).get_subjects()


def test_topic_acls_decide_per_subject(secured):
    topic = unique_topic("srsec-acl")
    subject = f"{topic}-value"
    alice = client(secured, "alice")
    with pytest.raises(SchemaRegistryError) as e:
        alice.register_schema(subject, Schema(SCHEMA, "AVRO"))
    assert e.value.http_status_code == 403
    grant(secured, "alice", topic, AclOperation.WRITE)
    wait_until(lambda: _can_register(alice, subject), "alice's WRITE grant to apply")
    # bob may not read the subject until granted READ on the topic.
    bob = client(secured, "bob")
    with pytest.raises(SchemaRegistryError) as e:
        bob.get_latest_version(subject)
    assert e.value.http_status_code == 403
    grant(secured, "bob", topic, AclOperation.READ)
    latest = bob.get_latest_version(subject)
    assert latest.version == 1
    # Reading a schema by id needs only a login (deserializers do it).
    assert bob.get_schema(latest.schema_id).schema_str == SCHEMA
    # Changing the global config needs ALTER on the cluster.
    with pytest.raises(SchemaRegistryError) as e:
        bob.set_compatibility(level="NONE")
    assert e.value.http_status_code == 403


def _can_register(c: SchemaRegistryClient, subject: str) -> bool:
    try:
        c.register_schema(subject, Schema(SCHEMA, "AVRO"))
        return True
    except SchemaRegistryError as e:
        if e.http_status_code == 403:
            return False
        raise
