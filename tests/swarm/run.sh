#!/usr/bin/env bash
# The Swarm kit on a real single-node Docker Swarm: swarm/stack.yml deployed as shipped (plus
# tests/swarm/override.yml, what this kernel needs) with scripts/deploy-stack.sh, and a release
# cycle driven by the release scripts, every request sent from the host to a port published on
# 127.0.0.1.
#
#   tests/swarm/run.sh      as root (it may install docker.io and start dockerd); scripts/test.sh
#                           runs it. About 4 minutes on 2 cores.
#
# It installs Debian's docker.io where no engine answers, starts dockerd where none runs (and
# stops that one, by PID, on exit), makes the engine a one-node swarm where it is in none, builds
# the images from the binaries on the machine (scripts/swarm-images.sh), and removes on exit,
# also on failure, everything it created: stack, volumes, secrets, configs, images. The swarm
# itself and the node label canary-pilot=true stay (engine state, like the installed package).
# Without an engine it fails and says how to install one; it never skips.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
source scripts/lib.sh           # free_ports
source scripts/swarm-engine.sh  # engine_up, engine_down, ENGINE_HOWTO

STACK=canary
TEST_LABEL="canary-pilot.test=swarm-suite"
passed=0 failed=0 finished=false deployed=false
t_start=$SECONDS
note() { printf 'swarm: [%3ds] %s\n' $((SECONDS - t_start)) "$*"; }
pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then tail -n 25 "$2" | sed 's/^/       | /'; fi
}
# check NAME CMD...: passes when CMD succeeds.
check() {
  local name=$1
  shift
  if "$@" >"$tmp/check.out" 2>&1; then pass "$name"; else fail "$name" "$tmp/check.out"; fi
}
eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (got '$2', expected '$3')"; fi; }
# abort MSG [LOG]: a step the rest depends on failed.
abort() { fail "$1" "${2:-}"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/canary-pilot-swarm.XXXXXX")
bg_pids=()
bg() { # bg LOG CMD...: in the background, stopped on exit; its pid in $last_pid
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  last_pid=$!
  bg_pids+=("$last_pid")
}
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

created_secrets=()
tasks_deployed=false TASKS_STACK=cpt
managed_deployed=false managed_images=false MANAGED_STACK=cpm
# remove_stack NAME: docker stack rm, and wait until its containers and networks are gone.
remove_stack() {
  local i
  note "removing stack $1"
  docker stack rm "$1" >/dev/null 2>&1
  for ((i = 0; i < 120; i++)); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$1")" ] &&
      [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$1")" ] && break
    sleep 0.5
  done
}
# remove_managed: the managed app's stack, and the primary canary-pilot made outside it.
remove_managed() {
  local p
  for p in $(docker service ls --filter "label=canary-pilot.primary-of" --format '{{.Name}}'); do
    case "$p" in "${MANAGED_STACK}"_*) docker service rm "$p" >/dev/null 2>&1 ;; esac
  done
  remove_stack "$MANAGED_STACK"
}
cleanup() {
  local rc=$? pid i
  set +e
  trap - EXIT INT TERM
  for pid in ${bg_pids[@]+"${bg_pids[@]}"}; do stop_pid "$pid"; done
  if engine_answers; then
    if $deployed || docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
      remove_stack "$STACK"
    fi
    if $tasks_deployed; then remove_stack "$TASKS_STACK"; fi
    if $managed_deployed; then remove_managed; fi
    if $managed_images; then
      for v in v1 v2 v2b v3; do docker image rm "canary-pilot-shop:$v" >/dev/null 2>&1; done
    fi
    remove_test_leftovers
    for s in ${created_secrets[@]+"${created_secrets[@]}"}; do docker secret rm "$s" >/dev/null 2>&1; done
    scripts/swarm-images.sh --remove
  fi
  engine_down
  rm -rf "$tmp"
  if ! $finished; then
    [ "$rc" -ne 0 ] || rc=1
    echo "swarm: stopped early (exit $rc)"
  fi
  echo "swarm: $passed passed, $failed failed ($((SECONDS - t_start)) s)"
  if [ "$failed" -gt 0 ] && [ "$rc" -eq 0 ]; then rc=1; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# remove_test_leftovers: volumes and configs of this suite's stack, left by a run that was killed
# (the volumes carry the override's label; a volume without it belongs to someone else).
remove_test_leftovers() {
  local v i
  for v in $(docker volume ls -q --filter "label=$TEST_LABEL"); do
    for ((i = 0; i < 20; i++)); do docker volume rm "$v" >/dev/null 2>&1 && break; sleep 0.5; done
  done
  # shellcheck disable=SC2046 # a list of IDs
  docker config rm $(docker config ls -q --filter "label=com.docker.stack.namespace=$STACK") >/dev/null 2>&1 || true
}

# --- tools and engine ----------------------------------------------------------------------------
echo "# engine"
for t in curl python3; do command -v "$t" >/dev/null 2>&1 || abort "$t not found"; done
bin=$root/target/debug/canary-pilot
[ -x "$bin" ] || abort "$bin not found: cargo build"
engine_up || abort "no Docker engine in Swarm mode could be had: $ENGINE_HOWTO; then run tests/swarm/run.sh again"
pass "engine $(docker version --format '{{.Server.Version}}') answers${ENGINE_STARTED_PID:+ (dockerd $ENGINE_STARTED_PID started by the suite)}"
eq "the node is a swarm manager" "$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')" "active true"
eq "one node carries the label canary-pilot=true" "$(docker node ls -q --filter node.label=canary-pilot=true | wc -l | tr -d ' ')" 1

# A stack of this name that is not a leftover of this suite belongs to someone: leave it alone.
if docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
  if docker secret ls -q --filter "label=$TEST_LABEL" | grep -q .; then
    note "removing the stack left by an interrupted run"
    docker stack rm "$STACK" >/dev/null
    for ((i = 0; i < 120; i++)); do [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break; sleep 0.5; done
  else
    abort "a stack named $STACK runs on this engine and is not the suite's: remove it (docker stack rm $STACK) or run the suite elsewhere"
  fi
fi
# The service-slot and managed stacks (tests/swarm/tasks.sh, managed.sh): their networks carry
# the suite's label.
for s in "$TASKS_STACK" "$MANAGED_STACK"; do
  if docker stack ls --format '{{.Name}}' | grep -qx "$s"; then
    if docker network ls -q --filter "label=$TEST_LABEL" --filter "label=com.docker.stack.namespace=$s" | grep -q .; then
      if [ "$s" = "$MANAGED_STACK" ]; then remove_managed; else remove_stack "$s"; fi
    else
      abort "a stack named $s runs on this engine and is not the suite's: remove it (docker stack rm $s) or run the suite elsewhere"
    fi
  fi
done
remove_test_leftovers
for v in state prometheus-data grafana-data; do
  if docker volume inspect "${STACK}_$v" >/dev/null 2>&1; then
    abort "volume ${STACK}_$v exists and is not the suite's (it may hold a real canary-pilot state): move it away first"
  fi
done

# --- secrets and images --------------------------------------------------------------------------
echo "# secrets and images"
admin_token=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
provider_token=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
for s in canary_admin_token canary_provider_token grafana_admin_password; do
  if docker secret inspect "$s" >/dev/null 2>&1; then
    if [ -n "$(docker secret inspect --format "{{index .Spec.Labels \"${TEST_LABEL%%=*}\"}}" "$s")" ]; then
      docker secret rm "$s" >/dev/null
    else
      abort "secret $s exists and is not the suite's: remove it or run the suite elsewhere"
    fi
  fi
done
printf '%s' "$admin_token" | docker secret create --label "$TEST_LABEL" canary_admin_token - >/dev/null && created_secrets+=(canary_admin_token)
printf '%s' "$provider_token" | docker secret create --label "$TEST_LABEL" canary_provider_token - >/dev/null && created_secrets+=(canary_provider_token)
python3 -c 'import secrets; print(secrets.token_hex(16))' | docker secret create --label "$TEST_LABEL" grafana_admin_password - >/dev/null &&
  created_secrets+=(grafana_admin_password)
eq "three secrets created" "${#created_secrets[@]}" 3

SECONDS_IMAGES=$SECONDS
scripts/swarm-images.sh --env >"$tmp/images.env" 2>"$tmp/images.log" || abort "scripts/swarm-images.sh" "$tmp/images.log"
set -a
# shellcheck disable=SC1091 # written just above
source "$tmp/images.env"
set +a
pass "images built from the binaries on this machine in $((SECONDS - SECONDS_IMAGES)) s: $CANARY_PILOT_IMAGE $TRAEFIK_IMAGE $PROMETHEUS_IMAGE"

# --- deploy --------------------------------------------------------------------------------------
echo "# deploy"
read -r TRAEFIK_WEB_PORT TRAEFIK_API_PORT CANARY_PILOT_PORT PROMETHEUS_PORT GRAFANA_PORT < <(free_ports 5)
export TRAEFIK_WEB_PORT TRAEFIK_API_PORT CANARY_PILOT_PORT PROMETHEUS_PORT GRAFANA_PORT
web=http://127.0.0.1:$TRAEFIK_WEB_PORT
api=http://127.0.0.1:$TRAEFIK_API_PORT
export CANARY_PILOT=$bin CANARY_PILOT_SERVER=http://127.0.0.1:$CANARY_PILOT_PORT CANARY_PILOT_TOKEN=$admin_token
note "ports on 127.0.0.1: web $TRAEFIK_WEB_PORT, Traefik API $TRAEFIK_API_PORT, canary-pilot $CANARY_PILOT_PORT, Prometheus $PROMETHEUS_PORT"
note "Grafana is left out: no image of it can be had here (tests/swarm/override.yml gives it 0 replicas)"
# No registry answers here: images are local, so the client need not ask one for digests.
deploy_stack() { scripts/deploy-stack.sh -c tests/swarm/override.yml -- --resolve-image never; }
deployed=true
SECONDS_DEPLOY=$SECONDS
deploy_stack >"$tmp/deploy.log" 2>&1 || abort "scripts/deploy-stack.sh -c tests/swarm/override.yml" "$tmp/deploy.log"
pass "scripts/deploy-stack.sh deployed swarm/stack.yml + tests/swarm/override.yml"

# converged: every service has its replicas running (a task with a health check runs only once
# healthy) and every container of them reports healthy.
SERVICES="traefik canary-pilot prometheus api-blue api-green"
converged() {
  local s want got
  for s in $SERVICES; do
    want=$(docker service inspect --format '{{.Spec.Mode.Replicated.Replicas}}' "${STACK}_$s")
    got=$(docker ps --filter "label=com.docker.swarm.service.name=${STACK}_$s" --format '{{.Status}}' | grep -c '(healthy)' || true)
    [ "$got" = "$want" ] || return 1
    docker service ls --filter "name=${STACK}_$s" --format '{{.Name}} {{.Replicas}}' | grep -qx "${STACK}_$s $want/$want" || return 1
  done
}
wait_converged() { # wait_converged SECONDS
  local deadline=$((SECONDS + $1))
  until converged; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}
routes() { curl -fs -o /dev/null --max-time 2 -H 'Host: api.localhost' "$web/"; }
wait_routes() { # wait_routes SECONDS
  local deadline=$((SECONDS + $1))
  until routes; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
service_table() { docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}} {{.Replicas}}'; }
if wait_routes 90; then
  pass "Traefik routes Host api.localhost through its published port, $((SECONDS - SECONDS_DEPLOY)) s after the deploy"
else
  service_table >"$tmp/services"
  abort "Traefik does not route api.localhost within 90 s of the deploy" "$tmp/services"
fi
# Traefik's log up to its first route: had it started before canary-pilot resolved, it would
# have logged failed fetches.
docker service logs --raw "${STACK}_traefik" >"$tmp/traefik-start.log" 2>&1
if wait_converged 120; then
  pass "docker stack deploy converged in $((SECONDS - SECONDS_DEPLOY)) s: Traefik, canary-pilot, Prometheus, api-blue, api-green all healthy"
else
  service_table >"$tmp/services"
  docker service ps --no-trunc "$STACK"_canary-pilot "$STACK"_traefik >>"$tmp/services" 2>&1
  abort "the stack did not converge within 120 s" "$tmp/services"
fi
eq "grafana left out: 0 replicas" "$(docker service ls --filter "name=${STACK}_grafana" --format '{{.Replicas}}')" "0/0"

# What the stack promises about canary-pilot, on the real engine.
cp_container() { docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_canary-pilot" | head -1; }
ctr=$(cp_container)
eq "canary-pilot's state is on its volume" \
  "$(docker inspect --format '{{range .Mounts}}{{if eq .Destination "/var/lib/canary-pilot"}}{{.Type}} {{.Name}}{{end}}{{end}}' "$ctr")" "volume ${STACK}_state"
check "state.json is on the volume" docker exec "$ctr" test -s /var/lib/canary-pilot/state.json
eq "canary-pilot is placed by the node label" \
  "$(docker service inspect --format '{{json .Spec.TaskTemplate.Placement.Constraints}}' "${STACK}_canary-pilot")" '["node.labels.canary-pilot == true"]'
eq "its task runs on the labelled node" \
  "$(docker node inspect --format '{{index .Spec.Labels "canary-pilot"}}' "$(docker service ps --filter desired-state=running --format '{{.Node}}' "${STACK}_canary-pilot" | head -1)")" true
check "its health check is readiness (/readyz)" \
  sh -c "docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck.Test}}' ${STACK}_canary-pilot | grep -q /readyz"
eq "mutating call without the admin token is refused" \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$CANARY_PILOT_SERVER/api/v1/apps/api/pause")" 401
eq "GET /traefik without the provider token is refused" "$(curl -s -o /dev/null -w '%{http_code}' "$CANARY_PILOT_SERVER/traefik")" 401
check "status with the admin token (the Docker secret)" "$bin" status api
prom_targets() {
  curl -fs "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets" | python3 -c '
import json, sys
ts = json.load(sys.stdin)["data"]["activeTargets"]
print(" ".join(sorted(t["labels"]["job"] + "=" + t["health"] for t in ts)))'
}
for ((i = 0; i < 30; i++)); do [ "$(prom_targets 2>/dev/null)" = "canary-pilot=up traefik=up" ] && break; sleep 1; done
eq "Prometheus scrapes Traefik and canary-pilot over the overlay network" "$(prom_targets 2>/dev/null)" "canary-pilot=up traefik=up"
if ! grep -q 'Provider error' "$tmp/traefik-start.log"; then
  pass "start-up order: Traefik's first fetch from canary-pilot succeeded (no provider error logged)"
else
  fail "start-up order: Traefik logged provider errors at start" "$tmp/traefik-start.log"
fi

# --- helpers for the release ---------------------------------------------------------------------
status_field() { "$bin" status api --output json | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"; }
# traefik_weights: "STABLE CANARY" as Traefik applies them.
traefik_weights() {
  curl -fs --max-time 2 "$api/api/http/services/api@http" | python3 -c '
import json, sys
w = {s["name"]: s.get("weight", 1) for s in json.load(sys.stdin)["weighted"]["services"]}
print(w.get("api-stable"), w.get("api-canary"))'
}
# traefik_stable_host: the host of the servers Traefik has behind api-stable.
traefik_stable_host() {
  curl -fs --max-time 2 "$api/api/http/services/api-stable@http" | python3 -c '
import json, sys
from urllib.parse import urlsplit
print(" ".join(sorted({urlsplit(s["url"]).hostname for s in json.load(sys.stdin)["loadBalancer"]["servers"]})))'
}
wait_for() { # wait_for SECONDS CMD...: until CMD succeeds
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
weights_are() { [ "$(traefik_weights)" = "$1" ]; }
phase_is() { [ "$(status_field phase)" = "$1" ]; }
# requests N [CURL_ARGS...]: N sequential requests on one connection; "CODE VERSION" counts.
requests() {
  local n=$1
  shift
  curl -s -o /dev/null --max-time 60 -w '%{http_code} %header{x-version}\n' -H 'Host: api.localhost' "$@" "$web/?n=[1-$n]" |
    sort | uniq -c | awk '{ printf "%s%s:%s=%s", sep, $2, $3, $1; sep = " " }'
}
# traffic LOG RPS SECONDS: canary-pilot demo-traffic from the host through Traefik, bounded.
traffic() { bg "$1" "$bin" demo-traffic --url "$web/" --host api.localhost --rps "$2" --workers 8 --duration "${3}s" --report 500ms; }
# traffic_summary LOG: "answered=N failed=M versions=v1:N,v2:M" from its reports (a run stopped
# early counts up to its last report). Failed: 5xx, no answer, or an answer without a version
# (Traefik's own 404 when no route matches).
traffic_summary() {
  python3 - "$1" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
total = [l for l in lines if l.startswith("total ")]
use = total[-1:] if total else [l for l in lines if l.startswith("t=")]
n = failed = 0
versions = {}
for l in use:
    for v, c, e in re.findall(r"(\S+) (\d+) \((\d+) err\)", l):
        c, e = int(c), int(e)
        n += c
        bad = e if v not in ("-", "none") else c
        failed += bad
        versions[v] = versions.get(v, 0) + c
print(f"answered={n} failed={failed} versions=" + ",".join(f"{k}:{versions[k]}" for k in sorted(versions)))
EOF
}

# --- a good release: deploy-canary.sh on the idle slot ---------------------------------------------
echo "# release v2 (good) with scripts/deploy-canary.sh"
SECONDS_STEP=$SECONDS
if scripts/deploy-canary.sh api "$CANARY_PILOT_IMAGE" --version v2 -- --env-add APP_VERSION=v2 >"$tmp/deploy-v2.log" 2>&1; then
  pass "deploy-canary.sh updated canary_api-green, waited for Swarm and started the release ($((SECONDS - SECONDS_STEP)) s)"
else
  abort "deploy-canary.sh api ... --version v2" "$tmp/deploy-v2.log"
fi
eq "Swarm calls the update completed before the release starts" \
  "$(docker service inspect --format '{{.UpdateStatus.State}}' "${STACK}_api-green")" completed
eq "release v2 progressing on green" "$(status_field phase) $(status_field canary.slot) $(status_field canary.version)" "progressing green v2"

echo "# routing at weight 10"
"$bin" set-weight api 10 >/dev/null
wait_for 20 weights_are "90 10" || fail "Traefik applies weight 10 (it has $(traefik_weights))"
counts=$(requests 1000)
note "1,000 requests at weight 10: $counts"
canary=$(sed -n 's/.*200:v2=\([0-9]*\).*/\1/p' <<<"$counts")
stable=$(sed -n 's/.*200:v1=\([0-9]*\).*/\1/p' <<<"$counts")
if [ -n "$canary" ] && [ $((canary + ${stable:-0})) -eq 1000 ] && [ "$canary" -ge 90 ] && [ "$canary" -le 110 ]; then
  pass "1,000 requests through Traefik's published port: $canary reached the canary (100 ± 10), all answered 200"
else
  fail "1,000 requests at weight 10 should reach the canary 100 ± 10 times, all 200: $counts"
fi
eq "with X-Canary: true every request reaches the canary" "$(requests 200 -H 'X-Canary: true')" "200:v2=200"
if scripts/test-canary.sh "$web/" -n 10 >"$tmp/test-canary.log" 2>&1 && grep -q '^  => v2=10$' "$tmp/test-canary.log"; then
  pass "test-canary.sh: every pinned request reached v2"
else
  fail "test-canary.sh through the published port" "$tmp/test-canary.log"
fi

echo "# docker kill of canary-pilot mid-release"
"$bin" resume api >/dev/null
wait_for 20 weights_are "95 5" || fail "Traefik applies the resumed step's 5 % (it has $(traefik_weights))"
before="$(status_field phase) $(status_field weights.canary)"
eq "release resumed: progressing at 5 %" "$before" "progressing 5"
# Light traffic (the canary's share stays below min_requests, so the weight holds) and a poll of
# Traefik's router for the app, both bounded.
traffic "$tmp/kill-traffic.log" 40 25
kill_traffic=$last_pid
# shellcheck disable=SC2016 # expanded by the inner bash
bg "$tmp/router-poll.log" bash -c 'for ((i = 0; i < 400; i++)); do [ -e "$1" ] && exit 0
  curl -s -o /dev/null --max-time 1 -w "%{http_code}\n" "$2/api/http/routers/api@http"; sleep 0.1; done' _ "$tmp/stop-poll" "$api"
poller=$last_pid
sleep 3
old=$(cp_container)
SECONDS_KILL=$SECONDS
docker kill "$old" >/dev/null
restarted() {
  local c
  c=$(cp_container)
  [ -n "$c" ] && [ "$c" != "$old" ] && curl -fs -o /dev/null --max-time 1 "$CANARY_PILOT_SERVER/readyz"
}
if wait_for 60 restarted; then
  pass "Swarm restarted canary-pilot: ready again $((SECONDS - SECONDS_KILL)) s after docker kill"
else
  abort "canary-pilot did not come back within 60 s of docker kill"
fi
after="$(status_field phase) $(status_field weights.canary)"
eq "the release resumed from the volume in the same phase and weight" "$after" "$before"
wait "$kill_traffic" 2>/dev/null || true
touch "$tmp/stop-poll"
wait "$poller" 2>/dev/null || true
summary=$(traffic_summary "$tmp/kill-traffic.log")
note "traffic across the kill: $summary"
case $summary in
  *" failed=0 "*) pass "no request failed across the kill ($summary)" ;;
  *) fail "requests failed across the kill: $summary" "$tmp/kill-traffic.log" ;;
esac
polls=$(wc -l <"$tmp/router-poll.log" | tr -d ' ')
not_ok=$(grep -vcx 200 "$tmp/router-poll.log" || true)
if [ "$polls" -gt 50 ] && [ "$not_ok" -eq 0 ]; then
  pass "Traefik kept the app's router through the restart: $polls polls of /api/http/routers/api@http, all 200 (never an empty config)"
else
  fail "Traefik's router for the app went missing: $not_ok of $polls polls not 200" "$tmp/router-poll.log"
fi
# The analysis goes on after the restart (a healthy canary may advance meanwhile): Traefik must
# apply what canary-pilot says now, never a weight it did not give.
applies_current() {
  local w
  w=$(status_field weights.canary)
  [ -n "$w" ] && [ "$(traefik_weights)" = "$((100 - w)) $w" ]
}
if wait_for 10 applies_current; then
  pass "Traefik applies canary-pilot's weight after the restart ($(traefik_weights))"
else
  fail "Traefik applies $(traefik_weights), canary-pilot says $(status_field weights.canary) %"
fi

echo "# promotion under load"
SECONDS_STEP=$SECONDS
traffic "$tmp/promote-traffic.log" 250 180
promote_traffic=$last_pid
if wait_for 170 phase_is succeeded; then
  pass "v2 walked every step and was promoted by the analysis in $((SECONDS - SECONDS_STEP)) s (250 requests/s)"
else
  fail "v2 was not promoted within 170 s (phase $(status_field phase), weight $(status_field weights.canary))"
  "$bin" events api >"$tmp/events" 2>&1 || true
  abort "promotion" "$tmp/events"
fi
wait_for 20 sh -c "[ \"\$(curl -fs $api/api/http/services/api-stable@http | grep -c api-green)\" -gt 0 ]" ||
  fail "Traefik serves api-stable from api-green"
sleep 2
stop_pid "$promote_traffic"
summary=$(traffic_summary "$tmp/promote-traffic.log")
note "traffic through the release: $summary"
case $summary in
  *" failed=0 "*) pass "0 failed requests through the release and the promotion ($summary)" ;;
  *) fail "requests failed during the promotion: $summary" "$tmp/promote-traffic.log" ;;
esac
eq "stable is green, v2" "$(status_field stable.slot) $(status_field stable.version)" "green v2"
eq "after the promotion everything reaches v2" "$(requests 100)" "200:v2=100"

# --- a redeploy keeps what serves ------------------------------------------------------------------
echo "# redeploying the stack after the promotion"
tasks_of() { docker service ps -q --filter desired-state=running "${STACK}_api-blue" "${STACK}_api-green" | sort | paste -sd' '; }
slot_tasks=$(tasks_of)
for s in traefik canary-pilot prometheus; do
  echo "$s $(docker service ps -q --filter desired-state=running "${STACK}_$s")"
done >"$tmp/infra-tasks"
if docker stack deploy --resolve-image never -c swarm/stack.yml -c tests/swarm/override.yml "$STACK" >"$tmp/plain-deploy.log" 2>&1; then
  fail "a bare docker stack deploy should refuse without the slot variables" "$tmp/plain-deploy.log"
else
  # The loader names whichever missing slot variable it meets first.
  if grep -Eq 'required variable API_(BLUE|GREEN)_(IMAGE|ENV) is missing' "$tmp/plain-deploy.log"; then
    pass "a bare docker stack deploy refuses: the slots' variables are required ($(grep -o 'required variable [A-Z_]*' "$tmp/plain-deploy.log" | head -1))"
  else
    fail "a bare docker stack deploy failed for another reason" "$tmp/plain-deploy.log"
  fi
fi
SECONDS_STEP=$SECONDS
if CONFIG_VERSION=2 deploy_stack >"$tmp/redeploy.log" 2>&1; then
  pass "CONFIG_VERSION=2 scripts/deploy-stack.sh redeployed the stack"
else
  abort "CONFIG_VERSION=2 scripts/deploy-stack.sh" "$tmp/redeploy.log"
fi
if grep -q '^api-green: keeps .*APP_VERSION=v2' "$tmp/redeploy.log"; then
  pass "deploy-stack.sh kept api-green's image and environment (APP_VERSION=v2)"
else
  fail "deploy-stack.sh should say it keeps api-green at v2" "$tmp/redeploy.log"
fi
# The configs changed: Traefik, canary-pilot and Prometheus roll to them (new tasks).
rolled() {
  local s
  for s in traefik canary-pilot prometheus; do
    [ -n "$(docker service ps -q --filter desired-state=running "${STACK}_$s")" ] || return 1
    [ "$(docker service ps -q --filter desired-state=running "${STACK}_$s")" != "$(grep "^$s " "$tmp/infra-tasks" | cut -d' ' -f2)" ] || return 1
  done
  converged && routes
}
if wait_for 120 rolled; then
  pass "Traefik, canary-pilot and Prometheus rolled to the new configs; the stack converged in $((SECONDS - SECONDS_STEP)) s"
else
  service_table >"$tmp/services"
  fail "the stack did not converge after the redeploy" "$tmp/services"
fi
eq "the slots' tasks were not touched" "$(tasks_of)" "$slot_tasks"
wait_for 20 sh -c "[ \"\$(curl -fs $api/api/http/services/api-stable@http | grep -c api-green)\" -gt 0 ]" || true
eq "after the redeploy the promoted version still serves everything" "$(requests 200)" "200:v2=200"
eq "canary-pilot still says stable=green (v2), succeeded" "$(status_field stable.slot) $(status_field stable.version) $(status_field phase)" "green v2 succeeded"

# --- a bad release is rolled back --------------------------------------------------------------------
echo "# release v3 (bad: half of its answers are 500s)"
SECONDS_STEP=$SECONDS
if scripts/deploy-canary.sh api "$CANARY_PILOT_IMAGE" --version v3 -- --env-add APP_VERSION=v3 --env-add APP_ERROR_RATE=0.5 >"$tmp/deploy-v3.log" 2>&1; then
  pass "deploy-canary.sh put v3 on the idle slot blue and started the release ($((SECONDS - SECONDS_STEP)) s)"
else
  abort "deploy-canary.sh api ... --version v3" "$tmp/deploy-v3.log"
fi
SECONDS_STEP=$SECONDS
traffic "$tmp/bad-traffic.log" 200 90
bad_traffic=$last_pid
if wait_for 80 phase_is rolled_back; then
  pass "v3 rolled back by the analysis $((SECONDS - SECONDS_STEP)) s after traffic began ($(status_field reason | cut -c1-90))"
else
  fail "v3 was not rolled back within 80 s (phase $(status_field phase))"
fi
wait_for 20 weights_are "100 0" || fail "Traefik gives the canary 0 % (it has $(traefik_weights))"
stop_pid "$bad_traffic"
note "traffic during the bad release: $(traffic_summary "$tmp/bad-traffic.log")"
eq "after the rollback no request reaches v3" "$(requests 300)" "200:v2=300"

echo "# rollback-canary.sh --scale-down, then the next release"
if scripts/rollback-canary.sh api --scale-down >"$tmp/rollback.log" 2>&1; then
  pass "rollback-canary.sh --scale-down on the rolled-back release"
else
  fail "rollback-canary.sh api --scale-down" "$tmp/rollback.log"
fi
eq "canary_api-blue scaled to 0" "$(docker service ls --filter "name=${STACK}_api-blue" --format '{{.Replicas}}')" "0/0"
SECONDS_STEP=$SECONDS
if scripts/deploy-canary.sh api "$CANARY_PILOT_IMAGE" --version v4 -- --env-add APP_VERSION=v4 --env-rm APP_ERROR_RATE >"$tmp/deploy-v4.log" 2>&1; then
  pass "deploy-canary.sh put v4 on blue and started the release ($((SECONDS - SECONDS_STEP)) s)"
else
  abort "deploy-canary.sh api ... --version v4" "$tmp/deploy-v4.log"
fi
if grep -q 'has 0 replicas.*back to 2' "$tmp/deploy-v4.log"; then
  pass "deploy-canary.sh scaled the slot back to stable's 2 replicas"
else
  fail "deploy-canary.sh should scale the slot back up" "$tmp/deploy-v4.log"
fi
eq "blue runs 2 replicas again" "$(docker service ls --filter "name=${STACK}_api-blue" --format '{{.Replicas}}')" "2/2"
if scripts/promote-canary.sh api --timeout 60 >"$tmp/promote.log" 2>&1; then
  pass "promote-canary.sh promoted v4"
else
  fail "promote-canary.sh api" "$tmp/promote.log"
fi
eq "stable is blue, v4" "$(status_field stable.slot) $(status_field stable.version)" "blue v4"
wait_for 20 sh -c "[ \"\$(curl -fs $api/api/http/services/api-stable@http | grep -c api-blue)\" -gt 0 ]" ||
  fail "Traefik serves api-stable from api-blue"
eq "everything reaches v4" "$(requests 100)" "200:v4=100"

# --- service slots -------------------------------------------------------------------------------
# shellcheck source=tests/swarm/tasks.sh
source tests/swarm/tasks.sh
# shellcheck source=tests/swarm/managed.sh
source tests/swarm/managed.sh

# --- logs ------------------------------------------------------------------------------------------
echo "# logs"
docker service logs --raw "${STACK}_canary-pilot" >"$tmp/pilot.log" 2>&1
if ! grep -q $'\x1b\[' "$tmp/pilot.log"; then pass "canary-pilot's logs carry no ANSI colour codes"; else fail "ANSI codes in canary-pilot's logs" "$tmp/pilot.log"; fi
if python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no log lines"
for l in lines:
    json.loads(l)
' "$tmp/pilot.log" 2>"$tmp/pilot-json.err"; then
  pass "canary-pilot logs JSON lines (--log-format json)"
else
  fail "canary-pilot's logs are not JSON lines" "$tmp/pilot-json.err"
fi
note "canary-pilot logged 'metrics source unreachable' $(grep -c 'metrics source unreachable' "$tmp/pilot.log" || true) time(s) over the run"

finished=true
note "done"
