#!/usr/bin/env bash
# The admin API against its spec: schemathesis generates requests from docs/openapi.yaml (valid
# and invalid ones) and sends them to a live daemon, checking every answer: no server error, the
# status code is one the spec lists for the call, the Content-Type and the body are the spec's.
#
#   bash tests/api_schema.sh            # about a minute after the build
#
# schemathesis (PyPI, pinned) goes into the git-ignored virtualenv .tools/venv, which
# scripts/setup.sh creates for Traefik; the binary is target/debug/canary-pilot (built when
# missing; CANARY_PILOT_BIN overrides it). The daemon runs on a port chosen now, with a config,
# state file and admin token in a temporary directory, and is stopped on exit. Knobs:
# API_SCHEMA_EXAMPLES (cases per operation and phase, default 40), API_SCHEMA_TIMEOUT (seconds
# for schemathesis, default 100), API_SCHEMA_SEED.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

SCHEMATHESIS_VERSION=${SCHEMATHESIS_VERSION:-4.32.5}
venv="$root/.tools/venv"
examples=${API_SCHEMA_EXAMPLES:-40}
budget=${API_SCHEMA_TIMEOUT:-100}

log() { printf 'api_schema: %s\n' "$*" >&2; }
fail() {
  log "FAILED: $*"
  echo "api_schema: 0 passed, 1 failed"
  exit 1
}

have_schemathesis() {
  local out
  [ -x "$venv/bin/schemathesis" ] && out=$("$venv/bin/schemathesis" --version 2>/dev/null) &&
    [[ $out == *"$SCHEMATHESIS_VERSION"* ]]
}

if have_schemathesis; then
  log "schemathesis $SCHEMATHESIS_VERSION already in $venv"
else
  log "installing schemathesis==$SCHEMATHESIS_VERSION into $venv"
  { [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"; } ||
    fail "could not create the virtualenv $venv: install python3 and python3-venv (Debian: apt-get install python3-venv), or run scripts/setup.sh"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" </dev/null ||
    fail "pip could not install schemathesis==$SCHEMATHESIS_VERSION into $venv (it needs PyPI): retry with network access, or install it there by hand: $venv/bin/pip install schemathesis==$SCHEMATHESIS_VERSION"
  have_schemathesis || fail "schemathesis installed but $venv/bin/schemathesis does not report $SCHEMATHESIS_VERSION"
fi

bin=${CANARY_PILOT_BIN:-$root/target/debug/canary-pilot}
if [ ! -x "$bin" ]; then
  log "building $bin"
  cargo build --quiet --bin canary-pilot </dev/null || fail "cargo build failed"
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port, chosen now: bind port 0 and read what the kernel gave.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token="schema-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
printf '%s\n' "$token" > "$work/admin_token"
# Two apps whose slots nothing serves (analyses are inconclusive, which is fine): `api` served,
# `web` in dry run, so that answers carry dry-run views and events too. Nothing answers on
# port 1, so every analysis fails to collect and is inconclusive.
cat > "$work/canary-pilot.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
state_file = "$work/state.json"
admin_token_file = "$work/admin_token"

[metrics]
source = "traefik"
traefik_urls = ["http://127.0.0.1:1/metrics"]

[apps.api]
rule = "Host(\`api.localhost\`)"
entry_points = ["web"]
slots = { blue = ["http://127.0.0.1:1"], green = ["http://127.0.0.1:2"] }
initial_stable = "blue"
pin_cookie = "canary"
sticky_cookie = "api_lb"

[apps.api.analysis]
interval = "1s"
steps = [10, 50, 100]

[apps.web]
rule = "Host(\`web.localhost\`)"
entry_points = ["web"]
slots = { blue = ["http://127.0.0.1:3"], green = ["http://127.0.0.1:4"] }
initial_stable = "green"

[apps.web.analysis]
interval = "1s"
steps = [20, 100]
dry_run = true
EOF

log "starting $bin serve on 127.0.0.1:$port"
RUST_LOG=warn "$bin" serve --config "$work/canary-pilot.toml" </dev/null > "$work/daemon.log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
ready=""
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "the daemon exited before it was ready"; }
  if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { cat "$work/daemon.log" >&2; fail "the daemon did not answer /readyz within 10 s"; }

# Checks: every answer is checked against the spec (status, Content-Type, headers, body), no
# answer is a 5xx, a request the spec calls invalid is refused with a 4xx, and one it calls valid
# is not refused as malformed (400, 422).
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance
seed=()
[ -z "${API_SCHEMA_SEED:-}" ] || seed=(--seed "$API_SCHEMA_SEED")
log "schemathesis against $url (at most $examples cases per operation and phase, ${budget}s)"
status=0
# From the temporary directory, where schemathesis keeps its cache.
(cd "$work" && SCHEMATHESIS_HOOKS=api_schema_hooks PYTHONPATH="$root/tests" NO_COLOR=1 \
  timeout -k 10 "$budget" "$venv/bin/schemathesis" run "$root/docs/openapi.yaml" \
  --url "$url" \
  --header "Authorization: Bearer $token" \
  --checks "$checks" \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$examples" \
  --workers 1 \
  --request-timeout 10 \
  --suppress-health-check too_slow,filter_too_much \
  --report-dir "$work/report" \
  "${seed[@]}" </dev/null) || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
  cat "$work/daemon.log" >&2
  fail "the daemon died during the run"
fi
if grep -q 'panicked' "$work/daemon.log"; then
  grep -B2 -A5 'panicked' "$work/daemon.log" >&2
  fail "the daemon panicked during the run"
fi
case $status in
  0) ;;
  124 | 137) fail "schemathesis did not finish within ${budget}s" ;;
  *) fail "schemathesis found failures (exit $status); the report is above" ;;
esac
echo "api_schema: 1 passed, 0 failed"
