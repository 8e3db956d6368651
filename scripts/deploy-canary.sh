#!/usr/bin/env bash
# Deploy a new image on an app's idle (canary) slot in Docker Swarm, then start the release.
set -euo pipefail

prog=${0##*/}

usage() {
  cat <<EOF
Usage: $prog APP IMAGE [--version V] [--stack NAME] [--timeout SECONDS] [--dry-run] [-- DOCKER_ARGS...]

Deploy IMAGE on APP's idle slot and start a release of it:
  1. ask canary-pilot which slot is the canary (\`canary-pilot status APP --output json\`);
     refuse if a release is progressing, paused or promoting, or if the idle slot gets traffic;
  2. docker service update --image IMAGE STACK_APP-SLOT (e.g. canary_api-green), and wait until
     Swarm reports the rolling update converged (at most --timeout seconds);
  3. canary-pilot start APP --version V: canary-pilot then walks the steps, judges the canary
     against stable and promotes or rolls it back on its own.

Options:
  --version V        version label of the release (default: IMAGE's tag)
  --stack NAME       Swarm stack name (default: canary)
  --timeout SECONDS  how long to wait for the service update to converge (default: 300)
  --dry-run          print the docker command instead of running it; the release is still
                     started (for a slot deployed by other means)
  -- DOCKER_ARGS     passed to \`docker service update\`, e.g. -- --env-add APP_VERSION=v2
  -h, --help         this help

Environment: CANARY_PILOT (the CLI, default canary-pilot; may be a command such as
"docker exec -i CONTAINER canary-pilot"), CANARY_PILOT_SERVER (admin API, default
http://127.0.0.1:9000), CANARY_PILOT_TOKEN (admin token).
Exit codes: 0 released, 1 refused or failed, 2 usage error.
EOF
}

# die, usage_error and json_get are shared with the other release scripts.
source "$(dirname "${BASH_SOURCE[0]}")/release-lib.sh"

app="" image="" version="" stack=canary timeout=300 dry_run=false
docker_args=()
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --version) [ $# -ge 2 ] || usage_error "--version needs a value"; version=$2; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --stack) [ $# -ge 2 ] || usage_error "--stack needs a value"; stack=$2; shift 2 ;;
    --stack=*) stack=${1#*=}; shift ;;
    --timeout) [ $# -ge 2 ] || usage_error "--timeout needs a value"; timeout=$2; shift 2 ;;
    --timeout=*) timeout=${1#*=}; shift ;;
    --dry-run) dry_run=true; shift ;;
    --) shift; docker_args=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -eq 2 ] || usage_error "expected APP and IMAGE, got ${#positional[@]} argument(s)"
app=${positional[0]} image=${positional[1]}
[ -n "$app" ] && [ -n "$image" ] || usage_error "APP and IMAGE must not be empty"
[ -n "$stack" ] || usage_error "--stack must not be empty"
[[ $timeout =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a positive number of seconds"

if [ -z "$version" ]; then
  # The image's tag: registry:5000/team/api:v2 -> v2; api@sha256:... -> sha256:<12 hex>.
  name=${image%%@*}
  name=${name##*/}
  if [[ $name == *:* ]]; then
    version=${name##*:}
  elif [[ $image == *@* ]]; then
    version=${image#*@}
    version=${version:0:19}
  else
    version=latest
  fi
fi

read -r -a pilot <<<"${CANARY_PILOT:-canary-pilot}"

status=$("${pilot[@]}" status "$app" --output json) || die "cannot read the status of $app from canary-pilot"
phase=$(json_get phase <<<"$status")
slot=$(json_get canary.slot <<<"$status")
weight=$(json_get weights.canary <<<"$status")
current=$(json_get canary.version <<<"$status")
[ -n "$slot" ] || die "canary-pilot did not name $app's canary slot"
case $phase in
  progressing | paused | promoting)
    die "$app has a release under way (${current:-?} is $phase at ${weight:-?}%): promote or abort it first (scripts/promote-canary.sh, scripts/rollback-canary.sh)" ;;
esac
if [ -n "$weight" ] && [ "$weight" != 0 ]; then
  die "$app's idle slot $slot gets ${weight}% of the traffic (set by hand): run '${pilot[*]} set-weight $app 0' first"
fi

service="${stack}_${app}-${slot}"
cmd=(docker service update --detach=false --with-registry-auth --image "$image" ${docker_args[@]+"${docker_args[@]}"} "$service")
echo "$app: stable=$(json_get stable.slot <<<"$status") canary=$slot (phase $phase); deploying $image as $version on $service"
if $dry_run; then
  printf 'dry-run:'
  printf ' %q' "${cmd[@]}"
  printf '\n'
else
  command -v docker >/dev/null 2>&1 || die "docker not found: run this on a Swarm manager"
  docker service inspect "$service" >/dev/null 2>&1 || die "no service $service (stack '$stack'; see --stack)"
  rc=0
  timeout "$timeout" "${cmd[@]}" || rc=$?
  if [ "$rc" -eq 124 ]; then
    die "$service did not converge within ${timeout}s (the update goes on in Swarm: docker service ps $service); release not started"
  elif [ "$rc" -ne 0 ]; then
    die "docker service update of $service failed (exit $rc); release not started"
  fi
  state=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$service")
  case $state in
    "" | completed) ;;
    *) die "update of $service ended as '$state' (docker service ps $service); release not started" ;;
  esac
  echo "$service converged on $image"
fi

"${pilot[@]}" start "$app" --version "$version"
