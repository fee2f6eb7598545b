#!/usr/bin/env bash
# Message delivery, with one command: strom serve, a webhook receiver for push and SMS,
# the pipeline, its chat-members table and chats from `strom generate messages`.
#
#   examples/message-delivery/run.sh                     # 20 events/s until Ctrl-C
#   RATE=200 KEYS=2000 examples/message-delivery/run.sh
#
# Event time runs faster than the clock by default (EVENT_INTERVAL_MS=1000 at 20
# events/s: 20 s of chatting per second), so a delivery waits 3 s for its first retry,
# a 5-minute latency window closes every 15 s and a conversation ends 90 s after its
# last message; EVENT_INTERVAL_MS=50 makes it real time. Settings (environment): RATE
# (20), COUNT (1000000), KEYS (chats, 200), SEED (42), INVALID_FRACTION (0.02),
# EVENT_INTERVAL_MS (1000), STROM_PIPELINE_KEYS (the content key, `k1=<base64 of 32
# bytes>`; a new random one by default), PIPELINE_HTTP_ADDR (default 127.0.0.1 and a
# free port from 9700), STROM_SINK_PUSH_NOTIFICATION_URL and STROM_SINK_SMS_FALLBACK_URL
# (default: a receiver this script starts), and those of examples/lib.sh (STROM_BIN,
# STROM_BOOTSTRAP, STROM_HTTP_ADDR, STROM_SCHEMA_REGISTRY_ADDR, STROM_EXAMPLE_DATA).
# Ctrl-C stops everything it started.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$here/../lib.sh"

rate="${RATE:-20}"
count="${COUNT:-1000000}"
chats="${KEYS:-200}"
seed="${SEED:-42}"
invalid="${INVALID_FRACTION:-0.02}"
interval="${EVENT_INTERVAL_MS:-1000}"
if [ -z "${STROM_PIPELINE_KEYS:-}" ]; then
    STROM_PIPELINE_KEYS="k1=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
fi
export STROM_PIPELINE_KEYS

ensure_strom
ensure_webhook_receiver
# The table first: the pipeline reads it as a global table.
"$STROM" generate chat-members --brokers "$STROM_BOOTSTRAP" --keys "$chats" --count "$chats" --seed "$seed" >&2
start_pipeline "$here/pipeline.yaml" "${PIPELINE_HTTP_ADDR:-}"
start_background generator "$STROM" generate messages --brokers "$STROM_BOOTSTRAP" \
    --rate "$rate" --count "$count" --keys "$chats" --seed "$seed" \
    --invalid-fraction "$invalid" --event-interval-ms "$interval"
generator_pid="$BACKGROUND_PID"
ws="${PIPELINE_HTTP/http:/ws:}"

cat <<INFO

Chats flow: strom generate messages -> topics incoming-messages, user-presence
  -> pipeline message-delivery-system: members, permission and spam checks, AES-GCM
  -> one delivery per recipient: online -> WebSocket /online_users, seen within the
     hour -> push webhook, others -> stored-messages until they come online
  -> confirmations -> read-receipts (and /receipts); no confirmation -> retries with
     backoff (1, 2, 4 minutes of event time), then the SMS webhook
  -> delivery-latency (5-minute windows per channel), conversation-sessions (30-minute gap)
$count events at $rate/s over $chats chats; event time advances ${interval} ms per event.

Watch it:
  open $PIPELINE_HTTP/                          (delivery states, latency, conversations, live)
  $STROM consume delivery-status --brokers $STROM_BOOTSTRAP --from end
  $STROM consume read-receipts --brokers $STROM_BOOTSTRAP --from end
  $STROM consume message-delivery-system-dlq --brokers $STROM_BOOTSTRAP --from beginning
  python3 -m websockets '$ws/online_users?key=u7'    (user u7's phone; pip install websockets)
  tail -f ${WEBHOOK_LOG:-<your webhook receiver>}   (push notifications and SMS)
  curl -s $PIPELINE_HTTP/metrics | grep strom_pipeline_sink_records_written_total

Logs: $EXAMPLE_WORK. Ctrl-C stops everything this script started.

INFO

run_until_stopped "$generator_pid" "$count events"
