#!/usr/bin/env bash
# canary-pilot demo on loopback: installs what is missing, builds, starts Traefik, two demo
# backends (v1 on blue, v2 on green) and canary-pilot, shifts traffic and shows where requests
# go, then stops everything it started.
#   scripts/demo.sh          run and clean up
#   scripts/demo.sh --keep   leave the stack running and print its URLs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

keep=0
for arg in "$@"; do
  case $arg in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh
echo "demo: building canary-pilot"
cargo build --quiet
bin=$PWD/target/debug/canary-pilot
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

start_bg "$work/blue.log" "$bin" demo-backend --listen "127.0.0.1:$blue" --version v1
start_bg "$work/green.log" "$bin" demo-backend --listen "127.0.0.1:$green" --version v2
start_bg "$work/canary-pilot.log" "$bin" serve --config "$work/canary-pilot.toml"
start_bg "$work/traefik.log" "$traefik" "--configFile=$work/traefik.yml"
wait_http "http://127.0.0.1:$pilot/readyz"
wait_http "http://127.0.0.1:$blue/_health"
wait_http "http://127.0.0.1:$green/_health"
export CANARY_PILOT_SERVER="http://127.0.0.1:$pilot"

# sample N [HEADER]: N requests through Traefik, counted by the version that answered.
sample() {
  local n=$1 header=${2:-X-None: 1} i v1=0 v2=0 other=0
  for ((i = 0; i < n; i++)); do
    case $(curl -s -o /dev/null -w '%header{x-version}' --max-time 5 -H "Host: api.localhost" -H "$header" "http://127.0.0.1:$web/") in
      v1) v1=$((v1 + 1)) ;; v2) v2=$((v2 + 1)) ;; *) other=$((other + 1)) ;;
    esac
  done
  printf '  %d requests: v1 (stable) %d, v2 (canary) %d, failed %d\n' "$n" "$v1" "$v2" "$other"
}

# wait_weight W: until Traefik's API shows the canary at W percent.
wait_weight() {
  local i
  for ((i = 0; i < 300; i++)); do
    curl -fs "http://127.0.0.1:$api/api/http/services/api@http" 2>/dev/null |
      python3 -c "import json,sys; s=json.load(sys.stdin)['weighted']['services']; sys.exit(0 if any(x['name'].startswith('api-canary') and x.get('weight')==$1 for x in s) else 1)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "Traefik did not apply weight $1" >&2; return 1
}

wait_weight 0
echo
"$bin" status
for w in 10 50 100 0; do
  echo
  echo "demo: set-weight api $w"
  "$bin" set-weight api "$w"
  wait_weight "$w"
  sample 100
done
echo
echo "demo: with the pin header X-Canary: true at weight 0, every request reaches the canary"
sample 50 "X-Canary: true"

echo
echo "demo: summary: weights 10/50/100/0 applied through Traefik; pin header routed to the canary"
if [ "$keep" = 1 ]; then
  trap - EXIT
  cat <<EOT

The stack keeps running (work dir $work):
  app through Traefik:   curl -H 'Host: api.localhost' http://127.0.0.1:$web/
  Traefik API:           http://127.0.0.1:$api/api/rawdata
  canary-pilot API:      http://127.0.0.1:$pilot/api/v1/apps   (CANARY_PILOT_SERVER=http://127.0.0.1:$pilot)
  Traefik config served: http://127.0.0.1:$pilot/traefik
Stop it with: kill ${STARTED_PIDS[*]}
EOT
fi
