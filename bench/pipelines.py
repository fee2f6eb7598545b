#!/usr/bin/env python3
"""Events/s of the seeds' three pipelines end to end through `strom serve`.

    cargo build --release -p strom
    tests/compat/install.sh        # confluent-kafka, redis-server, osmem-server, …
    tests/compat/.venv/bin/python bench/pipelines.py [--events 200000]

For each seed file (crates/pipeline/tests/seeds/, run verbatim): a fresh `strom serve`
(release, flush policy `always`), the real servers its outputs write to (redis-server;
osmem-server for Elasticsearch; an HTTP receiver for the webhooks), a seeded generator's
events produced to its input topics *before* the pipeline starts, then `strom pipeline
run` (release). The clock runs from the pipeline's start until its consumer group has
committed every input record and every external output's worker has committed every
record of its internal topic: events/s is the backlog over that time, so it includes
the outputs' writes to their servers. Per core: divided by the machine's cores (broker,
pipeline, servers and generator share them).

Events come from `strom generate` (seeded, reproducible): drivers on San Francisco's
street grid (64 partitions, as the seed creates them) with 200 ride requests in a global
table; views of popular titles with profiles and metadata; chat messages over 128
partitions with presence and delivery confirmations.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "compat" / "python"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("STROM_BIN", str(ROOT / "target" / "release" / "strom"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
import harness  # noqa: E402  (its Broker: `strom serve` on a fresh data dir)
from sink_servers import HttpRecorder, PipelineProcess, RedisServer  # noqa: E402

SEEDS = ROOT / "crates" / "pipeline" / "tests" / "seeds"
STROM = Path(os.environ["STROM_BIN"])
harness.STROM = STROM
T0 = 1_780_000_000_000  # event time of the first generated event (ms)


def create(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Creates `topic` as the seed would (the pipeline creates only missing topics)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result()


def generate(bootstrap: str, dataset: str, count: int, *extra: str) -> int:
    """`strom generate DATASET --count COUNT` into the broker; returns COUNT."""
    subprocess.run(
        [str(STROM), "generate", dataset, "--count", str(count), "--start-ms", str(T0), "--seed", "7",
         "--brokers", bootstrap, "--acks", "all", "--compression", "lz4", *extra],
        check=True, stdout=subprocess.DEVNULL,
    )
    return count


def committed_everything(bootstrap: str, group: str, topics: list[str], transactional=()) -> bool:
    """True when `group` has committed the end offset of every partition of `topics`
    (of those written in transactions, all but the last offset: a commit marker)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(timeout=10)
        tps = [TopicPartition(t, p) for t in topics for p in md.topics[t].partitions]
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
        for tp in tps:
            _, high = c.get_watermark_offsets(tp, timeout=10)
            end = high - 1 if tp.topic in transactional else high
            if high > 0 and committed[(tp.topic, tp.partition)] < end:
                return False
        return True
    finally:
        c.close()


def run_seed(seed: str, events: int, workdir: Path) -> dict:
    broker = harness.Broker("always")
    servers, env, produced = [], {}, 0
    try:
        b = broker.addr
        if seed == "driver-location-tracking":
            redis = RedisServer(workdir)
            redis.start()
            servers.append(redis)
            env["STROM_SINK_REDIS_GEO_URL"] = redis.url
            generate(b, "ride-requests", 200)
            create(b, "driver-locations", 64)
            produced = generate(b, "driver-locations", events, "--keys", "2000")
        elif seed == "user-engagement-analytics":
            from osmem_server import OsmemServer

            redis = RedisServer(workdir)
            redis.start()
            search = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
            servers += [redis, search]
            env |= {"STROM_SINK_REDIS_URL": redis.url, "STROM_SINK_ELASTICSEARCH_URL": search.url}
            generate(b, "user-profiles", 10000)
            generate(b, "content-metadata", 500)
            create(b, "user-interactions")
            produced = generate(b, "views", events, "--event-interval-ms", "20")
        else:
            hooks = HttpRecorder()
            servers.append(hooks)
            env |= {"STROM_SINK_PUSH_NOTIFICATION_URL": hooks.url("/push"),
                    "STROM_SINK_SMS_FALLBACK_URL": hooks.url("/sms"),
                    "STROM_PIPELINE_KEYS": "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
            create(b, "incoming-messages", 128)
            create(b, "user-presence")
            produced = generate(b, "messages", events, "--event-interval-ms", "5")
        file = SEEDS / f"{seed}.yaml"
        pipeline = PipelineProcess(workdir, file, b, env)
        started = time.monotonic()
        pipeline.start()
        inputs = {"driver-location-tracking": ["driver-locations"],
                  "user-engagement-analytics": ["user-views", "user-interactions", "content-metadata"],
                  "message-delivery-system": ["incoming-messages"]}[seed]
        # The application's own repartition topics are inputs of its later stages.
        admin = AdminClient({"bootstrap.servers": b})

        def repartitions():
            return [t for t in admin.list_topics(timeout=10).topics
                    if t.startswith(f"{seed}-") and t.endswith("-repartition")]

        while not committed_everything(b, seed, inputs + repartitions(), transactional=repartitions()):
            pipeline.wait(lambda: True, "the pipeline")
            time.sleep(0.5)
        processed = time.monotonic() - started
        sinks = [line.split('sink="')[1].split('"')[0] for line in pipeline.metrics().splitlines()
                 if line.startswith("strom_pipeline_sink_records_written_total{")]
        # WebSocket outputs tail their topic without committing (nothing to wait for).
        tailing = {line.split('sink="')[1].split('"')[0] for line in pipeline.metrics().splitlines()
                   if line.startswith("strom_pipeline_sink_records_written_total{") and 'type="websocket"' in line}
        sink_topics = [f"{seed}-sink-{s}" for s in sinks if s not in tailing]
        while sink_topics and not all(committed_everything(b, t, [t], transactional=[t]) for t in sink_topics):
            time.sleep(0.5)
        total = time.monotonic() - started
        written = {s: pipeline.metric("strom_pipeline_sink_records_written_total", sink=s) for s in sinks}
        dead = {s: pipeline.metric("strom_pipeline_sink_records_dead_lettered_total", sink=s) for s in sinks}
        pipeline.stop()
        return {"seed": seed, "events": produced, "processed_s": processed, "total_s": total,
                "events_per_s": produced / total, "sinks_written": written, "sinks_dead_lettered": dead}
    finally:
        for s in servers:
            (s.close if hasattr(s, "close") else s.stop)()
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events generated per seed")
    parser.add_argument("--seed", action="append", help="only these seeds (default: all three)")
    args = parser.parse_args()
    if not STROM.exists():
        raise SystemExit(f"{STROM} is missing: run cargo build --release -p strom")
    seeds = args.seed or ["user-engagement-analytics", "driver-location-tracking", "message-delivery-system"]
    cores = os.cpu_count() or 1
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix=f"strom-bench-{seed}-") as d:
            print(f"== {seed}", file=sys.stderr)
            r = run_seed(seed, args.events, Path(d))
            print(json.dumps(r), file=sys.stderr)
            rows.append(r)
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {cores} cores "
          f"(`tests/compat/.venv/bin/python bench/pipelines.py --events {args.events}`):\n")
    print("| seed pipeline | events | inputs committed | outputs drained | events/s | per core | written by external outputs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        sinks = ", ".join(f"{s} {int(w or 0):,}" + (f" ({int(r['sinks_dead_lettered'][s]):,} dead-lettered)"
                                                    if r["sinks_dead_lettered"].get(s) else "")
                          for s, w in r["sinks_written"].items())
        print(f"| {r['seed']} | {r['events']:,} | {r['processed_s']:.1f} s | {r['total_s']:.1f} s | "
              f"{r['events_per_s']:,.0f} | {r['events_per_s'] / cores:,.0f} | {sinks} |")


if __name__ == "__main__":
    main()
