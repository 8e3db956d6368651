# Swarm service slots on the real engine, sourced by tests/swarm/run.sh (its helpers, images and
# cleanup): tests/swarm/tasks/stack.yml (stack cpt) has an app whose two slots are Swarm services
# and two replicas of one Traefik service, each on a host port of its own. canary-pilot reads the
# engine through its socket: one Traefik server per running task, both replicas scraped.

TASKS_STACK=cpt
# wait_for_output SECONDS CMD...: until CMD succeeds, then what it printed.
wait_for_output() {
  local deadline=$((SECONDS + $1)) out
  shift
  until out=$("$@" 2>/dev/null); do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
  echo "$out"
}
echo "# service slots: routed to the tasks, every Traefik replica scraped (stack $TASKS_STACK)"
read -r TASKS_PILOT_PORT < <(free_ports 1)
export TASKS_PILOT_PORT
tasks_pilot=http://127.0.0.1:$TASKS_PILOT_PORT
tasks_deployed=true
SECONDS_STEP=$SECONDS
docker stack deploy --resolve-image never -c tests/swarm/tasks/stack.yml "$TASKS_STACK" >"$tmp/tasks-deploy.log" 2>&1 ||
  abort "docker stack deploy -c tests/swarm/tasks/stack.yml" "$tmp/tasks-deploy.log"
tasks_converged() {
  [ "$(docker service ls --filter "label=com.docker.stack.namespace=$TASKS_STACK" --format '{{.Name}}={{.Replicas}}' | sort | tr '\n' ' ')" = \
    "cpt_app-blue=2/2 cpt_app-green=2/2 cpt_canary-pilot=1/1 cpt_traefik=2/2 " ] &&
    curl -fs -o /dev/null --max-time 2 "$tasks_pilot/readyz"
}
if wait_for 120 tasks_converged; then
  pass "stack $TASKS_STACK converged in $((SECONDS - SECONDS_STEP)) s: 2 Traefik replicas, canary-pilot, app-blue 2, app-green 2"
else
  docker service ls --filter "label=com.docker.stack.namespace=$TASKS_STACK" >"$tmp/tasks-services" 2>&1
  docker service logs --raw "${TASKS_STACK}_canary-pilot" >>"$tmp/tasks-services" 2>&1
  abort "stack $TASKS_STACK did not converge within 120 s" "$tmp/tasks-services"
fi

# task_ports SERVICE TARGET: the host port each running task published for TARGET.
task_ports() {
  local t
  for t in $(docker service ps -q --filter desired-state=running "$1"); do
    docker inspect --format "{{range .Status.PortStatus.Ports}}{{if eq .TargetPort $2}}{{.PublishedPort}} {{end}}{{end}}" "$t" | awk '{print $1}'
  done | sort -u
}
read -r -a web_ports <<<"$(task_ports "${TASKS_STACK}_traefik" 80 | tr '\n' ' ')"
read -r -a api_ports <<<"$(task_ports "${TASKS_STACK}_traefik" 8081 | tr '\n' ' ')"
eq "each Traefik replica has a web and an API port of its own" "${#web_ports[@]} ${#api_ports[@]}" "2 2"
# shop_requests PORT N: N sequential requests to one replica; "CODE:VERSION=COUNT" counts.
shop_requests() {
  curl -s -o /dev/null --max-time 60 -w '%{http_code}:%header{x-version}\n' -H 'Host: shop.localhost' "http://127.0.0.1:$1/?n=[1-$2]" |
    sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }'
}
wait_for 30 sh -c "curl -fs -o /dev/null -H 'Host: shop.localhost' http://127.0.0.1:${web_ports[0]}/ && curl -fs -o /dev/null -H 'Host: shop.localhost' http://127.0.0.1:${web_ports[1]}/" ||
  fail "both Traefik replicas route shop.localhost"
eq "replica 1 routes to the stable slot's tasks" "$(shop_requests "${web_ports[0]}" 50)" "200:v1=50"
eq "replica 2 routes to the stable slot's tasks" "$(shop_requests "${web_ports[1]}" 50)" "200:v1=50"

# The servers Traefik has for a role, and the task addresses Docker has for a service.
traefik_servers() { # traefik_servers ROLE: sorted server hosts of shop-ROLE@http on replica 1
  curl -fs --max-time 2 "http://127.0.0.1:${api_ports[0]}/api/http/services/shop-$1@http" | python3 -c '
import json, sys
from urllib.parse import urlsplit
print(" ".join(sorted(urlsplit(s["url"]).hostname for s in json.load(sys.stdin)["loadBalancer"]["servers"])))'
}
task_addresses() { # task_addresses SERVICE: sorted addresses of its running tasks on the network
  local t
  for t in $(docker service ps -q --filter desired-state=running "$1"); do
    [ "$(docker inspect --format '{{.Status.State}}' "$t")" = running ] || continue
    docker inspect --format '{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "cpt_net"}}{{range .Addresses}}{{.}}{{end}}{{end}}{{end}}' "$t" | cut -d/ -f1
  done | sort | tr '\n' ' ' | sed 's/ $//'
}
servers_are_tasks() { [ "$(traefik_servers "$1")" = "$(task_addresses "${TASKS_STACK}_app-$2")" ] && [ -n "$(traefik_servers "$1")" ]; }
if wait_for 10 servers_are_tasks stable blue; then
  pass "Traefik's shop-stable servers are app-blue's 2 tasks, no service VIP: $(traefik_servers stable)"
else
  fail "shop-stable servers: '$(traefik_servers stable)', app-blue tasks: '$(task_addresses "${TASKS_STACK}_app-blue")'"
fi
servers_are_tasks canary green && pass "shop-canary's servers are app-green's tasks" ||
  fail "shop-canary servers: '$(traefik_servers canary)', app-green tasks: '$(task_addresses "${TASKS_STACK}_app-green")'"
eq "/readyz with both services found" "$(curl -s "$tasks_pilot/readyz")" '{"status":"ready"}'

echo "# a release on service slots: scale the stable service 2 -> 4 -> 2 under load"
tasks_cli() { CANARY_PILOT_SERVER=$tasks_pilot "$bin" "$@"; }
tasks_field() { tasks_cli status shop --output json | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"; }
tasks_cli start shop --version v2 >"$tmp/tasks-start.log" 2>&1 || fail "start shop --version v2" "$tmp/tasks-start.log"
eq "release v2 at 50 %" "$(tasks_field phase) $(tasks_field weights.canary)" "progressing 50"
bg "$tmp/tasks-traffic-a.log" "$bin" demo-traffic --url "http://127.0.0.1:${web_ports[0]}/" --host shop.localhost --rps 100 --workers 4 --duration 40s --report 1s
traffic_a=$last_pid
bg "$tmp/tasks-traffic-b.log" "$bin" demo-traffic --url "http://127.0.0.1:${web_ports[1]}/" --host shop.localhost --rps 100 --workers 4 --duration 40s --report 1s
traffic_b=$last_pid
sleep 3
server_count() { traefik_servers "$1" | wc -w | tr -d ' '; }
# scale_blue N WHAT: scale app-blue to N; Traefik must have N stable servers within 30 s.
scale_blue() {
  SECONDS_STEP=$SECONDS
  docker service scale -d "${TASKS_STACK}_app-blue=$1" >/dev/null
  if wait_for 30 sh -c "[ \"\$(curl -fs --max-time 2 http://127.0.0.1:${api_ports[0]}/api/http/services/shop-stable@http | grep -o '\"url\"' | wc -l)\" -eq $1 ]"; then
    pass "scaled app-blue $2 $1: Traefik has $1 stable servers $((SECONDS - SECONDS_STEP)) s later"
  else
    fail "after scaling app-blue $2 $1 Traefik has $(server_count stable) stable servers"
  fi
}
scale_blue 4 to
servers_are_tasks stable blue && pass "they are the 4 running tasks" || fail "stable servers '$(traefik_servers stable)' vs tasks '$(task_addresses "${TASKS_STACK}_app-blue")'"
eq "canary-pilot shows 4 stable servers" "$(tasks_cli status shop --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["stable"]["servers"]))')" 4
scale_blue 2 "back to"
# The stopped tasks drain for 6 s; the load runs on past them.
wait_for 60 sh -c "! kill -0 $traffic_a 2>/dev/null && ! kill -0 $traffic_b 2>/dev/null" || true
stop_pid "$traffic_a"
stop_pid "$traffic_b"
summary_a=$(traffic_summary "$tmp/tasks-traffic-a.log")
summary_b=$(traffic_summary "$tmp/tasks-traffic-b.log")
note "load through replica 1: $summary_a; replica 2: $summary_b"
failed_a=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$summary_a")
failed_b=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$summary_b")
answered_a=$(sed -n 's/answered=\([0-9]*\).*/\1/p' <<<"$summary_a")
if [ "${failed_a:-x}" = 0 ] && [ "${failed_b:-x}" = 0 ] && [ "${answered_a:-0}" -gt 1000 ]; then
  pass "0 failed requests through both replicas while app-blue scaled 2 -> 4 -> 2 mid-release"
else
  fail "failed requests while scaling: replica 1 $summary_a, replica 2 $summary_b" "$tmp/tasks-traffic-a.log"
fi

echo "# every Traefik replica counted"
# seen: the requests of both sides in the release's current step, as canary-pilot counted them.
seen() { curl -fs "$tasks_pilot/api/v1/apps/shop" | python3 -c '
import json, sys
a = json.load(sys.stdin)["analyses"][0]
print(int(a["canary_requests"] + a["stable_requests"]))'; }
settled() { # settled: the count stopped moving (two reads 2.5 s apart agree); prints it
  local a b
  a=$(seen) && sleep 2.5 && b=$(seen) && [ "$a" = "$b" ] && echo "$b"
}
before=$(wait_for_output 20 settled)
sent_a=$(shop_requests "${web_ports[0]}" 600)
sent_b=$(shop_requests "${web_ports[1]}" 400)
after=$(wait_for_output 20 settled)
note "sent 600 through replica 1 ($sent_a) and 400 through replica 2 ($sent_b); canary-pilot counted $before before, $after after"
delta=$(( ${after:-0} - ${before:-0} ))
if [ -n "$before" ] && [ -n "$after" ] && [ "$delta" -ge 990 ] && [ "$delta" -le 1010 ]; then
  pass "canary-pilot counted $delta of the 1,000 requests sent through the two replicas (within 1 %)"
else
  fail "canary-pilot counted $delta of the 1,000 requests sent through the two replicas (before '$before', after '$after')"
fi
source_text=$(curl -fs "$tasks_pilot/api/v1/apps/shop" | python3 -c 'import json,sys; print(json.load(sys.stdin)["analyses"][0]["source"])')
eq "it scrapes both replicas' tasks" "$(grep -o 'http://[0-9.]*:8082/metrics' <<<"$source_text" | wc -l | tr -d ' ')" 2

echo "# promotion on service slots"
tasks_cli promote shop >"$tmp/tasks-promote.log" 2>&1 || fail "promote shop" "$tmp/tasks-promote.log"
wait_for 20 sh -c "[ \"\$(CANARY_PILOT_SERVER=$tasks_pilot $bin status shop --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"phase\"])')\" = succeeded ]" ||
  fail "shop not succeeded after promote (phase $(tasks_field phase))"
eq "stable is green, v2" "$(tasks_field stable.slot) $(tasks_field stable.version)" "green v2"
wait_for 20 servers_are_tasks stable green || fail "shop-stable should be app-green's tasks after the promotion"
eq "replica 1 sends everything to v2" "$(shop_requests "${web_ports[0]}" 50)" "200:v2=50"
eq "replica 2 sends everything to v2" "$(shop_requests "${web_ports[1]}" 50)" "200:v2=50"
