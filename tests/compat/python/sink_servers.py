"""Real servers for the pipeline sink tests (test_pipeline_sinks.py), each on a
free 127.0.0.1 port with its data in a temp dir, and the `strom pipeline run`
process they are fed by.

- `RedisServer`: Debian's redis-server, append-only file on (fsync always), so
  a stop and start on the same port keeps the keys, as a production Redis does.
- `PostgresServer`: initdb + pg_ctl from /usr/lib/postgresql/*/bin (as the
  `postgres` user when the tests run as root: PostgreSQL refuses root), trust
  authentication, queried with `psql`.
- `HttpRecorder`: http.server in a thread; a `respond(path, body, headers)`
  callback picks each answer, every request is recorded.
- `WsListener`: a client of the `websockets` package collecting messages.
- `PipelineProcess`: `strom pipeline run FILE` with its own state dir, log and
  `--http-addr`; SIGKILL, SIGTERM and restart on the same state.

Timeouts are failure guards only.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import free_port, strom_bin

GUARD_S = 60.0
LOG_TAIL_BYTES = 12_000


def log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "(no log)"
    if len(data) > size:
        data = b"[... cut ...]\n" + data[-size:]
    return data.decode("utf-8", "replace")


def wait_for(pred, what: str, timeout: float = GUARD_S, interval: float = 0.2, logs=()):
    """Polls pred() until it returns something truthy (returned). On timeout,
    fails naming `what`, the last result and the tails of `logs` (objects with
    `log_path` and `name`)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except Exception as e:  # keep polling; report the last failure
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            tails = "".join(f"\n----- {getattr(p, 'name', 'strom serve')} log ({p.log_path}) -----\n{log_tail(p.log_path)}" for p in logs)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}{tails}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


class RedisServer:
    name = "redis-server"

    def __init__(self, workdir: Path):
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "redis.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=10)

    def start(self) -> None:
        assert self.proc is None
        exe = shutil.which("redis-server")
        assert exe, "redis-server not installed (tests/compat/install.sh installs it)"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--logfile", str(self.log_path),
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        c = self.client()
        wait_for(lambda: self.proc.poll() is None and c.ping(), f"redis-server on {self.port}", logs=[self])

    def stop(self) -> None:
        """SIGTERM: Redis finishes its append-only file and exits."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=GUARD_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


class PostgresServer:
    name = "postgresql"

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert bins, "PostgreSQL not installed (tests/compat/install.sh installs it)"
        self.bin = Path(bins[-1]).parent
        # Its own dir under /tmp: pytest's tmp_path sits in a root-only directory.
        self.dir = Path(tempfile.mkdtemp(prefix="strom-compat-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.port = free_port()
        # PostgreSQL refuses to run as root.
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        r = subprocess.run(
            [*self.as_owner, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=GUARD_S
        )
        assert r.returncode == 0, f"{args[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n{log_tail(self.log_path)}"

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--no-sync", "--no-instructions",
            )
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", opts, "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        if not os.environ.get("STROM_COMPAT_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql: str) -> list[list[str]]:
        """Rows of `sql` (text columns), through psql."""
        r = subprocess.run(
            [
                str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql,
            ],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=GUARD_S,
        )
        assert r.returncode == 0, f"psql {sql!r} failed: {r.stderr}"
        return [line.split("\t") for line in r.stdout.splitlines() if line]


# --------------------------------------------------------------------------
# HTTP receiver (webhooks)
# --------------------------------------------------------------------------


class HttpRecorder:
    """Records every request as a dict (path, headers, body, status) and answers
    with `respond(path, body_json, headers) -> (status, text)` (default 200)."""

    def __init__(self, respond=None):
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.respond = respond or (lambda path, body, headers: (200, "ok"))
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                with recorder.lock:
                    status, text = recorder.respond(self.path, body, headers)
                    recorder.requests.append({"path": self.path, "headers": headers, "body": body, "status": status})
                data = text.encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PUT = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str | None = None, status: int | None = None) -> list[dict]:
        with self.lock:
            return [
                r for r in self.requests
                if (path is None or r["path"] == path) and (status is None or r["status"] == status)
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# WebSocket client
# --------------------------------------------------------------------------


class WsListener:
    """A `websockets` client that collects every text message (JSON-decoded)."""

    def __init__(self, url: str):
        from websockets.sync.client import connect

        self.url = url
        self.ws = connect(url, open_timeout=GUARD_S, close_timeout=5, legacy=True)
        self.lock = threading.Lock()
        self._messages: list = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for text in self.ws:
                with self.lock:
                    self._messages.append(json.loads(text))
        except ConnectionClosed:
            pass

    @property
    def messages(self) -> list:
        with self.lock:
            return list(self._messages)

    def close(self) -> None:
        self.ws.close()
        self.thread.join(10)


# --------------------------------------------------------------------------
# strom pipeline run
# --------------------------------------------------------------------------


class PipelineProcess:
    """`strom pipeline run FILE` against `bootstrap`, serving /metrics, /healthz
    and WebSocket endpoints on a fixed free port (kept across restarts)."""

    def __init__(self, workdir: Path, file: Path, bootstrap: str, env: dict | None = None):
        self.file = Path(file)
        self.name = f"pipeline {self.file.name}"
        self.bootstrap = bootstrap
        self.dir = workdir / f"pipeline-{self.file.stem}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.dir / "state"
        self.log_path = self.dir / "pipeline.log"
        self.http_port = free_port()
        self.env = dict(os.environ)
        self.env.setdefault("RUST_BACKTRACE", "1")
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def ws_url(self, endpoint: str) -> str:
        return f"ws://127.0.0.1:{self.http_port}{endpoint}"

    def start(self) -> None:
        assert self.proc is None, "pipeline already running"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== harness: start #{self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [
                str(strom_bin()), "pipeline", "run", str(self.file),
                "--bootstrap-servers", self.bootstrap,
                "--state-dir", str(self.state_dir),
                "--http-addr", f"127.0.0.1:{self.http_port}",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
        )
        log.close()

        def healthy():
            code = self.proc.poll()
            assert code is None, f"strom pipeline run exited with {code} during startup\n{log_tail(self.log_path)}"
            with urllib.request.urlopen(self.http + "/healthz", timeout=5) as r:
                return r.status == 200

        wait_for(healthy, f"{self.name} /healthz", logs=[self])

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=GUARD_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{self.name} did not exit within {GUARD_S}s of SIGTERM\n{log_tail(self.log_path)}")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()

    def metrics(self) -> str:
        with urllib.request.urlopen(self.http + "/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name: str, **labels) -> float | None:
        """The value of the sample of `name` whose labels include `labels`."""
        for line in self.metrics().splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if all(have.get(k) == str(v) for k, v in labels.items()):
                return float(m.group(3))
        return None

    def wait(self, pred, what: str, timeout: float = GUARD_S, logs=()):
        """`wait_for` that also fails if the process died, with its log."""

        def check():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}\n{log_tail(self.log_path)}")
            return pred()

        return wait_for(check, what, timeout=timeout, logs=[self, *logs])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def geohash(lat: float, lon: float, precision: int) -> str:
    """The standard geohash (base32, longitude bit first)."""
    alphabet = "0123456789bcdefghjkmnpqrstuvwxyz"
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    out, bits, ch, even = [], 0, 0, True
    while len(out) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            if lon >= mid:
                ch, lon_lo = (ch << 1) | 1, mid
            else:
                ch, lon_hi = ch << 1, mid
        else:
            mid = (lat_lo + lat_hi) / 2
            if lat >= mid:
                ch, lat_lo = (ch << 1) | 1, mid
            else:
                ch, lat_hi = ch << 1, mid
        even = not even
        bits += 1
        if bits == 5:
            out.append(alphabet[ch])
            bits, ch = 0, 0
    return "".join(out)


# --------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------


class TopicReader:
    """Reads every partition of a topic from the beginning, incrementally
    (`read()` returns what arrived so far), read_committed."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "strom-compat-unused",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 100,
            }
        )
        md = wait_for(
            lambda: (t := self.consumer.list_topics(topic, timeout=10).topics.get(topic)) is not None
            and t.error is None
            and t.partitions
            and t,
            f"topic {topic} in metadata",
        )
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        self.records: list = []

    def read(self) -> list:
        """Polls what is there now; returns every record read so far as
        (key, value, headers) with the value JSON-decoded when it is JSON."""
        from confluent_kafka import KafkaError, KafkaException

        while True:
            batch = self.consumer.consume(500, timeout=0.2)
            if not batch:
                return self.records
            for m in batch:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                raw = m.value()
                try:
                    value = json.loads(raw) if raw is not None else None
                except ValueError:
                    value = raw
                key = m.key().decode() if m.key() is not None else None
                headers = {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])}
                self.records.append((key, value, headers))

    def close(self) -> None:
        self.consumer.close()
