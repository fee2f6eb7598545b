"""Harness for the real-client compatibility suite: runs `strom serve`.

One broker per test module (module-scoped fixture `broker`), on a fresh temp
data dir and free loopback ports. Tests use unique topic names (see
`compat.unique_topic`). When a test fails, the part of the broker's stderr log
written while that test ran is attached to its report.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 60.0  # failure guard only
STOP_TIMEOUT_S = 30.0  # failure guard only
LOG_EXCERPT_BYTES = 24_000


def strom_bin() -> Path:
    env = os.environ.get("STROM_BIN")
    path = Path(env) if env else REPO / "target" / "debug" / "strom"
    if not path.is_file():
        pytest.exit(
            f"strom binary not found at {path}: run `cargo build -p strom --locked` "
            "or set STROM_BIN (tests/compat/run.sh does the build)",
            returncode=2,
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A `strom serve` process with restart/stop control; `config`, if given, is
    the text of a TOML file passed with `--config` (flags still set the data dir,
    the PLAINTEXT listener on `port` and the HTTP address); `args` are more flags
    (`--pipelines DIR`)."""

    def __init__(self, workdir: Path, config: str | None = None, args=()):
        self.workdir = workdir
        self.args = list(args)
        self.config_path = None
        if config is not None:
            self.config_path = workdir / "strom.toml"
            self.config_path.write_text(config)
        self.data_dir = workdir / "data"
        self.data_dir.mkdir()
        self.log_path = workdir / "strom.log"
        self.port = free_port()
        self.http_port = free_port()
        self.registry_port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def registry_url(self) -> str:
        """The schema registry (Confluent's REST API) of this broker."""
        return f"http://{self.host}:{self.registry_port}"

    def start(self) -> None:
        assert self.proc is None, "broker already running"
        self.starts += 1
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== harness: start #{self.starts} =====\n".encode())
        self._log.flush()
        cmd = [
            str(strom_bin()),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--kafka-addr",
            self.bootstrap,
            "--http-addr",
            f"{self.host}:{self.http_port}",
            "--schema-registry-addr",
            f"{self.host}:{self.registry_port}",
        ]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        cmd += self.args
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no attempt"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"strom exited with {code} during startup\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
                # The schema registry's port is bound before the broker starts, so
                # its first requests wait in the backlog until it serves.
                with urllib.request.urlopen(self.http + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
                    last = f"/readyz status {r.status}"
            except (OSError, urllib.error.URLError) as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError(
            f"strom not ready after {START_TIMEOUT_S}s (last: {last})\n{self.log_tail()}"
        )

    def stop(self, kill: bool = False) -> int:
        """Stops the broker (SIGTERM and wait, or SIGKILL); returns the exit code."""
        assert self.proc is not None, "broker not running"
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"strom did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n{self.log_tail()}"
            )
        finally:
            self._log.close()
            self._log = None
        return code

    def restart(self, kill: bool = False) -> int:
        """Stops (SIGTERM, or SIGKILL if kill) and starts again on the same
        data dir and ports. Returns the exit code of the stopped process."""
        code = self.stop(kill=kill)
        self.start()
        return code

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return "(log removed)"
        if len(data) > LOG_EXCERPT_BYTES:
            data = b"[... cut ...]\n" + data[-LOG_EXCERPT_BYTES:]
        return data.decode("utf-8", "replace")

    def log_tail(self) -> str:
        return self.log_since(max(0, self.log_size() - LOG_EXCERPT_BYTES))


class ExternalBroker:
    """An already running broker (STROM_COMPAT_BOOTSTRAP=host:port), e.g. to
    check the suite itself against Apache Kafka. It cannot be restarted:
    tests that need that are skipped."""

    def __init__(self, bootstrap: str):
        self.host, port = bootstrap.rsplit(":", 1)
        self.port = int(port)
        self.proc = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def restart(self, kill: bool = False) -> int:
        pytest.skip("external broker (STROM_COMPAT_BOOTSTRAP): cannot restart it")

    def stop(self, kill: bool = False) -> int:
        pytest.skip("external broker (STROM_COMPAT_BOOTSTRAP): cannot stop it")


@pytest.fixture(scope="module")
def broker(request):
    external = os.environ.get("STROM_COMPAT_BOOTSTRAP")
    if external:
        yield ExternalBroker(external)
        return
    with running_broker(request) as b:
        yield b


@contextlib.contextmanager
def running_broker(request, config=None, args=None):
    """Runs a `strom serve` for a module-scoped fixture: `config(workdir)` returns
    the TOML text (or None), `args(workdir)` more flags; the broker log is
    attached to failing tests, and a graceful stop must exit 0."""
    workdir = Path(tempfile.mkdtemp(prefix="strom-compat-"))
    b = Broker(workdir, config(workdir) if config else None, args(workdir) if args else ())
    b.start()
    request.node._strom_broker = b
    code = 0
    try:
        yield b
        if b.proc is not None:
            code = b.stop()
        # A graceful stop must be clean; anything else is a broker bug.
        assert code == 0, f"strom exited with {code} on SIGTERM\n{b.log_tail()}"
    finally:
        if b.proc is not None:
            b.stop(kill=True)
        if os.environ.get("STROM_COMPAT_KEEP"):
            print(f"\nkept broker dir {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory) -> Path:
    """A temp directory for the module's servers, pipelines and logs."""
    return tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))


@pytest.fixture(scope="module")
def redis_server(workdir):
    """A redis-server of the module's own (sink_servers.RedisServer)."""
    from sink_servers import RedisServer

    r = RedisServer(workdir / "redis")
    r.start()
    yield r
    r.stop()


@pytest.fixture
def pipelines():
    """`strom pipeline run` processes (sink_servers.PipelineProcess) a test starts;
    killed at its end if still running."""
    started: list = []
    yield started
    for p in started:
        p.close()


@pytest.fixture
def postgres():
    """A PostgreSQL cluster of its own (sink_servers.PostgresServer) for one test."""
    from sink_servers import PostgresServer

    pg = PostgresServer()
    pg.start()
    yield pg
    pg.stop()
    pg.remove()


@pytest.fixture(autouse=True)
def _broker_log_mark(request):
    """Remembers where the broker log stood when the test started."""
    mod = request.node.parent
    while mod is not None and not isinstance(mod, pytest.Module):
        mod = mod.parent
    request.node._strom_log_mark = None
    if mod is not None and hasattr(mod, "_strom_broker"):
        request.node._strom_log_mark = (mod._strom_broker, mod._strom_broker.log_size())
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("call", "setup", "teardown"):
        mod = item.parent
        while mod is not None and not isinstance(mod, pytest.Module):
            mod = mod.parent
        b = getattr(mod, "_strom_broker", None) if mod is not None else None
        if b is None:
            return
        mark = getattr(item, "_strom_log_mark", None)
        size = b.log_size()
        start = mark[1] if mark else 0
        # Module-scoped fixtures (which may have done the work) run before the
        # mark is taken: keep some context from before the test too.
        start = max(0, min(start, size - 8000))
        rep.sections.append((f"strom log ({b.log_path})", b.log_since(start)))
