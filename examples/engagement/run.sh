#!/usr/bin/env bash
# User engagement analytics, with one command: strom serve, Redis, an
# Elasticsearch-compatible server, the pipeline, and views from `strom generate`.
#
#   examples/engagement/run.sh                     # 200 views/s until Ctrl-C
#   RATE=1000 KEYS=5000 examples/engagement/run.sh
#
# Event time runs faster than the clock by default (EVENT_INTERVAL_MS=100 at 200
# views/s: 20 s of viewing per second), so a 5-minute window closes every 15 s;
# EVENT_INTERVAL_MS=5 makes it real time. Settings (environment): RATE (200), COUNT
# (1000000), KEYS (users, 10000), SEED (42), INVALID_FRACTION (0.01), EVENT_INTERVAL_MS
# (100), PIPELINE_HTTP_ADDR (default 127.0.0.1 and a free port from 9700), and those of
# examples/lib.sh (STROM_BIN, STROM_BOOTSTRAP, STROM_SINK_REDIS_URL,
# STROM_SINK_ELASTICSEARCH_URL, STROM_EXAMPLE_DATA). Ctrl-C stops everything it started.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$here/../lib.sh"

rate="${RATE:-200}"
count="${COUNT:-1000000}"
keys="${KEYS:-10000}"
seed="${SEED:-42}"
invalid="${INVALID_FRACTION:-0.01}"
interval="${EVENT_INTERVAL_MS:-100}"

ensure_strom
ensure_redis
ensure_elasticsearch
# The tables first: the pipeline reads them as global tables.
"$STROM" generate content-metadata --brokers "$STROM_BOOTSTRAP" --count 500 --seed "$seed" >&2
"$STROM" generate user-profiles --brokers "$STROM_BOOTSTRAP" --keys "$keys" --count "$keys" --seed "$seed" >&2
start_pipeline "$here/pipeline.yaml" "${PIPELINE_HTTP_ADDR:-}"
start_background generator "$STROM" generate views --brokers "$STROM_BOOTSTRAP" \
    --rate "$rate" --count "$count" --keys "$keys" --seed "$seed" \
    --invalid-fraction "$invalid" --event-interval-ms "$interval"
generator_pid="$BACKGROUND_PID"

cat <<INFO

Views flow: strom generate views -> topic user-views -> pipeline user-engagement-analytics
  -> 5-minute windows per title + content metadata -> topic processed-analytics,
     index user-engagement, WebSocket /top-titles
  -> 30-minute sessions of long views per user -> affinity, recommendations
     -> Redis rec:{user_id} (2-hour TTL)
$count views at $rate/s from $keys users; event time advances ${interval} ms per view.

Watch it:
  open $PIPELINE_HTTP/                     (top titles, live)
  $STROM consume processed-analytics --brokers $STROM_BOOTSTRAP --from end
  redis-cli -u $STROM_SINK_REDIS_URL --scan --pattern 'rec:*' | head
  redis-cli -u $STROM_SINK_REDIS_URL get rec:u1
  curl -s '$STROM_SINK_ELASTICSEARCH_URL/user-engagement/_search?size=3'
  curl -s $PIPELINE_HTTP/metrics | grep strom_pipeline_sink_records_written_total

Logs: $EXAMPLE_WORK. Ctrl-C stops everything this script started.

INFO

run_until_stopped "$generator_pid" "$count views"
