#!/usr/bin/env bash
# Runs the real-client compatibility suite (kcat, confluent-kafka,
# kafka-python, KafkaJS) against `strom serve`.
#   tests/compat/run.sh            # builds target/debug/strom, runs everything
#   STROM_BIN=/path/to/strom tests/compat/run.sh -k kcat   # extra args go to pytest
# Installs the clients first (install.sh, fast when already done) unless
# STROM_COMPAT_SKIP_INSTALL=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ "${STROM_COMPAT_SKIP_INSTALL:-0}" != "1" ]; then
    "$here/install.sh" >/dev/null
fi

if [ -z "${STROM_BIN:-}" ] && [ -z "${STROM_COMPAT_BOOTSTRAP:-}" ]; then
    (cd "$repo" && cargo build -p strom --locked)
    export STROM_BIN="$repo/target/debug/strom"
fi

cd "$here"
exec "$here/.venv/bin/python" -m pytest -c "$here/pytest.ini" "$@"
