#!/usr/bin/env bash
# Runs every check and test strom has, installing what they need first.
# Usage: ./test.sh   (the README's test command; .ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")"

# Nothing beyond the Rust toolchain is needed yet; later suites (real Kafka clients)
# install their packages here.
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
