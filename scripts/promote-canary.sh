#!/usr/bin/env bash
# Promote an app's canary now and wait until canary-pilot has swapped the roles.
set -euo pipefail

prog=${0##*/}

usage() {
  cat <<EOF
Usage: $prog APP [--timeout SECONDS]

Promote APP's release now (\`canary-pilot promote APP\`): the canary takes 100 % of the traffic,
and at canary-pilot's next analysis the roles swap (phase succeeded). Waits for that, at most
--timeout seconds, then prints the status. No image is retagged and no service is updated: the
canary slot's servers simply become stable, and the old stable slot is idle for the next
release (scripts/deploy-canary.sh).

Options:
  --timeout SECONDS  how long to wait for phase succeeded (default: 120)
  -h, --help         this help

Environment: CANARY_PILOT (the CLI, default canary-pilot), CANARY_PILOT_SERVER (admin API,
default http://127.0.0.1:9000), CANARY_PILOT_TOKEN (admin token).
Exit codes: 0 promoted, 1 refused, rolled back, paused or timed out, 2 usage error.
EOF
}

# die, usage_error and json_get are shared with the other release scripts.
source "$(dirname "${BASH_SOURCE[0]}")/release-lib.sh"

timeout=120
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --timeout) [ $# -ge 2 ] || usage_error "--timeout needs a value"; timeout=$2; shift 2 ;;
    --timeout=*) timeout=${1#*=}; shift ;;
    -*) usage_error "unknown option: $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -eq 1 ] || usage_error "expected APP, got ${#positional[@]} argument(s)"
app=${positional[0]}
[[ $timeout =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a positive number of seconds"

read -r -a pilot <<<"${CANARY_PILOT:-canary-pilot}"

"${pilot[@]}" promote "$app" >/dev/null || exit 1
echo "$app: promoting; waiting for the roles to swap (at most ${timeout}s)"

deadline=$((SECONDS + timeout))
while :; do
  status=$("${pilot[@]}" status "$app" --output json) || die "cannot read the status of $app"
  phase=$(json_get phase <<<"$status")
  case $phase in
    succeeded)
      "${pilot[@]}" status "$app"
      exit 0 ;;
    promoting) ;;
    *)
      "${pilot[@]}" status "$app" || true
      die "$app is $phase, not promoted: $(json_get reason <<<"$status")" ;;
  esac
  if [ "$SECONDS" -ge "$deadline" ]; then
    "${pilot[@]}" status "$app" || true
    die "$app still promoting after ${timeout}s (the swap happens at the next analysis)"
  fi
  sleep 1
done
