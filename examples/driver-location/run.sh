#!/usr/bin/env bash
# Driver location, ETAs, matching and surge, with one command: strom serve, Redis, the
# pipeline, and drivers and ride requests from `strom generate`.
#
#   examples/driver-location/run.sh                    # 100 positions/s, 2 requests/s, until Ctrl-C
#   RATE=500 DRIVERS=1000 examples/driver-location/run.sh
#
# Event time runs ten times faster than the clock by default (EVENT_INTERVAL_MS=100 at
# 100 positions/s: 10 s of driving per second), so a 10-minute surge window closes
# every 6 s; EVENT_INTERVAL_MS=10 makes it real time. Requests follow the same clock.
# Settings (environment): RATE (100), COUNT (1000000), DRIVERS (200), REQUEST_RATE (2),
# SEED (42), INVALID_FRACTION (0.01), EVENT_INTERVAL_MS (100), PIPELINE_HTTP_ADDR
# (default 127.0.0.1 and a free port from 9700), and those of examples/lib.sh
# (STROM_BIN, STROM_BOOTSTRAP, STROM_HTTP_ADDR, STROM_SCHEMA_REGISTRY_ADDR,
# STROM_SINK_REDIS_URL, STROM_EXAMPLE_DATA). Ctrl-C stops everything it started.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$here/../lib.sh"

rate="${RATE:-100}"
count="${COUNT:-1000000}"
drivers="${DRIVERS:-200}"
request_rate="${REQUEST_RATE:-2}"
seed="${SEED:-42}"
invalid="${INVALID_FRACTION:-0.01}"
interval="${EVENT_INTERVAL_MS:-100}"

# Both generators on one event-time clock: event ms per wall second, from the same start.
clock_ms_per_s="$(awk -v r="$rate" -v i="$interval" 'BEGIN { print r * i }')"
request_interval="$(awk -v c="$clock_ms_per_s" -v r="$request_rate" 'BEGIN { print c / r }')"
request_count="$(awk -v n="$count" -v r="$rate" -v q="$request_rate" 'BEGIN { printf "%d", n * q / r + 1 }')"
start_ms="$(($(date +%s) * 1000))"

ensure_strom
ensure_redis
start_pipeline "$here/pipeline.yaml" "${PIPELINE_HTTP_ADDR:-}"
start_background requests "$STROM" generate ride-requests --brokers "$STROM_BOOTSTRAP" \
    --rate "$request_rate" --count "$request_count" --seed "$seed" --start-ms "$start_ms" \
    --invalid-fraction "$invalid" --event-interval-ms "$request_interval"
start_background generator "$STROM" generate driver-locations --brokers "$STROM_BOOTSTRAP" \
    --rate "$rate" --count "$count" --keys "$drivers" --seed "$seed" --start-ms "$start_ms" \
    --invalid-fraction "$invalid" --event-interval-ms "$interval"
generator_pid="$BACKGROUND_PID"

cat <<INFO

Drivers flow: strom generate driver-locations -> topic driver-locations -> pipeline driver-location-tracking
  -> validated (bad coordinates, jumps -> topic driver-location-tracking-dlq), geohash, region
  -> ETAs to the requests within 5 km of the last minute, availability, matching
     -> Redis GEO drivers:{region}, topics driver-availability-updates, eta-updates,
        ride-matches, WebSocket /driver-updates
Requests flow: strom generate ride-requests -> topic ride-requests -> the ETAs' table, and
  10-minute windows per region every minute -> surge -> topic surge-pricing, WebSocket /surge
$count positions at $rate/s from $drivers drivers, $request_rate requests/s; event time
advances ${interval} ms per position.

Watch it:
  open $PIPELINE_HTTP/                     (the map: drivers, surge by region, matches)
  $STROM consume ride-matches --brokers $STROM_BOOTSTRAP --from end
  $STROM consume surge-pricing --brokers $STROM_BOOTSTRAP --from end
  redis-cli -u $STROM_SINK_REDIS_URL --scan --pattern 'drivers:*'
  redis-cli -u $STROM_SINK_REDIS_URL geosearch drivers:9q8yy fromlonlat -122.42 37.77 byradius 2 km asc withdist
  curl -s $PIPELINE_HTTP/metrics | grep strom_pipeline_sink_records_written_total

Logs: $EXAMPLE_WORK. Ctrl-C stops everything this script started.

INFO

run_until_stopped "$generator_pid" "$count positions"
