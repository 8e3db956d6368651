#!/usr/bin/env bash
# Roll an app's release back now: the canary gets no traffic.
set -euo pipefail

prog=${0##*/}

usage() {
  cat <<EOF
Usage: $prog APP [--reason TEXT]

Abort APP's release (\`canary-pilot abort APP --reason TEXT\`): the canary's weight drops to 0 %
at Traefik's next poll, with no restart and no dropped request; then print the status. The
canary slot keeps running (the pin header still reaches it, for debugging); deploy the next
version on it with scripts/deploy-canary.sh.

Options:
  --reason TEXT  why, recorded in the event log (default: "rolled back by $prog")
  -h, --help     this help

Environment: CANARY_PILOT (the CLI, default canary-pilot), CANARY_PILOT_SERVER (admin API,
default http://127.0.0.1:9000), CANARY_PILOT_TOKEN (admin token).
Exit codes: 0 rolled back, 1 refused (nothing to roll back) or failed, 2 usage error.
EOF
}

usage_error() { echo "$prog: $*" >&2; echo "Try '$prog --help'." >&2; exit 2; }

reason="rolled back by $prog"
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --reason) [ $# -ge 2 ] || usage_error "--reason needs a value"; reason=$2; shift 2 ;;
    --reason=*) reason=${1#*=}; shift ;;
    -*) usage_error "unknown option: $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -eq 1 ] || usage_error "expected APP, got ${#positional[@]} argument(s)"
app=${positional[0]}

read -r -a pilot <<<"${CANARY_PILOT:-canary-pilot}"

"${pilot[@]}" abort "$app" --reason "$reason" >/dev/null || exit 1
"${pilot[@]}" status "$app"
