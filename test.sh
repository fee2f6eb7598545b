#!/usr/bin/env bash
# Runs every check and test strom has, installing what they need first.
# Usage: ./test.sh   (the README's test command; .ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")"

rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The CLI's Kafka client, rdkafka with `cmake-build`, compiles librdkafka from source:
# it needs cmake, curl's headers (a known upstream build quirk), and OpenSSL's headers
# with pkg-config (TLS, SASL/SCRAM and SCRAM credential salting). Idempotent.
apt_needed=()
command -v cmake >/dev/null 2>&1 || apt_needed+=(cmake)
command -v pkg-config >/dev/null 2>&1 || apt_needed+=(pkg-config)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || apt_needed+=(libcurl4-openssl-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || apt_needed+=(libssl-dev)
if [ "${#apt_needed[@]}" -gt 0 ]; then
    echo "== install ${apt_needed[*]} (apt)"
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo_cmd=(sudo)
    fi
    if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${apt_needed[@]}"; then
        "${sudo_cmd[@]}" apt-get update
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${apt_needed[@]}"
    fi
fi
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
echo "== strom-streams' optional features: schema-registry serdes (registry), OTLP export (otel)"
# Both features in one build: the tests that need them are [[test]]s with
# required-features, which the workspace run above skips.
cargo clippy -p strom-streams --features registry,otel --all-targets --locked -- -D warnings
cargo test -p strom-streams --features registry,otel --locked \
    --test registry_serdes --test otel_export
echo "== real clients against strom serve (tests/compat)"
# The strom binary cargo test just built; no second build.
STROM_COMPAT_SKIP_INSTALL=1 STROM_BIN="$PWD/target/debug/strom" tests/compat/run.sh
