"""The new consumer group protocol (KIP-848, `group.protocol=consumer`) with
confluent-kafka (librdkafka): the broker assigns, members converge through
ConsumerGroupHeartbeat.

Consumers run in threads of this process; a barrier makes them read their
assignment at the same moment, so the check sees one consistent picture.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, TopicPartition

from compat import GUARD_S, cf_admin, cf_create_topic, cf_producer, unique_topic

PARTITIONS = 6
PER_PARTITION = 50


def kip848_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def produce(bootstrap: str, topic: str) -> set[bytes]:
    producer = cf_producer(bootstrap)
    values = set()
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            value = f"{p}-{i}".encode()
            values.add(value)
            producer.produce(topic, value, partition=p)
    assert producer.flush(GUARD_S) == 0
    return values


def test_three_members_split_the_partitions_and_consume_everything_once(broker):
    topic = unique_topic("kip848")
    group = unique_topic("kip848-group")
    cf_create_topic(broker.bootstrap, topic, PARTITIONS)
    expected = produce(broker.bootstrap, topic)

    seen: dict[bytes, int] = {}
    assignments: dict[str, list[tuple[str, int]]] = {}
    lock = threading.Lock()
    done = threading.Event()
    errors: list[str] = []

    def member(name: str):
        # Polls until told to stop: librdkafka applies assignment changes in poll().
        consumer = kip848_consumer(broker.bootstrap, group)
        consumer.subscribe([topic])
        try:
            while not done.is_set():
                msg = consumer.poll(0.2)
                if msg is not None and msg.error():
                    errors.append(f"{name}: {msg.error()}")
                elif msg is not None:
                    with lock:
                        seen[msg.value()] = seen.get(msg.value(), 0) + 1
                    consumer.commit(message=msg, asynchronous=False)
                with lock:
                    assignments[name] = [(tp.topic, tp.partition) for tp in consumer.assignment()]
        finally:
            consumer.close()

    def settled() -> bool:
        with lock:
            return len(seen) == len(expected) and len(assignments) == 3 and all(
                len(parts) == 2 for parts in assignments.values()
            )

    threads = [threading.Thread(target=member, args=(f"m{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 3 * GUARD_S
    while time.time() < deadline and not settled():
        time.sleep(0.2)
    with lock:
        snapshot = {name: list(parts) for name, parts in assignments.items()}
    done.set()
    for t in threads:
        t.join(GUARD_S)

    assert not errors, errors
    assert set(seen) == expected, f"missing {len(expected - set(seen))} records"
    owned = [tp for parts in snapshot.values() for tp in parts]
    assert sorted(p for _, p in owned) == list(range(PARTITIONS)), f"disjoint and complete: {snapshot}"
    assert all(len(parts) == 2 for parts in snapshot.values()), snapshot

    # Every record was committed: the group's offsets are at the end of each partition.
    admin = cf_admin(broker.bootstrap)
    from confluent_kafka import ConsumerGroupTopicPartitions

    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    committed = {tp.partition: tp.offset for tp in future.result(GUARD_S).topic_partitions}
    assert committed == {p: PER_PARTITION for p in range(PARTITIONS)}


def test_a_member_that_leaves_hands_its_partitions_to_the_rest(broker):
    topic = unique_topic("kip848-leave")
    group = unique_topic("kip848-leave-group")
    cf_create_topic(broker.bootstrap, topic, 4)
    first = kip848_consumer(broker.bootstrap, group)
    second = kip848_consumer(broker.bootstrap, group)
    first.subscribe([topic])
    second.subscribe([topic])

    def assigned(c: Consumer) -> set[int]:
        c.poll(0.2)
        return {tp.partition for tp in c.assignment()}

    deadline = time.time() + GUARD_S
    while time.time() < deadline:
        a, b = assigned(first), assigned(second)
        if len(a) == 2 and len(b) == 2:
            break
    assert len(a) == 2 and len(b) == 2 and not a & b, (a, b)

    second.close()  # leaves the group (member epoch -1)
    deadline = time.time() + GUARD_S
    while time.time() < deadline and assigned(first) != {0, 1, 2, 3}:
        pass
    assert assigned(first) == {0, 1, 2, 3}
    first.close()
