#!/usr/bin/env bash
# Runs every benchmark of issue 6, bounded in time, on loopback; installs what is missing
# (scripts/setup.sh, plus wrk and nginx from Debian), builds the release binary once.
#   1. decision quality, by simulation: cargo run --release --example decision_quality
#      (tables on stdout; bench/RESULTS.md holds the reading)
#   2. bench/fault_to_zero.sh        -> bench/results/2-fault-to-zero.md
#   3. bench/provider_throughput.sh  -> bench/results/3-provider.md
#   4. bench/scale.sh                -> bench/results/4-scale.md
# Usage: scripts/bench.sh [--quick] [--only 1,2,3,4]
#   --quick   fewer repetitions and shorter measurements (decision_quality --rollouts 100,
#             5 fault repetitions per source, 1 wrk round of 5 s, 30 s scale measurements)
# Exits 0 when every benchmark ran (they report; none asserts a speed), 1 if one failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
only=1,2,3,4
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
q=()
[ $quick = 1 ] && q=(--quick)
log() { printf 'bench: %s\n' "$*" >&2; }
wants() { [[ ",$only," == *",$1,"* ]]; }

started=$SECONDS
bash scripts/setup.sh
log "cargo build --release"
cargo build --release --quiet
export BENCH_NO_BUILD=1

failed=()
summary=()
# run NAME LIMIT_SECONDS CMD...: runs one benchmark under a hard time limit (TERM, then KILL
# 30 s later; the benchmark scripts stop what they started on TERM).
run() {
  local name=$1 limit=$2 t0=$SECONDS rc=0
  shift 2
  log "== $name: $*"
  timeout --signal=TERM --kill-after=30s "$limit" "$@" || rc=$?
  if [ $rc -eq 0 ]; then
    summary+=("$(printf '%-28s %4ds' "$name" $((SECONDS - t0)))")
  else
    summary+=("$(printf '%-28s %4ds  FAILED (exit %d%s)' "$name" $((SECONDS - t0)) $rc "$([ $rc = 124 ] && echo ', time limit' || true)")")
    failed+=("$name")
  fi
}

if wants 1; then
  if [ -f bench/decision_quality.rs ]; then
    dq_args=()
    [ $quick = 1 ] && dq_args=(-- --rollouts 100)
    run "1 decision quality" 1200 cargo run --release --quiet --example decision_quality "${dq_args[@]}"
  else
    log "1 decision quality: bench/decision_quality.rs does not exist yet; skipped"
    summary+=("$(printf '%-28s   skipped (bench/decision_quality.rs missing)' "1 decision quality")")
  fi
fi
wants 2 && run "2 fault to zero" 1200 bench/fault_to_zero.sh "${q[@]}"
wants 3 && run "3 provider throughput" 600 bench/provider_throughput.sh "${q[@]}"
wants 4 && run "4 scale" 1200 bench/scale.sh "${q[@]}"

log "done in $((SECONDS - started)) s:"
for line in "${summary[@]}"; do printf '  %s\n' "$line" >&2; done
wants 2 && log "results: bench/results/2-fault-to-zero.md"
wants 3 && log "results: bench/results/3-provider.md"
wants 4 && log "results: bench/results/4-scale.md"
[ ${#failed[@]} -eq 0 ] || { log "failed: ${failed[*]}"; exit 1; }
