#!/usr/bin/env bash
# Roll an app's release back now: the canary gets no traffic; optionally scale its slot to 0.
set -euo pipefail

prog=${0##*/}

usage() {
  cat <<EOF2
Usage: $prog APP [--reason TEXT] [--scale-down [--stack NAME]]

Abort APP's release (\`canary-pilot abort APP --reason TEXT\`): the canary's weight drops to 0 %
at Traefik's next poll, with no restart and no dropped request; then print the status. The
canary slot keeps running (the pin header still reaches it, for debugging); deploy the next
version on it with scripts/deploy-canary.sh.

With --scale-down, also scale the canary slot's Swarm service to 0 once its weight is 0
(\`docker service scale STACK_APP-SLOT=0\`, as operators did by hand): pinned requests then get
no answer from it. This works on a release canary-pilot has rolled back already, too.
scripts/deploy-canary.sh scales the slot back up for the next release.

Options:
  --reason TEXT  why, recorded in the event log (default: "rolled back by $prog")
  --scale-down   also scale the canary slot to 0 replicas (run it on a Swarm manager)
  --stack NAME   Swarm stack name, for --scale-down (default: canary)
  -h, --help     this help

Environment: CANARY_PILOT (the CLI, default canary-pilot), CANARY_PILOT_SERVER (admin API,
default http://127.0.0.1:9000), CANARY_PILOT_TOKEN (admin token).
Exit codes: 0 rolled back, 1 refused (nothing to roll back) or failed, 2 usage error.
EOF2
}

# die, usage_error and json_get are shared with the other release scripts.
source "$(dirname "${BASH_SOURCE[0]}")/release-lib.sh"

reason="rolled back by $prog" scale_down=false stack=canary
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --reason) [ $# -ge 2 ] || usage_error "--reason needs a value"; reason=$2; shift 2 ;;
    --reason=*) reason=${1#*=}; shift ;;
    --scale-down) scale_down=true; shift ;;
    --stack) [ $# -ge 2 ] || usage_error "--stack needs a value"; stack=$2; shift 2 ;;
    --stack=*) stack=${1#*=}; shift ;;
    -*) usage_error "unknown option: $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -eq 1 ] || usage_error "expected APP, got ${#positional[@]} argument(s)"
app=${positional[0]}
[ -n "$stack" ] || usage_error "--stack must not be empty"

read -r -a pilot <<<"${CANARY_PILOT:-canary-pilot}"

if ! "${pilot[@]}" abort "$app" --reason "$reason" >/dev/null; then
  # Nothing to abort. With --scale-down, a release rolled back already is still scaled down.
  $scale_down || exit 1
  phase=$(json_get phase <<<"$("${pilot[@]}" status "$app" --output json)") || exit 1
  [ "$phase" = rolled_back ] || exit 1
  echo "$app: rolled back already; scaling its canary slot down"
fi
if $scale_down; then
  status=$("${pilot[@]}" status "$app" --output json) || die "cannot read the status of $app"
  slot=$(json_get canary.slot <<<"$status")
  weight=$(json_get weights.canary <<<"$status")
  [ -n "$slot" ] || die "canary-pilot did not name $app's canary slot"
  # Never take down what gets traffic: the abort set the weight to 0.
  [ "$weight" = 0 ] || die "$app's canary slot $slot still gets ${weight:-?}%; not scaling it down"
  command -v docker >/dev/null 2>&1 || die "docker not found: run this on a Swarm manager"
  service="${stack}_${app}-${slot}"
  docker service inspect "$service" >/dev/null 2>&1 || die "no service $service (stack '$stack'; see --stack)"
  docker service scale --detach=false "$service=0" >/dev/null || die "docker service scale $service=0 failed"
  echo "$service scaled to 0 replicas"
fi
"${pilot[@]}" status "$app"
