#!/usr/bin/env python3
"""strom's figures against this machine's own limits, in one run.

    cargo build --release -p strom
    python3 bench/harness.py            # about 2 minutes; writes bench/results.md

Measures, in order:
  1. the disk under target/bench-tmp: sequential writes with and without fdatasync
     (bench/disk.sh) and a sequential read after dropping the page cache;
  2. loopback TCP throughput (one connection, 1 MiB writes, a thread each side);
  3. `strom serve` (target/release/strom) on a fresh data directory there, with the
     topic flush policy `os` and then `always`: its idle RSS; `strom bench produce`
     (1 KiB values, acks=all); `strom bench consume` from the page cache and, after
     dropping the cache, from disk (policy `os` only); `strom bench e2e` at 1,000 and
     10,000 msg/s (acks=all);
  4. Apache Kafka 4 (single-node KRaft, from the jars tests/compat/install.sh fetches
     from Maven Central into tests/compat/kafka/target/dependency; Java 17) with the
     same client and the same runs: with its defaults (page-cache durability, compared
     with strom's `os`) and with `log.flush.interval.messages=1` (an fsync before each
     acknowledgement, strom's `always`). `--no-kafka` skips it.

Throughput figures, the machine's and strom's, are the best of --repeat runs (3): on a
shared machine that is the closest to what the hardware and the software can do. Each
strom figure is printed beside the machine limit it is compared with and the
ratio of the two, as a markdown table (also written to bench/results.md, with the raw
JSON in bench/results.json). Needs only Python 3's standard library. Dropping the page
cache needs root; without it the from-disk row says so.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STROM = ROOT / "target" / "release" / "strom"
KAFKA_LIBS = ROOT / "tests" / "compat" / "kafka" / "target" / "dependency"
TMP = ROOT / "target" / "bench-tmp"
MIB = 1 << 20


def disk_writes(mib):
    """MB/s of bench/disk.sh's rows, by label."""
    out = subprocess.run(
        ["bash", str(ROOT / "bench" / "disk.sh")],
        env={**os.environ, "BIG_MIB": str(mib)},
        capture_output=True, text=True, check=True,
    ).stdout
    rates = {}
    for line in out.splitlines():
        fields = line[18:].split()
        if len(fields) == 6 and fields[-1].replace(".", "").isdigit():
            rates[line[:18].strip()] = float(fields[-2])
    return rates


def drop_page_cache():
    """True when the kernel's page cache was dropped (needs root)."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def disk_read(mib):
    """MB/s of a sequential 1 MiB-read of a file written and flushed just before,
    after dropping the page cache; None when the cache cannot be dropped."""
    TMP.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=TMP) as f:
        block = os.urandom(MIB)
        for _ in range(mib):
            f.write(block)
        f.flush()
        os.fdatasync(f.fileno())
        if not drop_page_cache():
            return None
        start = time.perf_counter()
        with open(f.name, "rb", buffering=0) as r:
            while r.read(MIB):
                pass
        return mib * MIB / (time.perf_counter() - start) / 1e6


def loopback(seconds=3.0):
    """MB/s through one loopback TCP connection."""
    server = socket.create_server(("127.0.0.1", 0))
    received = [0, 0.0]

    def sink():
        conn, _ = server.accept()
        buf = bytearray(4 * MIB)
        start = time.perf_counter()
        total = 0
        while n := conn.recv_into(buf):
            total += n
        received[0], received[1] = total, time.perf_counter() - start
        conn.close()

    thread = threading.Thread(target=sink)
    thread.start()
    chunk = os.urandom(MIB)
    with socket.create_connection(server.getsockname()) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            client.sendall(chunk)
    thread.join()
    server.close()
    return received[0] / received[1] / 1e6


class Broker:
    """`strom serve` on a fresh data directory with a topic flush policy."""

    def __init__(self, flush_policy):
        TMP.mkdir(parents=True, exist_ok=True)
        self.dir = tempfile.TemporaryDirectory(dir=TMP, prefix=f"strom-{flush_policy}-")
        self.proc = subprocess.Popen(
            [str(STROM), "serve", "--data-dir", self.dir.name, "--kafka-addr", "127.0.0.1:0",
             "--http-addr", "127.0.0.1:0", "--schema-registry-enabled", "false",
             "--flush-policy", flush_policy],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "info"},
        )
        for line in self.proc.stderr:
            if "kafka_addr=" in line:
                self.addr = line.split("kafka_addr=")[1].split()[0]
                break
        else:
            raise SystemExit("strom serve exited before it was serving")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def rss_mib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def bench(self, *args):
        out = subprocess.run(
            [str(STROM), "bench", *args, "--json", "--brokers", self.addr, "--timeout", "60"],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"strom bench {' '.join(args)} failed: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.dir.cleanup()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KafkaBroker(Broker):
    """Apache Kafka 4 (KRaft, broker and controller in one JVM) on a fresh data
    directory; `durable` adds `log.flush.interval.messages=1`."""

    def __init__(self, durable):
        TMP.mkdir(parents=True, exist_ok=True)
        self.dir = tempfile.TemporaryDirectory(dir=TMP, prefix="kafka-")
        port, controller = free_port(), free_port()
        props = Path(self.dir.name) / "server.properties"
        props.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.voters=1@127.0.0.1:{controller}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={self.dir.name}/data\noffsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            + ("log.flush.interval.messages=1\n" if durable else "")
        )
        classpath = f"{KAFKA_LIBS}/*"
        subprocess.run(
            ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", "c3Ryb20tYmVuY2gtaGFybmVz",
             "-c", str(props)],
            check=True, capture_output=True,
        )
        # Kafka's own start script's heap (1 GiB) and G1 settings.
        self.proc = subprocess.Popen(
            ["java", "-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-Djava.awt.headless=true", "-cp", classpath,
             "kafka.Kafka", str(props)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.addr = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            probe = subprocess.run([str(STROM), "topic", "list", "--brokers", self.addr, "--timeout", "2"],
                                   capture_output=True)
            if probe.returncode == 0:
                return
            if self.proc.poll() is not None:
                raise SystemExit("Apache Kafka exited before it was serving")
            time.sleep(0.5)
        raise SystemExit("Apache Kafka did not start within 120 s")


def best(runs, key):
    """The run with the highest `key`: on a shared machine the best of a few runs is
    the closest to what the software itself can do."""
    return max(runs, key=lambda run: run[key])


def run_broker(start, label, messages, e2e_seconds, repeat, page_cache_droppable):
    """The throughput, latency and idle-memory runs against each configuration `start`
    makes (a name → broker factory), keyed `<configuration>/<figure>`."""
    results = {}
    for policy, make in start.items():
        print(f"== {label} ({policy})", file=sys.stderr)
        broker = make()
        try:
            time.sleep(1.0)
            results[f"{policy}/idle_rss_mib"] = broker.rss_mib()
            produced = [
                broker.bench("produce", "--topic", f"bench-{policy}-{n}", "--count", str(messages),
                             "--size", "1024", "--acks", "all")
                for n in range(repeat)
            ]
            results[f"{policy}/produce"] = best(produced, "megabytes_per_second")
            if policy == "os":
                topic = produced[0]["topic"]
                results["os/consume_cache"] = best(
                    [broker.bench("consume", "--topic", topic) for _ in range(repeat)],
                    "megabytes_per_second")
                from_disk = []
                for _ in range(repeat if page_cache_droppable else 0):
                    if drop_page_cache():
                        from_disk.append(broker.bench("consume", "--topic", topic))
                if from_disk:
                    results["os/consume_disk"] = best(from_disk, "megabytes_per_second")
            for rate in [1000, 10000]:
                results[f"{policy}/e2e_{rate}"] = broker.bench(
                    "e2e", "--rate", str(rate), "--duration", str(e2e_seconds), "--size", "1024",
                    "--acks", "all")
        finally:
            broker.stop()
    return results


def run_strom(messages, e2e_seconds, repeat, page_cache_droppable):
    start = {policy: (lambda policy=policy: Broker(policy)) for policy in ["os", "always"]}
    return run_broker(start, "strom", messages, e2e_seconds, repeat, page_cache_droppable)


def run_kafka(messages, e2e_seconds, repeat, page_cache_droppable):
    """Kafka's defaults as `os`, one fsync per message as `always`: the same keys as
    strom's, each compared with the strom configuration of equal durability."""
    start = {"os": lambda: KafkaBroker(durable=False), "always": lambda: KafkaBroker(durable=True)}
    return run_broker(start, "Apache Kafka", messages, e2e_seconds, repeat, page_cache_droppable)


def table(machine, strom, kafka):
    """One row per figure: strom, the machine limit and the ratio, and Apache Kafka at
    the same durability with strom's ratio to it (— when Kafka was not measured)."""
    def ratio(a, b):
        return f"{a / b:.2f}×" if a is not None and b else "—"

    rows = []

    def throughput(label, key, limit_label, limit, aim):
        if key not in strom:
            rows.append((label, "not measured (the page cache cannot be dropped here)", limit_label, "—", "—", "—", aim))
            return
        r = strom[key]
        k = kafka.get(key)
        rows.append((label, f"{r['megabytes_per_second']:.0f} MB/s ({r['messages_per_second'] / 1000:.0f}k msg/s)",
                     f"{limit_label}: {limit:.0f} MB/s" if limit else limit_label,
                     ratio(r["megabytes_per_second"], limit),
                     f"{k['megabytes_per_second']:.0f} MB/s" if k else "—",
                     ratio(r["megabytes_per_second"], k["megabytes_per_second"]) if k else "—", aim))

    def latency(label, key, aim):
        def fmt(r):
            lat = r["latency_ms"]
            return f"p50 {lat['p50']:.2f} / p99 {lat['p99']:.2f} / p99.9 {lat['p999']:.2f} / max {lat['max']:.2f} ms"
        k = kafka.get(key)
        rows.append((label, fmt(strom[key]), "—", "—", fmt(k) if k else "—",
                     ratio(k["latency_ms"]["p99"], strom[key]["latency_ms"]["p99"]) + " (p99, Kafka/strom)" if k else "—",
                     aim))

    disk = machine["disk_write_mb_s"]
    throughput("produce 1 KiB, acks=all, flush `always` (Kafka: `log.flush.interval.messages=1`)", "always/produce",
               "disk, 1 MiB writes + fdatasync at end", disk.get("fdatasync at end"), "≥ 0.8×, ≥ 2× Kafka")
    throughput("produce 1 KiB, acks=all, flush `always`", "always/produce",
               "disk, every 1 MiB write synced (dsync)", disk.get("dsync 1 MiB"), "")
    throughput("produce 1 KiB, acks=all, flush `os` (Kafka: defaults)", "os/produce",
               "disk, buffered 1 MiB writes", disk.get("buffered"), "≥ 1× Kafka")
    throughput("consume from the page cache", "os/consume_cache",
               "loopback TCP", machine["loopback_mb_s"], "≥ 0.5×")
    throughput("consume from disk (page cache dropped)", "os/consume_disk",
               "disk, sequential read", machine.get("disk_read_mb_s"), "")
    throughput("consume from disk (page cache dropped)", "os/consume_disk",
               "loopback TCP", machine["loopback_mb_s"], "")
    for policy, aim in [("os", "p99 ≤ 5 ms"), ("always", "p99 ≤ 20 ms")]:
        for rate in [1000, 10000]:
            latency(f"end-to-end at {rate:,} msg/s, acks=all, flush `{policy}`", f"{policy}/e2e_{rate}",
                    aim if rate == 1000 else "p99 ≤ Kafka's")
    for policy in ["os", "always"]:
        rss = strom[f"{policy}/idle_rss_mib"]
        k = kafka.get(f"{policy}/idle_rss_mib")
        rows.append((f"idle broker RSS (flush `{policy}`, just started)", f"{rss:.1f} MiB", "—", "—",
                     f"{k:.0f} MiB" if k else "—", ratio(rss, k) if k else "—", "≤ 30 MiB"))

    lines = ["| figure | strom | machine limit | ratio | Apache Kafka | strom / Kafka | aim |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500_000, help="records per produce run")
    parser.add_argument("--e2e-seconds", type=float, default=10.0, help="length of each e2e run")
    parser.add_argument("--disk-mib", type=int, default=1024, help="MiB written per disk measurement")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each throughput figure (machine and strom); the best is kept")
    parser.add_argument("--no-kafka", action="store_true", help="do not measure Apache Kafka side by side")
    args = parser.parse_args()
    if not args.no_kafka and not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        raise SystemExit(f"Apache Kafka jars missing in {KAFKA_LIBS}: run tests/compat/install.sh (or --no-kafka)")
    if not STROM.exists():
        raise SystemExit(f"{STROM} is missing: run cargo build --release -p strom")

    load_before = os.getloadavg()[0]
    print("== disk writes (bench/disk.sh)", file=sys.stderr)
    writes = [disk_writes(args.disk_mib) for _ in range(args.repeat)]
    machine = {"disk_write_mb_s": {label: max(run[label] for run in writes) for label in writes[0]}}
    print("== disk read", file=sys.stderr)
    reads = [disk_read(min(args.disk_mib, 1024)) for _ in range(args.repeat)]
    machine["disk_read_mb_s"] = None if None in reads else max(reads)
    print("== loopback TCP", file=sys.stderr)
    machine["loopback_mb_s"] = max(loopback() for _ in range(args.repeat))
    droppable = machine["disk_read_mb_s"] is not None
    strom = run_strom(args.messages, args.e2e_seconds, args.repeat, droppable)
    kafka = {} if args.no_kafka else run_kafka(args.messages, args.e2e_seconds, args.repeat, droppable)

    load = os.getloadavg()[0]
    header = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores "
        f"(load average {load_before:.1f} before, {load:.1f} after) "
        f"(`python3 bench/harness.py --messages {args.messages} --e2e-seconds {args.e2e_seconds:g} "
        f"--disk-mib {args.disk_mib} --repeat {args.repeat}`); client and broker share the machine. "
        f"Throughputs (machine and strom) are the best of {args.repeat} runs; latencies are one "
        f"run each. MB = 10⁶ bytes.\n\n"
    )
    limits = (
        "Machine: disk writes " + ", ".join(f"{k} {v:.0f} MB/s" for k, v in machine["disk_write_mb_s"].items())
        + (f"; disk read (cache dropped) {machine['disk_read_mb_s']:.0f} MB/s" if machine["disk_read_mb_s"] else
           "; disk read not measured (the page cache cannot be dropped)")
        + f"; loopback TCP {machine['loopback_mb_s']:.0f} MB/s.\n\n"
    )
    peer = "" if args.no_kafka else (
        "Apache Kafka " + next(KAFKA_LIBS.glob("kafka_2.13-*.jar")).name.removeprefix("kafka_2.13-").removesuffix(".jar")
        + " ran the same runs with the same client: with its defaults beside strom's `os` rows, with "
        "`log.flush.interval.messages=1` beside the `always` rows.\n\n")
    markdown = header + limits + peer + table(machine, strom, kafka)
    (ROOT / "bench" / "results.md").write_text(markdown)
    (ROOT / "bench" / "results.json").write_text(json.dumps({"machine": machine, "strom": strom, "kafka": kafka}, indent=2) + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
