#!/usr/bin/env bash
# Exactly-once payments, with one command: strom serve, PostgreSQL (with the
# account_balances table), the payment-processor pipeline and a payment generator.
#
#   examples/payments/run.sh                     # 200 payments/s until Ctrl-C
#   RATE=50 COUNT=2000 examples/payments/run.sh  # fewer, slower
#
# Settings (environment): RATE (payments/s, 200), COUNT (payments, 1000000), KEYS
# (accounts, 1000), INVALID_FRACTION (0.02: negative amounts), SEED (42),
# PIPELINE_HTTP_ADDR (the pipeline's /metrics; default 127.0.0.1 and a free port from
# 9700), and those of examples/lib.sh (STROM_BIN, STROM_BOOTSTRAP,
# STROM_SINK_POSTGRES_URL, STROM_EXAMPLE_DATA). Ctrl-C stops everything it started.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$here/../lib.sh"

rate="${RATE:-200}"
count="${COUNT:-1000000}"
keys="${KEYS:-1000}"
invalid="${INVALID_FRACTION:-0.02}"
seed="${SEED:-42}"

ensure_strom
ensure_postgres
example_psql -q -f "$here/schema.sql"
start_pipeline "$here/pipeline.yaml" "${PIPELINE_HTTP_ADDR:-}"
start_background generator "$STROM" generate payments --brokers "$STROM_BOOTSTRAP" \
    --rate "$rate" --count "$count" --keys "$keys" --invalid-fraction "$invalid" --seed "$seed"
generator_pid="$BACKGROUND_PID"

cat <<INFO

Payments flow: strom generate -> topic payments -> pipeline payment-processor
  -> topic payment-confirmations (every payment: completed, rejected or duplicate)
  -> PostgreSQL table account_balances (accounts with completed payments)
$count payments at $rate/s over $keys accounts, ${invalid} of them invalid.

Watch it from another terminal:
  open $PIPELINE_HTTP/                     (balances and confirmations, live)
  $STROM consume payment-confirmations --brokers $STROM_BOOTSTRAP --from end
  psql '$STROM_SINK_POSTGRES_URL' -c 'SELECT * FROM account_balances ORDER BY balance DESC LIMIT 10'
  curl -s $PIPELINE_HTTP/metrics | grep -E 'strom_pipeline_(operation|sink)_records'
  $STROM group describe payment-processor --brokers $STROM_BOOTSTRAP

Logs: $EXAMPLE_WORK. Ctrl-C stops everything this script started.

INFO

run_until_stopped "$generator_pid" "$count payments"
