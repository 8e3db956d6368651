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
     Swarm calls the rolling update completed: its tasks run the new spec and stayed up for the
     slot's update_config.monitor (at most --timeout seconds in all). A slot scaled to 0 by
     rollback-canary.sh --scale-down gets stable's replica count back;
  3. canary-pilot start APP --version V: canary-pilot then walks the steps, judges the canary
     against stable and promotes or rolls it back on its own.

Options:
  --version V        version label of the release (default: IMAGE's tag)
  --stack NAME       Swarm stack name (default: canary)
  --timeout SECONDS  how long to wait for the service update to converge (default: 300)
  --dry-run          print the docker command instead of running it; the release is still
                     started (for a slot deployed by other means)
  -- DOCKER_ARGS     passed to \`docker service update\`, e.g. -- --env-add APP_VERSION=v2;
                     a stack redeploy (scripts/deploy-stack.sh) keeps the slot's image and
                     environment, not other changes
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
if [ -z "$app" ] || [ -z "$image" ]; then usage_error "APP and IMAGE must not be empty"; fi
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
stable_service="${stack}_${app}-$(json_get stable.slot <<<"$status")"
cmd=(docker service update --detach=false --with-registry-auth --image "$image")
for arg in ${docker_args[@]+"${docker_args[@]}"}; do
  case $arg in
    --env-add | --env-add=* | --env-rm | --env-rm=* | --no-resolve-image) ;;
    --*) echo "$prog: note: $arg is not kept by a stack redeploy, which keeps only a slot's image and environment (scripts/deploy-stack.sh)" >&2 ;;
  esac
done
echo "$app: stable=$(json_get stable.slot <<<"$status") canary=$slot (phase $phase); deploying $image as $version on $service"
if $dry_run; then
  cmd+=(${docker_args[@]+"${docker_args[@]}"} "$service")
  printf 'dry-run:'
  printf ' %q' "${cmd[@]}"
  printf '\n'
else
  command -v docker >/dev/null 2>&1 || die "docker not found: run this on a Swarm manager"
  docker service inspect "$service" >/dev/null 2>&1 || die "no service $service (stack '$stack'; see --stack)"
  # A slot scaled to 0 (rollback-canary.sh --scale-down) comes back with as many replicas as
  # stable has, unless the arguments after -- say how many.
  replicas=$(docker service inspect --format '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' "$service")
  if [ "$replicas" = 0 ] && [[ " ${docker_args[*]-} " != *" --replicas"* ]]; then
    replicas=$(docker service inspect --format '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' "$stable_service" 2>/dev/null || true)
    [[ $replicas =~ ^[1-9][0-9]*$ ]] || replicas=1
    echo "$service has 0 replicas (scaled down after a rollback): back to $replicas, as $stable_service"
    cmd+=(--replicas "$replicas")
  fi
  cmd+=(${docker_args[@]+"${docker_args[@]}"} "$service")
  deadline=$((SECONDS + timeout))
  rc=0
  timeout "$timeout" "${cmd[@]}" || rc=$?
  if [ "$rc" -eq 124 ]; then
    die "$service did not converge within ${timeout}s (the update goes on in Swarm: docker service ps $service); release not started"
  elif [ "$rc" -ne 0 ]; then
    die "docker service update of $service failed (exit $rc); release not started"
  fi
  # `docker service update` returns once the tasks run the new spec, but Swarm still watches
  # them for update_config.monitor (UpdateStatus.State "updating") and rolls the update back
  # if one fails meanwhile: the release starts only once Swarm calls the update completed.
  while :; do
    state=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$service")
    case $state in
      "" | completed) break ;;
      updating) ;;
      *) die "update of $service ended as '$state' ($(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.Message}}{{end}}' "$service"); docker service ps $service); release not started" ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] ||
      die "update of $service still '$state' after ${timeout}s (Swarm's monitor period; docker service ps $service); release not started"
    sleep 1
  done
  running=$(docker service ls --filter "name=$service" --format '{{.Name}} {{.Replicas}}' 2>/dev/null | awk -v s="$service" '$1 == s { print $2 }' || true)
  echo "$service converged on $image (${running:-?} tasks running)"
fi

"${pilot[@]}" start "$app" --version "$version"
