"""TLS, SASL and ACLs with real clients.

One broker (its own module fixture, `--config` with the security tables): a
SASL_SSL, a SASL_PLAINTEXT and an SSL listener besides the harness's PLAINTEXT
one; certificates made here with the `openssl` CLI (a CA, the server's for
127.0.0.1, a client certificate for kcat); bootstrap users admin (super user),
alice and carol; the authorizer on with no ACL to begin with.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from compat import GUARD_S, unique_topic, wait_until
from conftest import running_broker

OPENSSL = shutil.which("openssl")
KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")

USERS = {"admin": "admin-secret", "alice": "alice-secret", "carol": "carol-secret"}
KCAT_PRINCIPAL = "User:CN=kcat,O=strom"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args, cwd: Path):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d: Path):
    """ca.pem; server.pem/.key for 127.0.0.1 and localhost; kcat.pem/.key."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=strom test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    # Extensions make X.509 v3 certificates, which rustls (webpki) requires.
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "kcat.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for name, subject in [("server", "/CN=localhost"), ("kcat", "/O=strom/CN=kcat")]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
                "-extfile", f"{name}.ext", cwd=d)


class Secured:
    """The broker and the addresses of its secured listeners."""

    def __init__(self, broker, ports: dict, certs: Path):
        self.broker = broker
        self.ports = ports
        self.certs = certs

    def addr(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def sasl_ssl(self, user: str, mechanism: str = "SCRAM-SHA-512", password=None) -> dict:
        return {
            "bootstrap.servers": self.addr("sasl_ssl"),
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password if password is not None else USERS[user],
            "ssl.ca.location": str(self.certs / "ca.pem"),
        }


@pytest.fixture(scope="module")
def secured(request):
    ports = {name: free_port() for name in ("sasl_ssl", "sasl_plaintext", "ssl")}
    holder = {}

    def config(workdir: Path) -> str:
        certs = workdir / "certs"
        certs.mkdir()
        make_certificates(certs)
        holder["certs"] = certs
        users = "".join(
            f'[[users]]\nname = "{u}"\npassword = "{p}"\n\n' for u, p in USERS.items()
        )
        listeners = "".join(
            f'[[listeners]]\nname = "{name}"\naddress = "127.0.0.1:{port}"\n'
            f'security_protocol = "{name.upper()}"\n\n'
            for name, port in ports.items()
        )
        return f"""{listeners}
[tls]
cert_file = "{certs / 'server.pem'}"
key_file = "{certs / 'server.key'}"
client_ca_file = "{certs / 'ca.pem'}"
client_auth = "requested"

[sasl]
mechanisms = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

{users}
[authorizer]
enabled = true
super_users = ["User:admin", "{KCAT_PRINCIPAL}"]
allow_everyone_if_no_acl_found = false
"""

    with running_broker(request, config) as b:
        yield Secured(b, ports, holder["certs"])


def admin_client(secured: Secured, user: str = "admin", **conf) -> AdminClient:
    return AdminClient({**secured.sasl_ssl(user), **conf})


def create_topic(secured: Secured, prefix: str) -> str:
    topic = unique_topic(prefix)
    admin = admin_client(secured)  # kept alive until the result is in
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(GUARD_S)
    return topic


def produce(conf: dict, topic: str, values) -> list:
    """Produces `values`; returns each delivery's error (None = delivered)."""
    errors = []
    producer = Producer({**conf, "enable.idempotence": False, "message.timeout.ms": 10000})
    for v in values:
        producer.produce(topic, v, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(GUARD_S) == 0, "every delivery reported"
    return errors


def consume(conf: dict, topic: str, count: int, group=None, subscribe=False):
    """Reads `count` values from partition 0, assigned, or as a member of `group`
    when `subscribe` (librdkafka uses the group's coordinator either way)."""
    consumer = Consumer({**conf, "group.id": group or unique_topic("g"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    if subscribe:
        consumer.subscribe([topic])
    else:
        consumer.assign([TopicPartition(topic, 0, 0)])
    values, deadline = [], time.monotonic() + GUARD_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            values.append(msg.value())
    finally:
        consumer.close()
    return values


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_confluent_over_sasl_ssl_with_scram(secured, mechanism):
    topic = create_topic(secured, "scram")
    conf = secured.sasl_ssl("admin", mechanism)
    assert produce(conf, topic, [b"a", b"b"]) == [None, None]
    assert consume(conf, topic, 2) == [b"a", b"b"]


def test_kafka_python_over_sasl_plaintext_with_plain(secured):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    topic = create_topic(secured, "plain")
    conf = dict(
        bootstrap_servers=secured.addr("sasl_plaintext"),
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="admin",
        sasl_plain_password=USERS["admin"],
    )
    producer = KafkaProducer(enable_idempotence=False, **conf)
    producer.send(topic, b"plain").get(timeout=GUARD_S)
    producer.close()
    consumer = KafkaConsumer(consumer_timeout_ms=10000, **conf)
    consumer.assign([KTopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    assert [m.value for m in consumer][:1] == [b"plain"]
    consumer.close()


@pytest.mark.skipif(KCAT is None, reason="kcat not installed (run install.sh)")
def test_kcat_over_ssl_with_a_client_certificate(secured):
    certs = secured.certs
    ssl = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certs / 'ca.pem'}",
           "-X", f"ssl.certificate.location={certs / 'kcat.pem'}",
           "-X", f"ssl.key.location={certs / 'kcat.key'}"]
    topic = unique_topic("kcat-ssl")

    def kcat(*args, input=None):
        return subprocess.run([KCAT, "-b", secured.addr("ssl"), "-m", "15", *ssl, *args],
                              input=input, capture_output=True, timeout=60, check=True)

    # The certificate's subject is a super user: it may even auto-create the topic.
    kcat("-P", "-t", topic, input=b"one\ntwo\n")
    out = kcat("-C", "-t", topic, "-o", "beginning", "-e").stdout
    assert out.split() == [b"one", b"two"]


def test_a_wrong_password_fails(secured):
    admin = admin_client(secured, "alice", **{"sasl.password": "wrong"})
    with pytest.raises(KafkaException) as failure:
        admin.list_topics(timeout=10)
    # librdkafka reports the broker's SASL_AUTHENTICATION_FAILED as _AUTHENTICATION
    # or as "all brokers down" after it.
    assert failure.value.args[0].code() in (KafkaError._AUTHENTICATION, KafkaError._TRANSPORT,
                                            KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT)
    log = secured.broker.log_since(0)
    assert "SASL_AUTHENTICATION_FAILED" in log or "authentication failed" in log
    assert "wrong" not in log.replace("wrong framing", ""), "the password is never logged"


def test_acls_grant_produce_consume_groups_and_metadata(secured):
    topic = create_topic(secured, "acl")
    group = unique_topic("acl-group")
    carol = secured.sasl_ssl("carol")
    admin = admin_client(secured)

    # No ACLs: the topic is invisible, writes, reads and groups are refused.
    assert topic not in admin_client(secured, "carol").list_topics(timeout=GUARD_S).topics
    errors = produce(carol, topic, [b"x"])
    assert errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # librdkafka looks up the consumer's group coordinator even for assign(), so
    # either refusal may come first.
    refusals = (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    for subscribe in (False, True):
        with pytest.raises(KafkaException) as refused:
            consume(carol, topic, 1, group=group, subscribe=subscribe)
        assert refused.value.args[0].code() in refusals

    acls = [
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:carol", "*",
                   op, AclPermissionType.ALLOW)
        for op in (AclOperation.WRITE, AclOperation.READ)
    ] + [AclBinding(ResourceType.GROUP, "acl-group", ResourcePatternType.PREFIXED,
                    "User:carol", "*", AclOperation.READ, AclPermissionType.ALLOW)]
    for future in admin.create_acls(acls).values():
        future.result(GUARD_S)

    assert topic in admin_client(secured, "carol").list_topics(timeout=GUARD_S).topics
    assert produce(carol, topic, [b"y"]) == [None]
    assert consume(carol, topic, 1, group=group) == [b"y"]
    assert consume(carol, topic, 1, group=group, subscribe=True) == [b"y"]


def test_scram_credentials_from_the_admin_client_survive_a_restart(secured):
    topic = create_topic(secured, "dave")
    admin = admin_client(secured)
    upsert = UserScramCredentialUpsertion(
        "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"dave-secret")
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(GUARD_S)
    described = admin.describe_user_scram_credentials(["dave"])["dave"].result(GUARD_S)
    info = described.scram_credential_infos[0]
    assert (info.mechanism, info.iterations) == (ScramMechanism.SCRAM_SHA_256, 8192)
    for future in admin.create_acls([AclBinding(
            ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:dave", "*",
            AclOperation.WRITE, AclPermissionType.ALLOW)]).values():
        future.result(GUARD_S)

    secured.broker.restart()

    dave = {**secured.sasl_ssl("dave", "SCRAM-SHA-256", "dave-secret")}
    assert produce(dave, topic, [b"after restart"]) == [None]
    metadata = wait_until(
        lambda: admin_client(secured).list_topics(topic, timeout=GUARD_S), "metadata")
    assert topic in metadata.topics
