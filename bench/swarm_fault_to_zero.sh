#!/usr/bin/env bash
# Benchmark 5 (issue 15): on a real single-node Docker Swarm, the time from the first failing
# request of a bad release to zero canary traffic. swarm/stack.yml deployed as the Swarm suite
# deploys it (scripts/deploy-stack.sh -c tests/swarm/override.yml, images from
# scripts/swarm-images.sh), 200 requests/s from the host through Traefik's published port, and per
# repetition one bad release through scripts/deploy-canary.sh: the demo backend answering every
# request with 500 (APP_ERROR_RATE=1). Twice: with benchmark 2's analysis settings (interval 1 s,
# steps [10, 50], min_requests 20: the loopback figure's twin) and with swarm/canary-pilot.toml as
# shipped (interval 10 s). It reports, it asserts nothing; not part of the test suite.
#   bench/swarm_fault_to_zero.sh [--reps N] [--out FILE]
#   (default 5 repetitions per setting; FILE: bench/results/5-swarm-fault-to-zero.md)
# Root, like tests/swarm/run.sh: it starts dockerd when none runs (and stops it), and removes the
# stack, its volumes, secrets and images at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
source bench/tools/common.sh
source scripts/swarm-engine.sh

reps=5
out=bench/results/5-swarm-fault-to-zero.md
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
cmdline=bench/swarm_fault_to_zero.sh
if [ "$reps" != 5 ]; then cmdline+=" --reps $reps"; fi
RPS=200
STACK=canary
# The images carry the debug build: our machines build no release binary (its dependencies are
# built at opt-level 2 all the same).
BIN=$PWD/target/debug/canary-pilot
[ -x "$BIN" ] || { blog "$BIN not found: cargo build"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/canary-pilot-bench-swarm.XXXXXX")
deployed=false
cleanup() {
  set +e
  stop_all
  if $deployed; then
    docker stack rm "$STACK" >/dev/null 2>&1
    for _ in $(seq 120); do
      [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] &&
        [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ] && break
      sleep 0.5
    done
    for v in $(docker volume ls -q --filter label=canary-pilot.test=swarm-suite); do
      for _ in $(seq 20); do docker volume rm "$v" >/dev/null 2>&1 && break; sleep 0.5; done
    done
    # shellcheck disable=SC2046 # a list of IDs
    docker config rm $(docker config ls -q --filter "label=com.docker.stack.namespace=$STACK") >/dev/null 2>&1
    docker secret rm canary_admin_token canary_provider_token grafana_admin_password >/dev/null 2>&1
    scripts/swarm-images.sh --remove
  fi
  engine_down
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
started=$SECONDS

bench_tools # Traefik, Prometheus and the engine's packages, through scripts/setup.sh
engine_up || { blog "no Docker engine: $ENGINE_HOWTO"; exit 1; }
if docker stack ls --format '{{.Name}}' | grep -qx "$STACK" ||
  docker secret ls --format '{{.Name}}' | grep -qx canary_admin_token; then
  blog "a stack $STACK or its secrets exist on this engine: remove them first (this benchmark deploys its own)"
  exit 1
fi
admin_token=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
printf '%s' "$admin_token" | docker secret create canary_admin_token - >/dev/null
"$PY" -c 'import secrets; print(secrets.token_hex(32), end="")' | docker secret create canary_provider_token - >/dev/null
"$PY" -c 'import secrets; print(secrets.token_hex(16))' | docker secret create grafana_admin_password - >/dev/null
deployed=true
eval "$(scripts/swarm-images.sh --env)"
export CANARY_PILOT_IMAGE TRAEFIK_IMAGE PROMETHEUS_IMAGE
read -r TRAEFIK_WEB_PORT TRAEFIK_API_PORT CANARY_PILOT_PORT PROMETHEUS_PORT GRAFANA_PORT < <(free_ports 5)
export TRAEFIK_WEB_PORT TRAEFIK_API_PORT CANARY_PILOT_PORT PROMETHEUS_PORT GRAFANA_PORT
export CANARY_PILOT=$BIN CANARY_PILOT_SERVER=http://127.0.0.1:$CANARY_PILOT_PORT CANARY_PILOT_TOKEN=$admin_token

# Benchmark 2's analysis section on the shipped config, as a Docker config of its own.
sed -n '/^\[apps.api.analysis\]/q;p' swarm/canary-pilot.toml >"$work/bench.toml"
cat >>"$work/bench.toml" <<EOF
[apps.api.analysis]
interval = "1s"
steps = [10, 50]
min_requests = 20
EOF
cat >"$work/bench-override.yml" <<EOF
version: "3.8"
configs:
  canary_pilot_toml:
    name: canary_pilot_toml_bench2
    file: $work/bench.toml
EOF

# wait_ready: every service of the stack converged and Traefik routing the app.
wait_ready() {
  local s want
  for _ in $(seq 240); do
    local ok=true
    for s in traefik canary-pilot prometheus api-blue api-green; do
      want=$(docker service inspect --format '{{.Spec.Mode.Replicated.Replicas}}' "${STACK}_$s")
      docker service ls --filter "name=${STACK}_$s" --format '{{.Name}} {{.Replicas}}' | grep -qx "${STACK}_$s $want/$want" || ok=false
    done
    $ok && curl -fs -o /dev/null --max-time 1 -H 'Host: api.localhost' "http://127.0.0.1:$TRAEFIK_WEB_PORT/" &&
      curl -fs -o /dev/null --max-time 1 "$CANARY_PILOT_SERVER/readyz" && return 0
    sleep 0.5
  done
  blog "the stack did not converge"
  docker service ls >&2
  return 1
}

# The probe: tails demo-traffic's 100 ms reports (each timestamped on arrival), polls Traefik's
# API and canary-pilot's, and prints one JSON record per release once the canary's weight is 0 at
# Traefik and no canary answer came for 2 s.
cat >"$work/probe.py" <<'EOF'
import json, re, sys, threading, time, urllib.request
log, traefik, pilot, version, limit = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
LINE = re.compile(r"(\S+) (\d+) \((\d+) err\)")
lines, lock = [], threading.Lock()
def tail():
    f = open(log); f.seek(0, 2); buf = ""
    while True:
        chunk = f.read()
        if not chunk:
            time.sleep(0.01); continue
        now = time.time(); buf += chunk
        *done, buf = buf.split("\n")
        for l in done:
            if l.startswith("t="):
                c = {v: int(n) for v, n, _ in LINE.findall(l)}
                e = sum(int(x) for _, _, x in LINE.findall(l))
                with lock: lines.append((now, c, e))
threading.Thread(target=tail, daemon=True).start()
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r: return json.loads(r.read())
    except Exception: return None
def canary_weight():
    s = get(traefik + "/api/http/services/api@http") or {}
    return next((x.get("weight", 0) for x in s.get("weighted", {}).get("services", []) if x["name"] == "api-canary"), None)
start = time.time(); t0 = t_zero = None
while time.time() - start < limit:
    with lock: snap = list(lines)
    if t0 is None:
        bad = [t for t, c, e in snap if e > 0]
        if bad: t0 = bad[0] - 0.1          # the start of the first report window with a failure
    else:
        if t_zero is None and canary_weight() == 0: t_zero = time.time()
        last = max((t for t, c, _ in snap if c.get(version, 0) > 0), default=t0)
        if t_zero is not None and time.time() - max(t_zero, last) >= 2: break
    time.sleep(0.05)
rec = {"version": version}
if t0 is None:
    rec["error"] = "no failing request seen"
else:
    with lock: after = [x for x in lines if x[0] > t0]
    canary = [t for t, c, _ in after if c.get(version, 0) > 0]
    rec["last_canary_answer_s"] = round(max(canary) - t0, 2) if canary else 0.0
    rec["traefik_weight_0_s"] = None if t_zero is None else round(t_zero - t0, 2)
    ev = (get(pilot + "/api/v1/events?app=api&limit=20") or {}).get("events", [])
    rb = [e for e in ev if e["kind"] == "rolled_back" and e.get("version") == version]
    started_ev = [e for e in ev if e["kind"] == "started" and e.get("version") == version]
    rec["rolled_back_event_s"] = round(rb[-1]["time_ms"] / 1000 - t0, 2) if rb else None
    rec["started_event_s"] = round(started_ev[-1]["time_ms"] / 1000 - t0, 2) if started_ev else None
    rec["failed_client_requests"] = sum(e for _, _, e in after)
    rec["canary_answers"] = sum(c.get(version, 0) for _, c, _ in after)
    app = get(pilot + "/api/v1/apps/api") or {}
    last = (app.get("analyses") or [{}])[0]
    rec["deciding_window"] = {k: last.get(k) for k in ("verdict", "canary_requests", "stable_requests", "window_seconds")}
    rec["reason"] = (rb[-1]["reason"] if rb else "")[:160]
print(json.dumps(rec), flush=True)
EOF

rep_no=0
# run_setting NAME: $reps bad releases, one JSON line each in $work/NAME.jsonl.
run_setting() {
  local name=$1 rep version
  : >"$work/$name.jsonl"
  for rep in $(seq "$reps"); do
    rep_no=$((rep_no + 1))
    version=bad$rep_no
    "$PY" "$work/probe.py" "$work/traffic.log" "http://127.0.0.1:$TRAEFIK_API_PORT" "$CANARY_PILOT_SERVER" "$version" 240 \
      >"$work/probe.out" 2>"$work/probe.err" &
    local probe=$!
    sleep 0.3
    scripts/deploy-canary.sh api "$CANARY_PILOT_IMAGE" --version "$version" -- \
      --env-add APP_VERSION="$version" --env-add APP_ERROR_RATE=1 >"$work/deploy-$version.log" 2>&1 ||
      { cat "$work/deploy-$version.log" >&2; exit 1; }
    wait "$probe" || { cat "$work/probe.err" >&2; exit 1; }
    sed "s/^{/{\"setting\": \"$name\", \"rep\": $rep, /" "$work/probe.out" | tee -a "$work/$name.jsonl" |
      "$PY" -c 'import json,sys
r=json.loads(sys.stdin.read()); print("  %s rep %s: last canary answer %ss, Traefik 0%% %ss, rolled_back %ss, %s failed" % (r["setting"], r["rep"], r.get("last_canary_answer_s"), r.get("traefik_weight_0_s"), r.get("rolled_back_event_s"), r.get("failed_client_requests")), file=sys.stderr)'
    # The next release starts from a settled state: rolled back, Traefik at 0 % for it.
    for _ in $(seq 40); do [ "$("$BIN" status api --output json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["phase"])')" = rolled_back ] && break; sleep 0.5; done
    sleep 1
  done
}

blog "deploying the stack (benchmark 2's analysis settings)"
scripts/deploy-stack.sh -c tests/swarm/override.yml -c "$work/bench-override.yml" -- --resolve-image never >"$work/deploy.log" 2>&1 ||
  { cat "$work/deploy.log" >&2; exit 1; }
wait_ready
start_bg "$work/traffic.log" "$BIN" demo-traffic --url "http://127.0.0.1:$TRAEFIK_WEB_PORT/" --host api.localhost \
  --rps $RPS --workers 16 --duration 30m --report 100ms
sleep 3
blog "benchmark 2's settings: $reps bad releases"
run_setting bench2

blog "redeploying with swarm/canary-pilot.toml as shipped"
CONFIG_VERSION=shipped scripts/deploy-stack.sh -c tests/swarm/override.yml -- --resolve-image never >"$work/redeploy.log" 2>&1 ||
  { cat "$work/redeploy.log" >&2; exit 1; }
for _ in $(seq 120); do
  docker service inspect --format '{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{.ConfigName}} {{end}}' "${STACK}_canary-pilot" |
    grep -q canary_pilot_toml_shipped && break
  sleep 0.5
done
sleep 5
wait_ready
sleep 3
blog "as shipped: $reps bad releases"
run_setting shipped
elapsed=$((SECONDS - started))

# --- results ----------------------------------------------------------------------------------
loopback=$(grep '^| traefik | ' bench/results/2-fault-to-zero.md | head -1 || true)
mkdir -p "$(dirname "$out")"
{
  cat <<EOF
# Benchmark 5: from the first failing request of a bad release to zero canary traffic, on a real Swarm

Issue 15. It reports; it asserts nothing. Not part of the test suite.

## Reproduce

\`\`\`sh
$cmdline          # as root; writes this file
\`\`\`

Produced by: \`$cmdline\` (this run took ${elapsed} s).

The setup is the Swarm suite's (\`tests/swarm/run.sh\`): Debian's Docker Engine, a one-node
swarm, \`swarm/stack.yml\` deployed with \`scripts/deploy-stack.sh -c tests/swarm/override.yml\`
(every service \`endpoint_mode: dnsrr\` and host-mode ports: this kernel has no IPVS), images
built by \`scripts/swarm-images.sh\` from the binaries on the machine (canary-pilot's **debug**
build, whose dependencies are built at opt-level 2; benchmark 2 ran the release build). Traefik
polls canary-pilot every 1 s (\`traefik/traefik-swarm.yml\`) and canary-pilot scrapes Traefik's
\`/metrics\` over the overlay network (the \`traefik\` source). \`canary-pilot demo-traffic --rps
$RPS --workers 16 --report 100ms\` runs on the host against Traefik's port published on 127.0.0.1
for the whole run.

One repetition: \`scripts/deploy-canary.sh api IMAGE --version badN -- --env-add
APP_VERSION=badN --env-add APP_ERROR_RATE=1\` on the idle slot (a rolling update of its two
replicas, then the wait for Swarm's \`completed\`, then \`canary-pilot start\`): from its first
request the canary answers every request with 500. Measured from **t0, the start of the first
100 ms report window of the traffic generator holding a failed request** (so within 0.1 s before
the first failing request):

- *last canary answer*: the end of the last report window holding an answer from the bad
  version, minus t0: zero canary traffic, to 0.1 s;
- *Traefik at 0 %*: when Traefik's API (\`/api/http/services/api@http\`) first showed the canary's
  weight at 0;
- *rolled_back event*: the event's time (the decision), minus t0; *started event*: the release's
  start, minus t0 (negative: it came before the first failure, which needs Traefik's next poll);
- *failed client requests*: 5xx and transport errors seen by the traffic generator after t0.

Two settings, the same stack: **bench2**, benchmark 2's analysis section (\`interval = "1s"\`,
\`steps = [10, 50]\`, \`min_requests = 20\`, everything else at its default) on
\`swarm/canary-pilot.toml\`, mounted by a config of its own; **shipped**, \`swarm/canary-pilot.toml\`
as it is (\`interval = "10s"\`, \`steps = [5, 10, 25, 50, 100]\`, \`min_requests = 100\`), after
\`CONFIG_VERSION=shipped scripts/deploy-stack.sh\`.

## Environment

- host: $(nproc) CPUs ($(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)
- canary-pilot: $("$BIN" --version | head -1) (debug build), $(rustc --version 2>/dev/null)
- Docker Engine: $(docker version --format '{{.Server.Version}}') (client $(docker version --format '{{.Client.Version}}')), one-node swarm
- Traefik: $("$TRAEFIK" version 2>/dev/null | awk '/^Version/ {print $2}')
- date: $(date -u +%Y-%m-%dT%H:%MZ); load average when the results were written: $(cut -d' ' -f1-3 /proc/loadavg) (at the start: $BENCH_LOAD_START)
- CPU steal while it ran: $(echo "$BENCH_CPU_START $(cpu_ticks)" | awk '{d = $3 - $1; printf "%.0f %%", (d > 0 ? 100 * ($4 - $2) / d : 0)}')

## Results

$("$PY" - "$work" "$loopback" <<'PYEOF'
import json, statistics, sys
work, loopback = sys.argv[1], sys.argv[2]
def rows(name):
    return [json.loads(l) for l in open(f"{work}/{name}.jsonl") if l.strip()]
def ms(vals):
    vals = [v for v in vals if v is not None]
    return f"{statistics.median(vals):g} s / {max(vals):g} s" if vals else "-"
print("| setting | reps | first failure → last canary answer (median / max) | → Traefik shows canary 0 % | → rolled_back event | failed client requests (median / max) |")
print("|---|---:|---:|---:|---:|---:|")
for name in ["bench2", "shipped"]:
    rs = [r for r in rows(name) if "error" not in r]
    if not rs:
        print(f"| {name} | 0 | - | - | - | - |"); continue
    f = [r["failed_client_requests"] for r in rs]
    print(f"| {name} (Swarm) | {len(rs)} | {ms([r['last_canary_answer_s'] for r in rs])} | {ms([r['traefik_weight_0_s'] for r in rs])} "
          f"| {ms([r['rolled_back_event_s'] for r in rs])} | {statistics.median(f):g} / {max(f)} |")
if loopback:
    cells = [c.strip() for c in loopback.strip("|").split("|")]
    print(f"| loopback, benchmark 2 (traefik source, release build, fault injected mid-release) | {cells[1]} | {cells[2]} | {cells[3]} | {cells[4]} | {cells[5]} |")
print()
print("Every repetition (seconds from t0):")
print()
print("| setting | rep | started event | last canary answer | Traefik at 0 % | rolled_back event | failed client requests | canary answers | deciding window: verdict, canary / stable requests, length |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for name in ["bench2", "shipped"]:
    for r in rows(name):
        if "error" in r:
            print(f"| {name} | {r['rep']} | {r['error']} | | | | | | |"); continue
        w = r.get("deciding_window") or {}
        secs = w.get("window_seconds")
        win = f"{w.get('verdict')}, {w.get('canary_requests'):g} / {w.get('stable_requests'):g}, {secs:.2f} s" if secs is not None else "-"
        print(f"| {name} | {r['rep']} | {r['started_event_s']} | {r['last_canary_answer_s']} | {r['traefik_weight_0_s']} | {r['rolled_back_event_s']} | {r['failed_client_requests']} | {r['canary_answers']} | {win} |")
PYEOF
)

## Reading

$("$PY" - "$work" "$loopback" "$RPS" <<'PYEOF'
import json, statistics, sys
work, loopback, rps = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(name):
    return [r for r in (json.loads(l) for l in open(f"{work}/{name}.jsonl") if l.strip()) if "error" not in r]
b, s = rows("bench2"), rows("shipped")
med = lambda rs, k: statistics.median(r[k] for r in rs)
top = lambda rs, k: max(r[k] for r in rs)
if b:
    lb = ""
    if loopback:
        cells = [c.strip() for c in loopback.strip("|").split("|")]
        lb = f" Benchmark 2 measured {cells[2]} (median / max) on loopback with the same settings."
    print(f"- **The same analysis as benchmark 2, on the real Swarm**: zero canary traffic {med(b, 'last_canary_answer_s'):g} s "
          f"after the first failing request (median; max {top(b, 'last_canary_answer_s'):g} s), {med(b, 'failed_client_requests'):g} "
          f"failed requests (median; max {top(b, 'failed_client_requests')}), all of them answers of the bad canary. The decision "
          f"(rolled_back event) came {med(b, 'rolled_back_event_s'):g} s after the first failure (median); the rest is Traefik's "
          f"1 s poll and its reload.{lb} The two are not the same experiment: here the release is bad from its first request "
          f"(no good canary requests in the window), t0 is the first failing request seen by the client (to 0.1 s), the "
          f"controller is the debug build, and the figures travel over the overlay network (Traefik's /metrics, its poll "
          f"of /traefik), with every request through the host-mode published port.")
if s:
    print(f"- **swarm/canary-pilot.toml as shipped** (interval 10 s, first step 5 %): {med(s, 'last_canary_answer_s'):g} s "
          f"(median; max {top(s, 'last_canary_answer_s'):g} s) and {med(s, 'failed_client_requests'):g} failed requests "
          f"(median; max {top(s, 'failed_client_requests')}). The decision waits for the first whole analysis window after "
          f"the start (the collection under way when the release started is not judged), and at 5 % of {rps} requests/s "
          f"that window holds about {rps // 20 * 10} failing canary requests; it is critical at once. A shorter interval "
          f"buys a faster rollback (the bench2 row) at the price of more ticks.")
PYEOF
)
EOF
} >"$out"
blog "wrote $out (${elapsed}s)"
