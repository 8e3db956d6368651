#!/usr/bin/env bash
# Deploy (or redeploy) swarm/stack.yml without changing what the app slots run.
set -euo pipefail

prog=${0##*/}

usage() {
  cat <<EOF
Usage: $prog [--stack NAME] [--config TOML] [-c FILE]... [--dry-run] [-- DOCKER_ARGS...]

Run \`docker stack deploy -c swarm/stack.yml [-c FILE]... NAME\`, keeping what every app slot
runs. A stack deploy sets each service to what the stack file says; the slots' image and
environment are decided by releases (scripts/deploy-canary.sh), so this script reads them from
the running slot services and passes them back to the stack (API_BLUE_IMAGE, API_BLUE_ENV, ...):
a redeploy, e.g. CONFIG_VERSION=2 for a config change, leaves the promoted version serving.

The slots are the hosts of the slot URLs in canary-pilot.toml (http://api-blue:8080 is the
service api-blue of the stack); the variables are named after them (api-blue: API_BLUE_IMAGE,
API_BLUE_ENV). A slot service that does not exist yet starts with \$API_BLUE_IMAGE, else
\$API_IMAGE (the app's name), else \$CANARY_PILOT_IMAGE, else canary-pilot:latest (whose
demo-backend plays the example app), and with the environment file \$API_BLUE_ENV, else
swarm/APP.env (swarm/api.env). For a slot that exists, a different API_BLUE_IMAGE in the
environment is refused: release it with scripts/deploy-canary.sh.

It refuses to deploy when no node, or more than one, carries the label canary-pilot=true
(the node that keeps canary-pilot's state: docker node update --label-add canary-pilot=true NODE).

Options:
  --stack NAME   Swarm stack name (default: canary)
  --config TOML  canary-pilot's config, where the slots are read (default: swarm/canary-pilot.toml)
  -c FILE        another compose file merged over swarm/stack.yml (repeatable)
  --dry-run      print what would be deployed, deploy nothing
  -- DOCKER_ARGS passed to \`docker stack deploy\`, e.g. -- --resolve-image never
  -h, --help     this help

Exit codes: 0 deployed, 1 refused or failed, 2 usage error.
EOF
}

# die, usage_error are shared with the other release scripts.
source "$(dirname "${BASH_SOURCE[0]}")/release-lib.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stack=canary config=$here/swarm/canary-pilot.toml dry_run=false
files=("$here/swarm/stack.yml")
docker_args=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --stack) [ $# -ge 2 ] || usage_error "--stack needs a value"; stack=$2; shift 2 ;;
    --stack=*) stack=${1#*=}; shift ;;
    --config) [ $# -ge 2 ] || usage_error "--config needs a value"; config=$2; shift 2 ;;
    --config=*) config=${1#*=}; shift ;;
    -c) [ $# -ge 2 ] || usage_error "-c needs a value"; files+=("$2"); shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    --) shift; docker_args=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) usage_error "unexpected argument: $1" ;;
  esac
done
[ -n "$stack" ] || usage_error "--stack must not be empty"
[ -f "$config" ] || die "no config file $config (see --config)"
for f in "${files[@]}"; do [ -f "$f" ] || die "no compose file $f"; done
command -v docker >/dev/null 2>&1 || die "docker not found: run this on a Swarm manager"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read $config"

# app slot-service lines, from the TOML (python3 >= 3.11 reads TOML).
slots=$(python3 - "$config" <<'EOF'
import sys, tomllib
from urllib.parse import urlsplit
try:
    cfg = tomllib.load(open(sys.argv[1], "rb"))
except (OSError, tomllib.TOMLDecodeError) as e:
    sys.exit(f"cannot read {sys.argv[1]}: {e}")
seen = set()
for app, spec in cfg.get("apps", {}).items():
    for urls in spec.get("slots", {}).values():
        for url in urls:
            host = urlsplit(url).hostname
            if host and (app, host) not in seen:
                seen.add((app, host))
                print(app, host)
EOF
) || die "cannot read the slots of $config"
[ -n "$slots" ] || die "$config names no app slot"

# canary-pilot's placement (swarm/stack.yml): exactly one node keeps its state.
labelled=$(docker node ls -q --filter node.label=canary-pilot=true 2>/dev/null | wc -l) ||
  die "cannot list the swarm's nodes: run this on a Swarm manager"
case $labelled in
  1) ;;
  0) die "no node is labelled canary-pilot=true: label the one node that keeps canary-pilot's state (docker node update --label-add canary-pilot=true NODE)" ;;
  *) die "$labelled nodes are labelled canary-pilot=true: canary-pilot's state volume is on one node; keep the label on that one only" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/canary-pilot-deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stack_dir=$(dirname "${files[0]}")
vars=()
while read -r app name; do
  var=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9\n' '_')
  app_var=$(printf '%s' "$app" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9\n' '_')
  service=${stack}_${name}
  given_image_var=${var}_IMAGE given_env_var=${var}_ENV
  given_image=${!given_image_var:-} given_env=${!given_env_var:-}
  if spec=$(docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec}}' "$service" 2>/dev/null); then
    image=$(json_get Image <<<"$spec")
    [ -n "$image" ] || die "cannot read the image of $service"
    if [ -n "$given_image" ] && [ "$given_image" != "$image" ]; then
      die "$given_image_var=$given_image, but $service runs $image: a redeploy keeps what a slot runs; release a new image with scripts/deploy-canary.sh"
    fi
    # The environment it runs with, as an env file (KEY=VALUE lines, taken literally).
    python3 -c '
import json, sys
env = json.load(sys.stdin).get("Env") or []
for kv in env:
    if "\n" in kv:
        sys.exit("a value with a newline cannot be kept: " + kv.split("=", 1)[0])
    print(kv)
' <<<"$spec" >"$tmp/$name.env" || die "cannot keep the environment of $service"
    env_file=$tmp/$name.env
    echo "$name: keeps $image ($(paste -sd' ' "$env_file"))"
  else
    image=${given_image:-}
    if [ -z "$image" ]; then
      image_var=${app_var}_IMAGE
      image=${!image_var:-${CANARY_PILOT_IMAGE:-canary-pilot:latest}}
    fi
    env_file=${given_env:-$stack_dir/$app.env}
    [ -f "$env_file" ] || die "$service does not exist yet and its first environment file $env_file is missing (set $given_env_var)"
    echo "$name: new slot, $image with $env_file"
  fi
  vars+=("$given_image_var=$image" "$given_env_var=$env_file")
done <<<"$slots"

cmd=(docker stack deploy)
for f in "${files[@]}"; do cmd+=(-c "$f"); done
cmd+=(${docker_args[@]+"${docker_args[@]}"} "$stack")
if $dry_run; then
  printf 'dry-run:'
  printf ' %q' env "${vars[@]}" "${cmd[@]}"
  printf '\n'
  exit 0
fi
env "${vars[@]}" "${cmd[@]}" || die "docker stack deploy failed"
