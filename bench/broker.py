#!/usr/bin/env python3
"""Produce and consume throughput of a running broker, measured with confluent-kafka
(librdkafka), a client nobody here wrote.

    tests/compat/install.sh                     # once: the client venv
    cargo run --release -p strom -- serve --data-dir /tmp/strom-bench &
    tests/compat/.venv/bin/python bench/broker.py --messages 500000 --size 1024 --acks all

Prints one line per phase: messages, MB (10^6 bytes) and the rate of each.
"""
import argparse
import json
import random
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def json_values(size: int) -> list[bytes]:
    """1,000 distinct values of `size` bytes: JSON-like events whose numbers and ids
    vary, so codecs work as on real data rather than on one repeated byte."""
    rng = random.Random(42)
    out = []
    for i in range(1000):
        text = b""
        while len(text) < size:
            text += json.dumps({
                "event_id": f"{rng.getrandbits(64):016x}",
                "user": f"user-{rng.randrange(100_000)}",
                "kind": rng.choice(["click", "view", "purchase", "scroll"]),
                "ts": 1_700_000_000_000 + rng.randrange(10**9),
                "amount": round(rng.random() * 1000, 2),
            }).encode()
        out.append(text[:size])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024, help="value bytes per message")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--acks", default="all", choices=["0", "1", "all"])
    parser.add_argument("--compression", default="none")
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--topic-config", action="append", default=[], metavar="KEY=VALUE",
                        help="config of the benchmark's topic, e.g. compression.type=zstd (repeatable)")
    parser.add_argument("--payload", default="x", choices=["x", "json"],
                        help="x: one repeated byte; json: JSON-like text with varying fields (compresses about 3-5x)")
    args = parser.parse_args()

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    config = dict(item.split("=", 1) for item in args.topic_config)
    admin.create_topics([NewTopic(topic, args.partitions, 1, config=config)])[topic].result()

    values = [b"x" * args.size] if args.payload == "x" else json_values(args.size)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "compression.type": args.compression,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    })
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    start = time.perf_counter()
    for i in range(args.messages):
        while True:
            try:
                producer.produce(topic, values[i % len(values)], partition=i % args.partitions,
                                 on_delivery=report)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - start
    assert not failed, failed[:3]
    mb = args.messages * args.size / 1e6
    print(f"produce acks={args.acks} size={args.size} partitions={args.partitions} compression={args.compression} "
          f"payload={args.payload} topic-config={config}: "
          f"{args.messages} msgs, {mb:.0f} MB in {elapsed:.2f} s = {args.messages / elapsed:,.0f} msg/s, {mb / elapsed:.1f} MB/s")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "unused",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(args.partitions)])
    received = 0
    start = time.perf_counter()
    while received < args.messages:
        for msg in consumer.consume(10_000, timeout=10):
            assert msg.error() is None, msg.error()
            received += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    print(f"consume: {received} msgs, {mb:.0f} MB in {elapsed:.2f} s = {received / elapsed:,.0f} msg/s, {mb / elapsed:.1f} MB/s")


if __name__ == "__main__":
    main()
