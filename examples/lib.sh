# examples/lib.sh: what every example's run.sh shares. Source it, do not run it:
#
#     here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#     . "$here/../lib.sh"
#     ensure_strom; ensure_postgres; start_pipeline "$here/pipeline.yaml"
#
# Sourcing sets STROM_REPO (the repository) and EXAMPLE_WORK (logs, data, state: a new
# directory under /tmp removed at exit, or $STROM_EXAMPLE_DATA, kept), and installs a
# trap that, when the script exits (Ctrl-C included), stops what these functions
# started — and only that: a broker, Redis or PostgreSQL that was already running is
# used and left alone.
#
# The function names below are stable: every example's run.sh uses them.
#
#   example_log MSG...            prints "==> MSG" on stderr
#   example_die MSG...            prints MSG and exits 1
#   strom_bin                     sets STROM, the strom binary: $STROM_BIN, else
#                                 `cargo build --release -p strom` and its target/release/strom
#   port_open HOST PORT           true when something accepts TCP connections there
#   free_port [FROM]              prints a free 127.0.0.1 port, searching from FROM (20000)
#   http_ok URL                   true when URL answers 2xx (curl, else bash's /dev/tcp)
#   start_background NAME CMD...  runs CMD in the background (in its own session, so
#                                 that Ctrl-C reaches only the script), output to
#                                 $EXAMPLE_WORK/NAME.log, stopped (SIGTERM) at exit;
#                                 sets BACKGROUND_PID
#   wait_until NAME SECS CMD...   polls CMD until it succeeds; fails after SECS, or at
#                                 once if the background process NAME has exited (its
#                                 log tail is shown)
#   ensure_strom                  a Kafka-protocol broker at $STROM_BOOTSTRAP
#                                 (127.0.0.1:9092): used if one listens, else
#                                 `strom serve` is started there (data in EXAMPLE_WORK;
#                                 HTTP at $STROM_HTTP_ADDR, 127.0.0.1:9644; schema registry
#                                 at $STROM_SCHEMA_REGISTRY_ADDR, 127.0.0.1:8081)
#   ensure_redis                  Redis at $STROM_SINK_REDIS_URL (redis://127.0.0.1:6379),
#                                 else redis-server on a free port; exports
#                                 STROM_SINK_REDIS_URL and STROM_SINK_REDIS_GEO_URL
#   ensure_postgres               PostgreSQL at $STROM_SINK_POSTGRES_URL
#                                 (postgresql://postgres@127.0.0.1:5432/postgres), else
#                                 a new cluster (initdb, pg_ctl from
#                                 /usr/lib/postgresql/*/bin) on a free port; exports
#                                 STROM_SINK_POSTGRES_URL
#   ensure_elasticsearch          an Elasticsearch/OpenSearch at $STROM_SINK_ELASTICSEARCH_URL
#                                 (http://127.0.0.1:9200), else osmem-server (an in-memory
#                                 OpenSearch-compatible server, `pip install
#                                 osmem-server`; the test suite's venv has it) on a free
#                                 port, else a warning (the output then holds its input
#                                 with its circuit open until one is reachable); exports
#                                 STROM_SINK_ELASTICSEARCH_URL
#   ensure_webhook_receiver       the push and SMS webhooks: $STROM_SINK_PUSH_NOTIFICATION_URL
#                                 and $STROM_SINK_SMS_FALLBACK_URL when both are set, else
#                                 a small receiver (python3) on a free port from 9800 that
#                                 answers 200 and writes one line per request, "PATH BODY",
#                                 to $EXAMPLE_WORK/webhook-receiver.log; exports both URLs
#                                 (http://127.0.0.1:PORT/push and /sms) and WEBHOOK_LOG
#   example_psql ARGS...          psql against $STROM_SINK_POSTGRES_URL
#   start_pipeline FILE [ADDR]    `strom pipeline run FILE` in the background, HTTP
#                                 (/metrics, /healthz) at ADDR (127.0.0.1 and a free port
#                                 from 9700); waits for /healthz; sets PIPELINE_HTTP,
#                                 PIPELINE_PID and PIPELINE_FILE
#   run_until_stopped GEN_PID WHAT
#                                 waits for the generator (background process GEN_PID)
#                                 to send its WHAT, then for the pipeline, which runs
#                                 until Ctrl-C; fails with the log of whichever stops
#
# Waits are failure guards: they poll for a state, and give up only after their limit.

STROM_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -n "${STROM_EXAMPLE_DATA:-}" ]; then
    mkdir -p "$STROM_EXAMPLE_DATA"
    EXAMPLE_WORK="$(cd "$STROM_EXAMPLE_DATA" && pwd)"
    EXAMPLE_KEEP=1
else
    EXAMPLE_WORK="$(mktemp -d /tmp/strom-example.XXXXXX)"
    # Readable by the postgres user, which runs a cluster started as root.
    chmod 755 "$EXAMPLE_WORK"
    EXAMPLE_KEEP=0
fi

# What these functions started, stopped in reverse order at exit.
declare -a _EXAMPLE_PIDS=()
declare -A _EXAMPLE_PID_OF=()
_EXAMPLE_PG_DATA=""
_EXAMPLE_PG_BIN=""
_EXAMPLE_PG_DIR_TEMP=""

example_log() {
    printf '==> %s\n' "$*" >&2
}

example_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# _example_cleanup: the exit trap. Stops background processes (SIGTERM, then SIGKILL
# after 30 s), then the PostgreSQL cluster, then removes the working directory unless it
# is kept.
_example_cleanup() {
    local status=$? i pid waited
    trap - EXIT INT TERM
    if [ "${#_EXAMPLE_PIDS[@]}" -gt 0 ] || [ -n "$_EXAMPLE_PG_DATA" ]; then
        example_log "stopping what this script started"
    fi
    for ((i = ${#_EXAMPLE_PIDS[@]} - 1; i >= 0; i--)); do
        pid="${_EXAMPLE_PIDS[i]}"
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 300 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$_EXAMPLE_PG_DATA" ] && [ -f "$_EXAMPLE_PG_DATA/postmaster.pid" ]; then
        _pg_as_owner "$_EXAMPLE_PG_BIN/pg_ctl" -D "$_EXAMPLE_PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    if [ -n "$_EXAMPLE_PG_DIR_TEMP" ]; then
        rm -rf "$_EXAMPLE_PG_DIR_TEMP"
    fi
    if [ "$EXAMPLE_KEEP" = 1 ]; then
        example_log "kept $EXAMPLE_WORK"
    else
        rm -rf "$EXAMPLE_WORK"
    fi
    exit "$status"
}
trap _example_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

strom_bin() {
    if [ -n "${STROM:-}" ]; then
        return 0
    fi
    if [ -n "${STROM_BIN:-}" ]; then
        [ -x "$STROM_BIN" ] || example_die "STROM_BIN=$STROM_BIN is not an executable file"
        STROM="$STROM_BIN"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 ||
        example_die "cargo not found: install Rust (https://rustup.rs), or set STROM_BIN to a strom binary"
    example_log "building strom: cargo build --release -p strom (the first build takes several minutes)"
    (cd "$STROM_REPO" && cargo build --release -p strom) >&2 ||
        example_die "the build failed (it needs cmake pkg-config libssl-dev libcurl4-openssl-dev: see README.md)"
    local target="${CARGO_TARGET_DIR:-target}"
    case "$target" in
        /*) ;;
        *) target="$STROM_REPO/$target" ;;
    esac
    STROM="$target/release/strom"
    [ -x "$STROM" ] || example_die "no binary at $STROM after the build"
}

port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

free_port() {
    local port="${1:-20000}" last
    last=$((port + 1000))
    while [ "$port" -lt "$last" ]; do
        if ! port_open 127.0.0.1 "$port"; then
            echo "$port"
            return 0
        fi
        port=$((port + 1))
    done
    example_die "no free port in ${1:-20000}..$last"
}

http_ok() {
    local url="$1"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null
        return
    fi
    # http://HOST:PORT/PATH with bash alone.
    local rest="${url#http://}" hostport path line
    hostport="${rest%%/*}"
    path="/${rest#*/}"
    [ "$rest" = "$hostport" ] && path=/
    (
        exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
        IFS= read -r -t 5 line <&3 || exit 1
        case "$line" in
            HTTP/*" 2"[0-9][0-9]*) exit 0 ;;
            *) exit 1 ;;
        esac
    ) 2>/dev/null
}

start_background() {
    local name="$1"
    shift
    local log="$EXAMPLE_WORK/$name.log"
    # A session of its own: Ctrl-C reaches only this script, whose trap stops the
    # processes in order (the pipeline before the broker it commits to).
    setsid "$@" </dev/null >>"$log" 2>&1 &
    BACKGROUND_PID=$!
    _EXAMPLE_PIDS+=("$BACKGROUND_PID")
    _EXAMPLE_PID_OF[$name]="$BACKGROUND_PID"
    example_log "started $name (pid $BACKGROUND_PID, log $log)"
}

wait_until() {
    local name="$1" secs="$2"
    shift 2
    local deadline=$((SECONDS + secs)) pid="${_EXAMPLE_PID_OF[$name]:-}"
    until "$@"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$EXAMPLE_WORK/$name.log" >&2 2>/dev/null || true
            example_die "$name exited (log: $EXAMPLE_WORK/$name.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            [ -n "$pid" ] && tail -n 30 "$EXAMPLE_WORK/$name.log" >&2 2>/dev/null
            example_die "$name: not ready after ${secs}s (waiting for: $*)"
        fi
        sleep 0.2
    done
}

ensure_strom() {
    strom_bin
    STROM_BOOTSTRAP="${STROM_BOOTSTRAP:-127.0.0.1:9092}"
    export STROM_BOOTSTRAP
    local host="${STROM_BOOTSTRAP%:*}" port="${STROM_BOOTSTRAP##*:}"
    if port_open "$host" "$port"; then
        example_log "using the broker already listening at $STROM_BOOTSTRAP"
        return 0
    fi
    local http="${STROM_HTTP_ADDR:-127.0.0.1:9644}"
    local registry="${STROM_SCHEMA_REGISTRY_ADDR:-127.0.0.1:8081}"
    mkdir -p "$EXAMPLE_WORK/strom-data"
    start_background strom-serve "$STROM" serve --data-dir "$EXAMPLE_WORK/strom-data" \
        --kafka-addr "$STROM_BOOTSTRAP" --http-addr "$http" --schema-registry-addr "$registry"
    wait_until strom-serve 60 http_ok "http://$http/readyz"
    example_log "strom serve: Kafka clients at $STROM_BOOTSTRAP, health at http://$http/healthz"
}

ensure_redis() {
    STROM_SINK_REDIS_URL="${STROM_SINK_REDIS_URL:-redis://127.0.0.1:6379}"
    local hostport="${STROM_SINK_REDIS_URL#redis://}"
    hostport="${hostport%%/*}"
    hostport="${hostport##*@}"
    if port_open "${hostport%:*}" "${hostport##*:}"; then
        example_log "using Redis at $STROM_SINK_REDIS_URL"
    else
        command -v redis-server >/dev/null 2>&1 ||
            example_die "no Redis at $STROM_SINK_REDIS_URL and no redis-server: apt-get install redis-server"
        local port
        port="$(free_port 6379)"
        mkdir -p "$EXAMPLE_WORK/redis"
        start_background redis-server redis-server --port "$port" --bind 127.0.0.1 \
            --dir "$EXAMPLE_WORK/redis" --save "" --appendonly no --daemonize no
        wait_until redis-server 30 port_open 127.0.0.1 "$port"
        STROM_SINK_REDIS_URL="redis://127.0.0.1:$port"
        example_log "redis-server: $STROM_SINK_REDIS_URL"
    fi
    STROM_SINK_REDIS_GEO_URL="${STROM_SINK_REDIS_GEO_URL:-$STROM_SINK_REDIS_URL}"
    export STROM_SINK_REDIS_URL STROM_SINK_REDIS_GEO_URL
}

ensure_elasticsearch() {
    STROM_SINK_ELASTICSEARCH_URL="${STROM_SINK_ELASTICSEARCH_URL:-http://127.0.0.1:9200}"
    export STROM_SINK_ELASTICSEARCH_URL
    if http_ok "$STROM_SINK_ELASTICSEARCH_URL/"; then
        example_log "using Elasticsearch/OpenSearch at $STROM_SINK_ELASTICSEARCH_URL"
        return 0
    fi
    local py="" candidate
    for candidate in "$STROM_REPO/tests/compat/.venv/bin/python" python3; do
        if "$candidate" -c 'import osmem_server' 2>/dev/null; then
            py="$candidate"
            break
        fi
    done
    if [ -z "$py" ]; then
        example_log "warning: no Elasticsearch at $STROM_SINK_ELASTICSEARCH_URL and no osmem-server" \
            "(pip install osmem-server): the elasticsearch output waits, circuit open, until one answers"
        return 0
    fi
    local port
    port="$(free_port 9200)"
    # osmem-server stops when its parent's stdin closes: a Python parent that waits.
    start_background osmem-server "$py" -c '
import signal, sys
from osmem_server import OsmemServer
server = OsmemServer.start(japanese=False, addr=sys.argv[1])
print(server.url, flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
server.close()
' "127.0.0.1:$port"
    STROM_SINK_ELASTICSEARCH_URL="http://127.0.0.1:$port"
    wait_until osmem-server 60 http_ok "$STROM_SINK_ELASTICSEARCH_URL/"
    example_log "osmem-server (OpenSearch-compatible, in memory): $STROM_SINK_ELASTICSEARCH_URL"
}

ensure_webhook_receiver() {
    WEBHOOK_LOG=""
    if [ -n "${STROM_SINK_PUSH_NOTIFICATION_URL:-}" ] && [ -n "${STROM_SINK_SMS_FALLBACK_URL:-}" ]; then
        example_log "webhooks: push to $STROM_SINK_PUSH_NOTIFICATION_URL, SMS to $STROM_SINK_SMS_FALLBACK_URL"
        export STROM_SINK_PUSH_NOTIFICATION_URL STROM_SINK_SMS_FALLBACK_URL WEBHOOK_LOG
        return 0
    fi
    command -v python3 >/dev/null 2>&1 ||
        example_die "no webhook URLs (STROM_SINK_PUSH_NOTIFICATION_URL, STROM_SINK_SMS_FALLBACK_URL) and no python3 to receive them"
    local port
    port="$(free_port 9800)"
    start_background webhook-receiver python3 -u -c '
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        print(self.path, body.decode("utf-8", "replace").replace("\n", " "), flush=True)
        self.answer()

    do_PUT = do_POST

    def do_GET(self):
        self.answer()

    def answer(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
' "$port"
    wait_until webhook-receiver 30 http_ok "http://127.0.0.1:$port/"
    STROM_SINK_PUSH_NOTIFICATION_URL="${STROM_SINK_PUSH_NOTIFICATION_URL:-http://127.0.0.1:$port/push}"
    STROM_SINK_SMS_FALLBACK_URL="${STROM_SINK_SMS_FALLBACK_URL:-http://127.0.0.1:$port/sms}"
    WEBHOOK_LOG="$EXAMPLE_WORK/webhook-receiver.log"
    export STROM_SINK_PUSH_NOTIFICATION_URL STROM_SINK_SMS_FALLBACK_URL WEBHOOK_LOG
    example_log "webhook receiver: push to $STROM_SINK_PUSH_NOTIFICATION_URL, SMS to $STROM_SINK_SMS_FALLBACK_URL (log $WEBHOOK_LOG)"
}

# _pg_bin: the newest /usr/lib/postgresql/<version>/bin, or nothing.
_pg_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

# _pg_as_owner CMD...: runs CMD as the postgres user when we are root (PostgreSQL
# refuses to run as root), else as ourselves.
_pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

example_psql() {
    local psql
    psql="$(command -v psql 2>/dev/null || true)"
    if [ -z "$psql" ]; then
        local bin
        bin="$(_pg_bin)" || true
        [ -n "$bin" ] || example_die "psql not found: apt-get install postgresql"
        psql="$bin/psql"
    fi
    "$psql" "$STROM_SINK_POSTGRES_URL" -X -v ON_ERROR_STOP=1 "$@"
}

ensure_postgres() {
    STROM_SINK_POSTGRES_URL="${STROM_SINK_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
    export STROM_SINK_POSTGRES_URL
    # -w: never ask for a password (a server that wants one is not ours to use).
    if PGCONNECT_TIMEOUT=5 example_psql -w -qAt -c 'SELECT 1' >/dev/null 2>&1; then
        example_log "using PostgreSQL at $STROM_SINK_POSTGRES_URL"
        return 0
    fi
    _EXAMPLE_PG_BIN="$(_pg_bin)" ||
        example_die "no PostgreSQL at $STROM_SINK_POSTGRES_URL and none installed: apt-get install postgresql"
    local dir="$EXAMPLE_WORK/postgres"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            # The postgres user cannot reach EXAMPLE_WORK: a temporary place instead.
            dir="$(mktemp -d /tmp/strom-example-pg.XXXXXX)"
            chown postgres "$dir"
            _EXAMPLE_PG_DIR_TEMP="$dir"
        fi
    fi
    _EXAMPLE_PG_DATA="$dir/data"
    if [ ! -f "$_EXAMPLE_PG_DATA/PG_VERSION" ]; then
        _pg_as_owner "$_EXAMPLE_PG_BIN/initdb" -D "$_EXAMPLE_PG_DATA" -A trust -U postgres \
            -E UTF8 --no-instructions >"$EXAMPLE_WORK/postgres-initdb.log" 2>&1 ||
            example_die "initdb failed: $EXAMPLE_WORK/postgres-initdb.log"
    fi
    local port
    port="$(free_port 5433)"
    _pg_as_owner setsid "$_EXAMPLE_PG_BIN/pg_ctl" -D "$_EXAMPLE_PG_DATA" -l "$dir/postgres.log" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" -w -t 60 start >/dev/null ||
        example_die "PostgreSQL did not start: $dir/postgres.log"
    STROM_SINK_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    example_log "PostgreSQL (a new cluster in $dir): $STROM_SINK_POSTGRES_URL"
}

start_pipeline() {
    local file="$1" addr="${2:-}" name
    [ -n "$addr" ] || addr="127.0.0.1:$(free_port 9700)"
    name="pipeline-$(basename "$(dirname "$file")")"
    start_background "$name" "$STROM" pipeline run "$file" \
        --bootstrap-servers "$STROM_BOOTSTRAP" --state-dir "$EXAMPLE_WORK/$name-state" \
        --http-addr "$addr"
    PIPELINE_PID="$BACKGROUND_PID"
    PIPELINE_FILE="$file"
    PIPELINE_HTTP="http://$addr"
    wait_until "$name" 120 http_ok "$PIPELINE_HTTP/healthz"
    example_log "$name: /metrics and /healthz at $PIPELINE_HTTP"
}

run_until_stopped() {
    local generator_pid="$1" what="$2" name
    name="pipeline-$(basename "$(dirname "$PIPELINE_FILE")")"
    if wait "$generator_pid"; then
        example_log "the generator sent its $what; the pipeline keeps running (Ctrl-C stops it)"
    else
        example_die "the generator failed: $EXAMPLE_WORK/generator.log"
    fi
    wait "$PIPELINE_PID" || true
    tail -n 30 "$EXAMPLE_WORK/$name.log" >&2 || true
    example_die "the pipeline exited: $EXAMPLE_WORK/$name.log"
}
