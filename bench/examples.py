#!/usr/bin/env python3
"""The reference systems (examples/*/pipeline.yaml, verbatim) end to end: how many
events/s each sustains, the latency of its results, and whether it keeps up with a
live generator at half that rate.

    cargo build --release -p strom
    tests/compat/install.sh        # confluent-kafka, redis-server, PostgreSQL, osmem-server
    tests/compat/.venv/bin/python bench/examples.py [--events 100000] [--live-seconds 30] [--ladder]

For each example, on a fresh `strom serve` (release, flush policy `always`) with the real
servers its outputs write to, and its input topic with 6 partitions:

1. **Capacity.** `--events` generated events (`strom generate`, seeded) are in the input
   topic before `strom pipeline run` (release, one stream thread, exactly-once) starts;
   the clock stops when the pipeline has committed every input and repartitioned record
   and every external output has committed its last record. Events/s = backlog / time.
2. **Live.** Then `strom generate --rate R` (R: half the capacity) for `--live-seconds`,
   while a read_committed consumer of the example's Kafka output notes when each result
   arrives. Latency is arrival minus the moment the result could exist: for a payment's
   confirmation, a driver's availability update or a message's delivery status, its
   event time (event time is the
   wall clock here); for a window, the moment the generator reached the window's end
   plus its grace in event time (event time runs `--speedup` (100) times faster than the
   clock, so windows close during the run). "Keeps up" says whether the pipeline had
   committed every input within 5 s of the last event.

Broker, pipeline, servers and generator share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "compat" / "python"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("STROM_BIN", str(ROOT / "target" / "release" / "strom"))

from confluent_kafka import OFFSET_END, Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
import harness  # noqa: E402  (its Broker: `strom serve` on a fresh data dir)
from pipelines import committed_everything, create  # noqa: E402
from sink_servers import HttpRecorder, PipelineProcess, PostgresServer, RedisServer  # noqa: E402

STROM = Path(os.environ["STROM_BIN"])
harness.STROM = STROM
EXAMPLES = ROOT / "examples"
T0 = 1_780_000_000_000  # event time of the backlog's first event (ms)
RATES = [100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 25000, 50000]  # divide 1000 ms


@dataclass
class Example:
    """What differs between the examples."""

    name: str
    group: str  # the pipeline's name: its consumer group and topic prefix
    dataset: str  # `strom generate` dataset of its input
    input: str
    output: str  # the Kafka output whose arrivals are timed
    interval_ms: int  # event time between backlog events
    windowed_grace_ms: int | None  # windows: results exist once end + grace is reached
    setup: Callable  # (broker addr, workdir) -> (servers, env)
    flags: tuple = ()  # more `strom generate` flags of its input
    co_inputs: tuple = ()  # inputs the generator also writes, co-partitioned with `input`
    timed: Callable = lambda v: True  # the output's results whose latency counts


def engagement_setup(b: str, workdir: Path):
    from osmem_server import OsmemServer

    redis = RedisServer(workdir)
    redis.start()
    search = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    subprocess.run([str(STROM), "generate", "content-metadata", "--count", "500", "--brokers", b],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(STROM), "generate", "user-profiles", "--count", "10000", "--brokers", b],
                   check=True, stdout=subprocess.DEVNULL)
    env = {"STROM_SINK_REDIS_URL": redis.url, "STROM_SINK_ELASTICSEARCH_URL": search.url}
    return [redis, search], env


def driver_setup(b: str, workdir: Path):
    redis = RedisServer(workdir)
    redis.start()
    # Ride requests over the backlog's event time (a position every 100 ms, a request
    # every 5 s), read as the ETAs' global table and by the surge windows.
    subprocess.run([str(STROM), "generate", "ride-requests", "--count", "2000", "--start-ms", str(T0),
                    "--event-interval-ms", "5000", "--seed", "7", "--brokers", b],
                   check=True, stdout=subprocess.DEVNULL)
    return [redis], {"STROM_SINK_REDIS_GEO_URL": redis.url}


def messages_setup(b: str, workdir: Path):
    hooks = HttpRecorder()
    subprocess.run([str(STROM), "generate", "chat-members", "--count", "2000", "--keys", "2000",
                    "--seed", "7", "--brokers", b], check=True, stdout=subprocess.DEVNULL)
    env = {"STROM_SINK_PUSH_NOTIFICATION_URL": hooks.url("/push"), "STROM_SINK_SMS_FALLBACK_URL": hooks.url("/sms"),
           "STROM_PIPELINE_KEYS": "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
    return [hooks], env


def payments_setup(b: str, workdir: Path):
    pg = PostgresServer()
    pg.start()
    pg.query((EXAMPLES / "payments" / "schema.sql").read_text())
    return [pg], {"STROM_SINK_POSTGRES_URL": pg.url}


ALL = [
    Example("engagement", "user-engagement-analytics", "views", "user-views", "processed-analytics",
            100, 120_000, engagement_setup),
    Example("driver-location", "driver-location-tracking", "driver-locations", "driver-locations",
            "driver-availability-updates", 100, None, driver_setup, ("--keys", "1000")),
    Example("message-delivery", "message-delivery-system", "messages", "incoming-messages",
            "delivery-status", 100, None, messages_setup, ("--keys", "2000"), ("user-presence",),
            # A message's first delivery to each recipient (not receipts, retries, forwards).
            lambda v: v.get("status") in ("websocket", "push", "stored", "sms")
            and not v.get("retry") and not v.get("forwarded")),
    Example("payments", "payment-processor", "payments", "payments", "payment-confirmations",
            10, None, payments_setup),
]


def generate(b: str, ex: Example, count: int, start_ms: int, interval_ms: int, seed: int, *extra: str) -> None:
    """Events of the example's dataset; each run its own `seed`, so that no run repeats
    another's events (payment ids, say, which would only be duplicates)."""
    subprocess.run(
        [str(STROM), "generate", ex.dataset, "--count", str(count), "--start-ms", str(start_ms),
         "--event-interval-ms", str(interval_ms), "--seed", str(seed), "--brokers", b, *ex.flags, *extra],
        check=True, stdout=subprocess.DEVNULL,
    )


def drained(b: str, ex: Example, pipeline: PipelineProcess) -> bool:
    """Every input and repartitioned record committed, every external output's topic
    committed by its worker (WebSocket outputs tail without committing)."""
    admin = AdminClient({"bootstrap.servers": b})
    topics = admin.list_topics(timeout=10).topics
    repartitions = [t for t in topics if t.startswith(f"{ex.group}-") and t.endswith("-repartition")]
    if not committed_everything(b, ex.group, [ex.input, *repartitions], transactional=repartitions):
        return False
    sinks = [line.split('sink="')[1].split('"')[0] for line in pipeline.metrics().splitlines()
             if line.startswith("strom_pipeline_sink_records_written_total{") and 'type="websocket"' not in line]
    return all(committed_everything(b, f"{ex.group}-sink-{s}", [f"{ex.group}-sink-{s}"],
                                    transactional=[f"{ex.group}-sink-{s}"]) for s in sinks)


class Arrivals:
    """Reads the output topic from its end (read_committed), noting each result's
    arrival time."""

    def __init__(self, b: str, topic: str):
        self.consumer = Consumer({"bootstrap.servers": b, "group.id": "bench-examples-unused",
                                  "enable.auto.commit": False, "isolation.level": "read_committed",
                                  "fetch.wait.max.ms": 10})
        md = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in md.partitions])
        self.seen: list[tuple[float, dict]] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            for m in self.consumer.consume(1000, timeout=0.1):
                if not m.error():
                    self.seen.append((time.time(), json.loads(m.value())))

    def close(self):
        self.running = False
        self.thread.join(5)
        self.consumer.close()


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def live(b: str, ex: Example, pipeline: PipelineProcess, rate: int, seconds: int, speedup: int,
         start_ms: int) -> tuple[bool, list[float]]:
    """`strom generate --rate RATE` for SECONDS from event time START_MS: whether the
    pipeline kept up, and the latency (s) of each timed result."""
    arrivals = Arrivals(b, ex.output)
    time.sleep(1)  # the consumer has its positions
    interval = speedup * 1000 // rate
    launched = time.time()
    generate(b, ex, rate * seconds, start_ms, interval, rate, "--rate", str(rate))
    deadline = time.time() + 5
    keeps_up = False
    while time.time() < deadline + 55:
        if drained(b, ex, pipeline):
            keeps_up = time.time() <= deadline
            break
        time.sleep(0.25)
    arrivals.close()
    statuses: dict = {}
    for _, v in arrivals.seen:
        statuses[v.get("status")] = statuses.get(v.get("status"), 0) + 1
    print(f"{ex.name} at {rate}/s: {'keeps up' if keeps_up else 'falls behind'}; "
          f"{ex.output}: {len(arrivals.seen)} results, by status {statuses}", file=sys.stderr)
    latencies = []
    for at, v in filter(lambda av: ex.timed(av[1]), arrivals.seen):
        # When the generator reached the event time at which the result could exist.
        could = v["window_end"] + ex.windowed_grace_ms if ex.windowed_grace_ms else v["timestamp"]
        first = v["window_start"] if ex.windowed_grace_ms else v["timestamp"]
        if first < start_ms:
            continue  # an earlier run's, let go (closed, retried, expired) by this one's events
        latencies.append(at - (launched + (could - start_ms) / interval / rate))
    return keeps_up, latencies


def run(ex: Example, events: int, live_seconds: int, speedup: int, ladder: bool, workdir: Path) -> dict:
    broker = harness.Broker("always")
    servers = []
    try:
        b = broker.addr
        servers, env = ex.setup(b, workdir)
        for topic in (ex.input, *ex.co_inputs):
            create(b, topic, 6)
        generate(b, ex, events, T0, ex.interval_ms, 7)
        pipeline = PipelineProcess(workdir, EXAMPLES / ex.name / "pipeline.yaml", b, env)
        started = time.monotonic()
        pipeline.start()
        while not drained(b, ex, pipeline):
            pipeline.wait(lambda: True, "the pipeline")
            time.sleep(0.25)
        capacity_s = time.monotonic() - started
        capacity = events / capacity_s

        # Half the capacity, rounded down to a rate whose event interval is whole ms.
        rate = max([r for r in RATES if r <= capacity / 2] or [RATES[0]])
        start_ms = T0 + events * ex.interval_ms + 3_600_000  # after the backlog
        keeps_up, latencies = live(b, ex, pipeline, rate, live_seconds, speedup, start_ms)
        # Then faster, rate after rate, while it keeps up.
        largest = rate if keeps_up else None
        for faster in (r for r in RATES if r > rate and ladder and keeps_up):
            start_ms += 2 * speedup * 1000 * live_seconds  # event time after the last run's
            if not live(b, ex, pipeline, faster, live_seconds, speedup, start_ms)[0]:
                break
            largest = faster
        pipeline.stop()
        return {"example": ex.name, "events": events, "capacity_s": capacity_s, "events_per_s": capacity,
                "live_rate": rate, "live_results": len(latencies), "keeps_up": keeps_up, "largest_rate": largest,
                "latency_p50_ms": 1000 * percentile(latencies, 50), "latency_p99_ms": 1000 * percentile(latencies, 99)}
    finally:
        for s in servers:
            (s.close if hasattr(s, "close") else s.stop)()
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="backlog events per example")
    parser.add_argument("--live-seconds", type=int, default=30, help="length of the live run")
    parser.add_argument("--speedup", type=int, default=100, help="event time per wall time in the live runs")
    parser.add_argument("--example", action="append", help="only these (default: all)")
    parser.add_argument("--ladder", action="store_true",
                        help="after the half-capacity run, faster rates while the pipeline keeps up")
    args = parser.parse_args()
    if not STROM.exists():
        raise SystemExit(f"{STROM} is missing: run cargo build --release -p strom")
    chosen = [e for e in ALL if not args.example or e.name in args.example]
    rows = []
    for ex in chosen:
        with tempfile.TemporaryDirectory(prefix=f"strom-bench-{ex.name}-") as d:
            print(f"== {ex.name}", file=sys.stderr)
            r = run(ex, args.events, args.live_seconds, args.speedup, args.ladder, Path(d))
            print(json.dumps(r), file=sys.stderr)
            rows.append(r)
    cores = os.cpu_count() or 1
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {cores} cores "
          f"(`tests/compat/.venv/bin/python bench/examples.py --events {args.events} "
          f"--live-seconds {args.live_seconds}`):\n")
    print("| example | backlog | events/s | live rate | results timed | latency p50 | latency p99 | keeps up | largest rate kept up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['example']} | {r['events']:,} in {r['capacity_s']:.1f} s | {r['events_per_s']:,.0f} | "
              f"{r['live_rate']:,}/s | {r['live_results']:,} | {r['latency_p50_ms']:,.0f} ms | "
              f"{r['latency_p99_ms']:,.0f} ms | {'yes' if r['keeps_up'] else 'no'} | "
              f"{'' if r['largest_rate'] is None else format(r['largest_rate'], ',') + '/s'} |")


if __name__ == "__main__":
    main()
