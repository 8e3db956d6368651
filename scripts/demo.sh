#!/usr/bin/env bash
# canary-pilot demo on loopback, on the embedded defaults (canary-pilot reads Traefik's own
# /metrics; no Prometheus needed). It installs what is missing, builds, starts Traefik, two demo
# backends, canary-pilot and a traffic generator, then shows a good release (v2) promoted and a
# bad one (v3, 40 % errors) rolled back, live, prints a summary and stops everything it started.
#   scripts/demo.sh          run and clean up (exit 0 when both releases ended as expected)
#   scripts/demo.sh --keep   leave the stack running afterwards and print its URLs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

keep=0
for arg in "$@"; do
  case $arg in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

# The CLI's text fits COLUMNS when piped, as it is here: the terminal's width, or whole lines
# when the demo's output goes to a file.
if [ -t 1 ]; then export COLUMNS=${COLUMNS:-$(tput cols 2>/dev/null || echo 80)}; else unset COLUMNS; fi

bash scripts/setup.sh
# DEMO_BIN: a canary-pilot already built (the suite passes its own build).
if [ -n "${DEMO_BIN:-}" ]; then
  bin=$DEMO_BIN
else
  echo "demo: building canary-pilot"
  cargo build --quiet
  bin=$PWD/target/debug/canary-pilot
fi
traefik=$PWD/.tools/venv/bin/traefik

work=$(mktemp -d "${TMPDIR:-/tmp}/canary-pilot-demo.XXXXXX")
cleanup() { stop_all; [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r web api metrics pilot blue green < <(free_ports 6)
sed -e "s/@PILOT@/$pilot/g" -e "s/@BLUE@/$blue/g" -e "s/@GREEN@/$green/g" -e "s/@METRICS@/$metrics/g" \
    -e "s#@STATE@#$work/state.json#g" traefik/demo/canary-pilot.toml.in > "$work/canary-pilot.toml"
sed -e "s/@WEB@/$web/g" -e "s/@API@/$api/g" -e "s/@METRICS@/$metrics/g" -e "s/@PILOT@/$pilot/g" \
    traefik/demo/traefik.yml.in > "$work/traefik.yml"

# backend SLOT VERSION ERROR_RATE: (re)deploys a version on a slot, as a Swarm update would.
declare -A backend_pid
backend() {
  local slot=$1 version=$2 rate=$3 port
  port=$([ "$slot" = blue ] && echo "$blue" || echo "$green")
  if [ -n "${backend_pid[$slot]:-}" ]; then kill "${backend_pid[$slot]}" 2>/dev/null || true; wait "${backend_pid[$slot]}" 2>/dev/null || true; fi
  start_bg "$work/$slot.log" "$bin" demo-backend --listen "127.0.0.1:$port" --version "$version" --error-rate "$rate" --latency-ms 5
  backend_pid[$slot]=$!
  wait_http "http://127.0.0.1:$port/_health"
}

backend blue v1 0.01
backend green v2 0.01
start_bg "$work/canary-pilot.log" "$bin" serve --config "$work/canary-pilot.toml"
start_bg "$work/traefik.log" "$traefik" "--configFile=$work/traefik.yml"
wait_http "http://127.0.0.1:$pilot/readyz"
export CANARY_PILOT_SERVER="http://127.0.0.1:$pilot"
for _ in $(seq 100); do
  curl -fs -o /dev/null -H "Host: api.localhost" "http://127.0.0.1:$web/" && break
  sleep 0.1
done
traffic_for=10m
start_bg "$work/traffic.log" "$bin" demo-traffic --url "http://127.0.0.1:$web/" --host api.localhost \
  --rps 100 --workers 8 --duration "$traffic_for" --report 2s
echo "demo: Traefik on 127.0.0.1:$web, 100 requests/s of traffic for $traffic_for at most (it stops by itself, or with the demo); canary-pilot judges from Traefik's /metrics"

phase() { "$bin" status api --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])'; }

# watch LIMIT: prints the status line and new events as they change, until the release ends;
# leaves the final phase (or "timeout") in $outcome.
seen_events=0
outcome=""
# indented N CMD...: the CLI's output indented by N spaces, still within the width.
indented() { local n=$1; shift; COLUMNS=$(( ${COLUMNS:-1000} - n )) "$bin" "$@" | sed "s/^/$(printf '%*s' "$n" '')/"; }
events_count() { "$bin" --output json events api --limit 1000 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))'; }
watch_release() {
  local limit=$1 start=$SECONDS last="" line p n
  while (( SECONDS - start < limit )); do
    line=$(indented 2 status)
    [ "$line" != "$last" ] && { echo "$line"; last=$line; }
    n=$(events_count)
    if (( n > seen_events )); then
      COLUMNS=$(( ${COLUMNS:-1000} - 11 )) "$bin" events api --limit $((n - seen_events)) | sed 's/^/    event: /'
      seen_events=$n
    fi
    p=$(phase)
    case $p in succeeded|rolled_back) outcome=$p; return 0 ;; esac
    sleep 1
  done
  outcome=timeout
}

echo
echo "demo: release v2 (healthy, 1 % errors like v1) on the idle green slot"
indented 2 start api --version v2 | sed '/^ *analysis at/,$d'
t0=$SECONDS
watch_release 180
good=$outcome
good_secs=$((SECONDS - t0))
echo
"$bin" status api | sed -n '1,15p'

echo
echo "demo: release v3 (bad: 40 % errors) deployed on the idle slot, now blue"
backend blue v3 0.4
indented 2 start api --version v3 | sed '/^ *analysis at/,$d'
t0=$SECONDS
watch_release 180
bad=$outcome
bad_secs=$((SECONDS - t0))
failed=$(curl -fs "http://127.0.0.1:$blue/_control" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')
echo
"$bin" status api | sed -n '1,15p'

echo
echo "demo: the split right now (pin header X-Canary: true still reaches the rolled-back v3):"
for h in "X-None: 1" "X-Canary: true"; do
  printf '  %-16s' "$h"
  for _ in $(seq 20); do curl -s -o /dev/null -w '%header{x-version} ' -H "Host: api.localhost" -H "$h" "http://127.0.0.1:$web/"; done
  echo
done

echo
ok=1
[ "$good" = succeeded ] || ok=0
[ "$bad" = rolled_back ] || ok=0
echo "demo: summary: v2 ${good} after ${good_secs}s; v3 ${bad} after ${bad_secs}s (${failed} failed canary requests before the rollback)"
if [ "$keep" = 1 ]; then
  trap - EXIT
  # Only the processes still running: a slot redeployed above replaced its first process.
  running=()
  for pid in "${STARTED_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && running+=("$pid"); done
  cat <<EOT

The stack keeps running (work dir $work):
  app through Traefik:   curl -H 'Host: api.localhost' http://127.0.0.1:$web/
  Traefik API:           http://127.0.0.1:$api/api/rawdata
  canary-pilot API:      http://127.0.0.1:$pilot/api/v1/apps   (export CANARY_PILOT_SERVER=http://127.0.0.1:$pilot)
  Traefik config served: http://127.0.0.1:$pilot/traefik
  traffic:               100 requests/s until $traffic_for after it started, then none
  next release, by hand: curl -X PUT -d '{"version": "v4", "error_rate": 0.01}' http://127.0.0.1:$blue/_control
                         (the idle blue slot now answers as v4), then: $bin start api --version v4
Stop it with: kill ${running[*]}
EOT
fi
[ "$ok" = 1 ] || { echo "demo: FAILED: expected v2 succeeded and v3 rolled_back" >&2; exit 1; }
