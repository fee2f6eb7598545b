"""Transactions with confluent-kafka (librdkafka, classic transaction protocol):
read_committed consumers see exactly the committed transactions, read_uncommitted
ones everything; a second producer with the same transactional.id fences the first;
a consume-transform-produce loop with send_offsets_to_transaction is exactly-once;
and SIGKILLs of the broker lose no acknowledged record and expose no partial
transaction."""

from __future__ import annotations

import collections
import threading

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from compat import GUARD_S, cf_admin, cf_consume_all, cf_create_topic, unique_topic

TXN_TIMEOUT_S = 30.0


def txn_producer(bootstrap: str, txn_id: str) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "transaction.timeout.ms": 60_000,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(TXN_TIMEOUT_S)
    return producer


def values(bootstrap: str, topic: str, partitions, isolation: str) -> list[str]:
    msgs = cf_consume_all(bootstrap, topic, partitions, isolation_level=isolation)
    return [m.value().decode() for m in msgs]


def test_committed_and_aborted_transactions_by_isolation_level(broker):
    topic = unique_topic("txn-iso")
    cf_create_topic(broker.bootstrap, topic, 2)
    producer = txn_producer(broker.bootstrap, unique_topic("tid-iso"))
    committed, everything = [], []
    for t in range(10):
        producer.begin_transaction()
        batch = [f"t{t}-r{r}" for r in range(4)]
        for r, value in enumerate(batch):
            producer.produce(topic, value.encode(), partition=r % 2)
        # Every record reaches the broker before the outcome is decided, so that the
        # aborted ones are really in the log.
        assert producer.flush(GUARD_S) == 0
        everything += batch
        if t % 2 == 0:
            producer.commit_transaction(TXN_TIMEOUT_S)
            committed += batch
        else:
            producer.abort_transaction(TXN_TIMEOUT_S)
    assert sorted(values(broker.bootstrap, topic, [0, 1], "read_committed")) == sorted(committed)
    assert sorted(values(broker.bootstrap, topic, [0, 1], "read_uncommitted")) == sorted(everything)


def test_a_second_producer_fences_the_first_and_its_open_transaction_never_shows(broker):
    topic = unique_topic("txn-fence")
    cf_create_topic(broker.bootstrap, topic, 1)
    txn_id = unique_topic("tid-fence")
    first = txn_producer(broker.bootstrap, txn_id)
    first.begin_transaction()
    first.produce(topic, b"zombie-1", partition=0)
    first.produce(topic, b"zombie-2", partition=0)
    assert first.flush(GUARD_S) == 0

    second = txn_producer(broker.bootstrap, txn_id)
    second.begin_transaction()
    second.produce(topic, b"live", partition=0)
    second.commit_transaction(TXN_TIMEOUT_S)

    try:
        first.commit_transaction(TXN_TIMEOUT_S)
        raise AssertionError("the fenced producer committed")
    except KafkaException as e:
        error = e.args[0]
        assert error.fatal() or error.code() in (
            KafkaError._FENCED,
            KafkaError.PRODUCER_FENCED,
            KafkaError.INVALID_PRODUCER_EPOCH,
        ), error
    assert values(broker.bootstrap, topic, [0], "read_committed") == ["live"]
    assert sorted(values(broker.bootstrap, topic, [0], "read_uncommitted")) == [
        "live",
        "zombie-1",
        "zombie-2",
    ]


def test_consume_transform_produce_is_exactly_once(broker):
    source, sink = unique_topic("ctp-in"), unique_topic("ctp-out")
    cf_create_topic(broker.bootstrap, source, 2)
    cf_create_topic(broker.bootstrap, sink, 2)
    n = 300
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(n):
        plain.produce(source, f"{i}".encode(), partition=i % 2)
    assert plain.flush(GUARD_S) == 0
    group = unique_topic("ctp-group")
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(source, p, OFFSET_BEGINNING) for p in (0, 1)])
    producer = txn_producer(broker.bootstrap, unique_topic("tid-ctp"))
    processed = 0
    rounds = 0
    while processed < n:
        rounds += 1
        assert rounds < 1000, "no progress"
        msgs = [m for m in consumer.consume(25, 1.0) if not m.error()]
        if not msgs:
            continue
        producer.begin_transaction()
        for m in msgs:
            producer.produce(sink, f"out-{m.value().decode()}".encode(), partition=m.partition())
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()),
            consumer.consumer_group_metadata(),
            TXN_TIMEOUT_S,
        )
        if rounds % 4 == 0:
            # A failed attempt: abort, and rewind the consumer to the committed offsets.
            assert producer.flush(GUARD_S) == 0
            producer.abort_transaction(TXN_TIMEOUT_S)
            committed = consumer.committed(consumer.assignment(), timeout=GUARD_S)
            for tp in committed:
                start = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                consumer.seek(TopicPartition(tp.topic, tp.partition, start))
            continue
        producer.commit_transaction(TXN_TIMEOUT_S)
        processed += len(msgs)
    committed = consumer.committed(consumer.assignment(), timeout=GUARD_S)
    consumer.close()
    out = values(broker.bootstrap, sink, [0, 1], "read_committed")
    assert sorted(out) == sorted(f"out-{i}" for i in range(n))
    assert {tp.partition: tp.offset for tp in committed} == {0: n // 2, 1: n // 2}
    admin = cf_admin(broker.bootstrap)
    from confluent_kafka import ConsumerGroupTopicPartitions

    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    offsets = {tp.partition: tp.offset for tp in listed[group].result().topic_partitions}
    assert offsets == {0: n // 2, 1: n // 2}


def kill_repeatedly(broker, times: int, pause: threading.Event) -> threading.Thread:
    """Kills the broker (SIGKILL) and restarts it `times` times, waiting for
    `pause` between kills so that the producer gets work acknowledged."""

    def run():
        for _ in range(times):
            pause.wait(GUARD_S)
            pause.clear()
            broker.restart(kill=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_idempotent_producer_through_sigkills_writes_every_acked_record_once(broker):
    topic = unique_topic("idem-kill")
    cf_create_topic(broker.bootstrap, topic, 1)
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 120_000,
        }
    )
    acked, failed = [], []

    def report(err, msg):
        (failed if err is not None else acked).append(msg.value().decode() if msg.value() else err)

    starts = broker.starts
    progress = threading.Event()
    killer = kill_repeatedly(broker, 3, progress)
    i = 0
    while killer.is_alive() or i < 3000:
        producer.produce(topic, f"r{i}".encode(), partition=0, on_delivery=report)
        i += 1
        producer.poll(0)
        if len(acked) > 0 and i % 500 == 0:
            progress.set()
        if i % 100 == 0:
            producer.flush(GUARD_S)
        if i > 20_000:
            break
    assert producer.flush(4 * GUARD_S) == 0
    killer.join(GUARD_S)
    assert broker.starts == starts + 3, "the broker was killed three times"
    assert not failed, failed[:3]
    seen = values(broker.bootstrap, topic, [0], "read_uncommitted")
    counts = collections.Counter(seen)
    assert len(acked) == i
    assert all(counts[v] == 1 for v in acked), [v for v in acked if counts[v] != 1][:5]
    assert len(seen) == len(acked), "nothing but the acknowledged records"
    assert seen == sorted(seen, key=lambda v: int(v[1:])), "in order"


def test_transactional_producer_through_sigkills_leaves_no_partial_transaction(broker):
    topic = unique_topic("txn-kill")
    cf_create_topic(broker.bootstrap, topic, 2)
    txn_id = unique_topic("tid-kill")
    per_txn = 6
    producer = txn_producer(broker.bootstrap, txn_id)
    committed = []
    starts = broker.starts
    progress = threading.Event()
    killer = kill_repeatedly(broker, 3, progress)
    t = 0
    while killer.is_alive() or t < 40:
        t += 1
        assert t < 5000, "no progress"
        tag = f"t{t}"
        try:
            producer.begin_transaction()
            for r in range(per_txn):
                producer.produce(topic, f"{tag}-{r}".encode(), partition=r % 2)
            producer.commit_transaction(TXN_TIMEOUT_S)
            committed.append(tag)
            if len(committed) % 5 == 0:
                progress.set()
        except KafkaException as e:
            error = e.args[0]
            if error.txn_requires_abort():
                try:
                    producer.abort_transaction(TXN_TIMEOUT_S)
                    continue
                except KafkaException:
                    pass
            if error.retriable() and not error.fatal():
                # The outcome is unknown to the client; a new producer decides it.
                pass
            # Start over with a new producer: it aborts whatever was left open.
            producer = txn_producer(broker.bootstrap, txn_id)
    killer.join(GUARD_S)
    assert broker.starts == starts + 3, "the broker was killed three times"
    seen = values(broker.bootstrap, topic, [0, 1], "read_committed")
    by_txn = collections.Counter(v.split("-")[0] for v in seen)
    partial = {tag: n for tag, n in by_txn.items() if n != per_txn}
    assert not partial, f"partial transactions visible: {partial}"
    assert len(seen) == len(set(seen)), "a record appeared twice"
    missing = [tag for tag in committed if by_txn.get(tag) != per_txn]
    assert not missing, f"committed transactions missing: {missing[:5]}"
