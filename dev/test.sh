#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the integration tests talk to
# (Tansu, kcat, tmux, the Python Kafka client, Prometheus and its Python parser, headless
# Chromium; each step is skipped when already present), then runs every test. CI runs this same script through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/install-test-deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo test --all-targets "$@"
cargo test --doc
