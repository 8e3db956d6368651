#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of hostile input (docs/fuzzing.md): the config parser,
# the Traefik /metrics page parser and the Prometheus answer decoder, each for a bounded time.
#
#   bash scripts/fuzz.sh                       # every target, FUZZ_SECONDS (20) each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh config
#
# Builds with cargo alone, on the stable toolchain: the targets are libfuzzer-sys binaries and
# the coverage instrumentation cargo-fuzz would add (SanitizerCoverage) is made of stable codegen
# flags, given here; no sanitizer (AddressSanitizer needs nightly; the library forbids unsafe).
# FUZZ_PROFILE picks the cargo profile: `fuzz` (the default: opt-level 1, debug assertions and
# overflow checks, quick to build) or `release` (what cargo-fuzz builds, for long runs). Each
# target runs on its committed corpus (fuzz/corpus/TARGET, read only) with the inputs it finds
# written to a scratch corpus outside git (FUZZ_SCRATCH, default a fresh temporary directory),
# so the tree stays clean. A crash fails the run and names the input that crashed
# (fuzz/artifacts/TARGET/) with the command that replays it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config traefik_page prometheus_decode)
target_dir=${FUZZ_TARGET_DIR:-$root/target/fuzz}
scratch=${FUZZ_SCRATCH:-$(mktemp -d)}

log() { printf 'fuzz: %s\n' "$*" >&2; }

profile=${FUZZ_PROFILE:-fuzz}
triple=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes for `--sanitizer none` on Linux (cargo-fuzz 0.13).
instrument="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
instrument+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
instrument+=" -Cllvm-args=-sanitizer-coverage-pc-table"
instrument+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
instrument+=" -Cllvm-args=-sanitizer-coverage-stack-depth"
instrument+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Cdebug-assertions"
export CARGO_TERM_COLOR=never
cd "$root/fuzz"

start=$(date +%s)
log "building ${targets[*]} (instrumented, profile $profile)"
bin_args=()
for t in "${targets[@]}"; do bin_args+=(--bin "$t"); done
# --target: the flags reach the targets and the library, not build scripts and proc macros.
RUSTFLAGS="$instrument" cargo build --quiet --manifest-path "$root/fuzz/Cargo.toml" \
  --target "$triple" --target-dir "$target_dir" --profile "$profile" "${bin_args[@]}"
log "built in $(( $(date +%s) - start ))s"
case $profile in dev) out_dir="$target_dir/$triple/debug" ;; *) out_dir="$target_dir/$triple/$profile" ;; esac

passed=0
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "artifacts/$t"
  out="$scratch/$t.log"
  log "$t: ${seconds}s on fuzz/corpus/$t (new inputs go to $scratch/$t)"
  set +e
  "$out_dir/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
    -print_final_stats=1 "$scratch/$t" "corpus/$t" > "$out" 2>&1
  rc=$?
  set -e
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out" | tail -1)
  last=$(grep -E '^#[0-9]+' "$out" | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  if [ "$rc" -ne 0 ] || [ -n "$crash" ]; then
    failed=$((failed + 1))
    tail -40 "$out" >&2
    log "$t: FAILED (exit $rc); crashing input: ${crash:-none written, see $out}"
    [ -z "$crash" ] || log "reproduce: $out_dir/$t $root/fuzz/${crash#"$root/fuzz/"}"
  else
    passed=$((passed + 1))
    echo "fuzz: $t: ${runs:-?} runs in ${seconds}s, cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?} (inputs/size)"
  fi
done
log "total $(( $(date +%s) - start ))s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
