#!/usr/bin/env python3
"""Partition scale of `strom serve`: idle RSS and restart time at N partitions.

    cargo build --release -p strom --no-default-features
    tests/compat/install.sh                     # once: the client venv (confluent-kafka)
    tests/compat/.venv/bin/python bench/partitions.py --strom target/release/strom \\
        --partitions 10000 50000

For each N, on a fresh data directory and with the default limits (the broker raises
its soft open-file limit to the hard one and budgets half of it to segment files):
creates topics of 10,000 partitions each (one CreateTopics per batch), produces one
record (acks=all) to every partition, fetches every partition back, measures idle RSS
and open descriptors, then restarts cleanly (SIGTERM) and after a SIGKILL, timing
each start from spawn to serving, and fetches every partition again after the last.
Prints one JSON object per N.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BATCH = 10_000


class Strom:
    """A `strom serve` child on ephemeral ports whose log is drained by a thread."""

    def __init__(self, binary: str, data_dir: str):
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", data_dir, "--kafka-addr", "127.0.0.1:0",
             "--http-addr", "127.0.0.1:0"],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "info"})
        for line in self.proc.stderr:
            match = re.search(r"kafka_addr=(\S+)", line)
            if match:
                self.addr = match.group(1)
                break
        else:
            raise RuntimeError("strom exited before serving")
        self.start_s = time.monotonic() - started
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            kb = next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
        return round(kb / 1024, 1)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, sig: int):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=600)


def topics_of(partitions: int) -> list[tuple[str, int]]:
    return [(f"scale-{i}", min(BATCH, partitions - i * BATCH))
            for i in range((partitions + BATCH - 1) // BATCH)]


def create(addr: str, topics) -> None:
    admin = AdminClient({"bootstrap.servers": addr})
    for name, count in topics:
        admin.create_topics([NewTopic(name, count, 1)], operation_timeout=600,
                            request_timeout=600)[name].result()


def produce(addr: str, topics) -> None:
    producer = Producer({"bootstrap.servers": addr, "acks": "all", "linger.ms": 50})
    for name, count in topics:
        for p in range(count):
            producer.produce(name, value=f"{name}/{p}".encode(), partition=p)
            producer.poll(0)
    if producer.flush(600) != 0:
        raise RuntimeError("records not acknowledged")


def fetch(addr: str, topics) -> int:
    consumer = Consumer({"bootstrap.servers": addr, "group.id": "partition-bench",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(name, p, 0) for name, count in topics for p in range(count)])
    want = sum(count for _, count in topics)
    got = 0
    deadline = time.monotonic() + 600
    while got < want and time.monotonic() < deadline:
        for message in consumer.consume(10_000, timeout=1):
            if message.error() is None:
                got += 1
    consumer.close()
    return got


def timed(f, *args):
    started = time.monotonic()
    result = f(*args)
    return result, round(time.monotonic() - started, 1)


def run(binary: str, partitions: int, idle_s: float) -> dict:
    topics = topics_of(partitions)
    with tempfile.TemporaryDirectory(prefix="strom-partitions-") as data:
        strom = Strom(binary, data)
        _, create_s = timed(create, strom.addr, topics)
        _, produce_s = timed(produce, strom.addr, topics)
        fetched, fetch_s = timed(fetch, strom.addr, topics)
        time.sleep(idle_s)
        result = {
            "partitions": partitions, "create_s": create_s, "produce_s": produce_s,
            "fetch_s": fetch_s, "fetched": fetched, "idle_rss_mb": strom.rss_mb(),
            "fds": strom.fds(),
        }
        strom.stop(signal.SIGTERM)
        strom = Strom(binary, data)
        result["clean_restart_s"] = round(strom.start_s, 2)
        time.sleep(idle_s)
        result["idle_rss_after_restart_mb"] = strom.rss_mb()
        strom.stop(signal.SIGKILL)
        strom = Strom(binary, data)
        result["restart_after_sigkill_s"] = round(strom.start_s, 2)
        result["fetched_after_restarts"], _ = timed(fetch, strom.addr, topics)
        result["fds_after_fetch"] = strom.fds()
        strom.stop(signal.SIGTERM)
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strom", default="target/release/strom")
    parser.add_argument("--partitions", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--idle-s", type=float, default=10, help="settle time before RSS")
    args = parser.parse_args()
    for partitions in args.partitions:
        print(json.dumps(run(args.strom, partitions, args.idle_s)), flush=True)


if __name__ == "__main__":
    main()
