#!/usr/bin/env bash
# Runs every check and test strom has, installing what they need first.
# Usage: ./test.sh   (the README's test command; .ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")"

rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The real-client suite's clients: kcat (apt), confluent-kafka, kafka-python (pip, in
# tests/compat/.venv), KafkaJS (npm). Idempotent; fast when already installed.
echo "== install real Kafka clients"
tests/compat/install.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== real clients against strom serve (tests/compat)"
# The strom binary cargo test just built; no second build.
STROM_COMPAT_SKIP_INSTALL=1 STROM_BIN="$PWD/target/debug/strom" tests/compat/run.sh
