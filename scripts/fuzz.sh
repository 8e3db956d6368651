#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of hostile input (docs/fuzzing.md): the config parser,
# the Traefik /metrics page parser and the Prometheus answer decoder, each for a bounded time.
#
#   bash scripts/fuzz.sh                       # every target, FUZZ_SECONDS (20) each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh config
#
# Installs cargo-fuzz (pinned) into the git-ignored .tools/cargo when no such version is on
# the PATH. Builds on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z
# flags, and --sanitizer none leaves out AddressSanitizer (which needs a nightly std); the
# coverage instrumentation (SanitizerCoverage) is all stable codegen flags. Each target runs on
# its committed corpus (fuzz/corpus/TARGET, read only) with the inputs it finds written to a
# scratch corpus outside git (FUZZ_SCRATCH, default a fresh temporary directory), so the tree
# stays clean. A crash fails the run and names the input that crashed (fuzz/artifacts/TARGET/).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config traefik_page prometheus_decode)
target_dir=${FUZZ_TARGET_DIR:-$root/target/fuzz}
scratch=${FUZZ_SCRATCH:-$(mktemp -d)}

log() { printf 'fuzz: %s\n' "$*" >&2; }

export PATH="$root/.tools/cargo/bin:$PATH"
have_cargo_fuzz() {
  local out
  out=$(cargo fuzz --version 2>/dev/null) && [[ $out == *" $CARGO_FUZZ_VERSION"* ]]
}
if have_cargo_fuzz; then
  log "cargo-fuzz $CARGO_FUZZ_VERSION already installed"
else
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $root/.tools/cargo (a few minutes)"
  cargo install --quiet --locked --root "$root/.tools/cargo" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  have_cargo_fuzz || { log "cargo-fuzz installed but does not report $CARGO_FUZZ_VERSION"; exit 1; }
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
cd "$root/fuzz"

start=$(date +%s)
log "building ${targets[*]} (instrumented, release with debug assertions)"
if [ ${#targets[@]} -eq 1 ]; then
  cargo fuzz build --sanitizer none --target-dir "$target_dir" "${targets[0]}"
else
  cargo fuzz build --sanitizer none --target-dir "$target_dir"
fi
log "built in $(( $(date +%s) - start ))s"

passed=0
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "artifacts/$t"
  out="$scratch/$t.log"
  log "$t: ${seconds}s on fuzz/corpus/$t (new inputs go to $scratch/$t)"
  set +e
  cargo fuzz run --sanitizer none --target-dir "$target_dir" "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 > "$out" 2>&1
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
    [ -z "$crash" ] || log "reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none $t ${crash#"$root/fuzz/"}"
  else
    passed=$((passed + 1))
    echo "fuzz: $t: ${runs:-?} runs in ${seconds}s, cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?} (inputs/size)"
  fi
done
log "total $(( $(date +%s) - start ))s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
