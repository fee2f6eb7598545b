"""Idempotent producers with their clients' defaults: kafka-python 3.x turns
idempotence on by default, librdkafka with `enable.idempotence=true`. Every record
arrives once, in order, and data written before a broker restart is not written
again by producers that keep going after it."""

from __future__ import annotations

from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from compat import GUARD_S, cf_create_topic, unique_topic

N = 200


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    values = [m.value for m in consumer]
    consumer.close()
    return values


def test_kafka_python_default_producer_is_idempotent_and_accepted(broker):
    topic = unique_topic("idem-kp")
    cf_create_topic(broker.bootstrap, topic, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)  # idempotence on by default
    for i in range(N):
        producer.send(topic, f"kp-{i}".encode(), partition=0)
    producer.flush(GUARD_S)
    producer.close()
    assert read_all(broker.bootstrap, topic) == [f"kp-{i}".encode() for i in range(N)]


def test_confluent_idempotent_producer_across_a_restart(broker):
    topic = unique_topic("idem-cf")
    cf_create_topic(broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(N):
        producer.produce(topic, f"cf-{i}".encode(), partition=0, on_delivery=report)
    assert producer.flush(GUARD_S) == 0
    broker.restart()
    for i in range(N, 2 * N):
        producer.produce(topic, f"cf-{i}".encode(), partition=0, on_delivery=report)
    assert producer.flush(GUARD_S) == 0
    assert not errors, errors[:3]
    assert read_all(broker.bootstrap, topic) == [f"cf-{i}".encode() for i in range(2 * N)]
