# A Swarm-managed app on the real engine, sourced by tests/swarm/run.sh (its helpers, images and
# cleanup): tests/swarm/managed/stack.yml (stack cpm) has the user's service shop, declared to
# canary-pilot by its labels; every release is a `docker stack deploy` of a new image, as a
# Swarm user ships. Beside it: hello, routed by Traefik's swarm provider from its own labels,
# the two-slot app plain (server URLs, as on plain hosts), and typo, whose labels are wrong.

MANAGED_STACK=cpm
echo "# Swarm-managed app: releases on docker stack deploy (stack $MANAGED_STACK)"
read -r MANAGED_WEB_PORT MANAGED_API_PORT MANAGED_PILOT_PORT < <(free_ports 3)
export MANAGED_WEB_PORT MANAGED_API_PORT MANAGED_PILOT_PORT
managed_web=http://127.0.0.1:$MANAGED_WEB_PORT
managed_pilot=http://127.0.0.1:$MANAGED_PILOT_PORT
# The user's images: tags of the local image (no registry); the tag is the version shown.
for v in v1 v2 v3; do docker tag "$CANARY_PILOT_IMAGE" "canary-pilot-shop:$v"; done
managed_images=true
# ship VERSION [ERROR_RATE]: what a user runs to release.
ship() {
  SHOP_IMAGE=canary-pilot-shop:$1 SHOP_VERSION=$1 SHOP_ERROR_RATE=${2:-0} \
    docker stack deploy --resolve-image never -c tests/swarm/managed/stack.yml "$MANAGED_STACK" >>"$tmp/managed-deploy.log" 2>&1
}
managed_deployed=true
SECONDS_STEP=$SECONDS
ship v1 || abort "docker stack deploy -c tests/swarm/managed/stack.yml (v1)" "$tmp/managed-deploy.log"
replicas() { docker service ls --filter "name=$1" --format '{{.Name}} {{.Replicas}}' | awk -v n="$1" '$1 == n { print $2 }'; }
managed_status() { CANARY_PILOT_SERVER=$managed_pilot "$bin" status shop --output json | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"; }
bootstrapped() { [ "$(replicas cpm_shop-primary)" = 2/2 ] && [ "$(replicas cpm_shop)" = 0/0 ]; }
if wait_for 120 bootstrapped; then
  pass "first deploy: canary-pilot made cpm_shop-primary (2/2) from cpm_shop and scaled cpm_shop to 0 ($((SECONDS - SECONDS_STEP)) s)"
else
  docker service ls >"$tmp/managed-services" 2>&1
  docker service logs --raw "${MANAGED_STACK}_canary-pilot" >>"$tmp/managed-services" 2>&1
  abort "the primary was not made and the user's service not scaled down within 120 s" "$tmp/managed-services"
fi
eq "the primary is outside the stack (docker stack deploy --prune cannot remove it)" \
  "$(docker service inspect --format '{{index .Spec.Labels "com.docker.stack.namespace"}}|{{index .Spec.Labels "canary-pilot.primary-of"}}' cpm_shop-primary)" "|cpm_shop"
shop_via() { curl -s -o /dev/null --max-time 60 -w '%{http_code}:%header{x-version}\n' -H 'Host: shop.localhost' "$managed_web/?n=[1-$1]" |
  sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }'; }
wait_for 30 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.localhost' $managed_web/)\" = 200 ]" || fail "Traefik routes shop.localhost"
eq "the primary serves v1" "$(shop_via 50)" "200:v1=50"
eq "shop is declared by its service's labels alone (the config file has no such app)" \
  "$(grep -c 'apps.shop' tests/swarm/managed/canary-pilot.toml) $(managed_status name) $(CANARY_PILOT_SERVER=$managed_pilot "$bin" status --output json | python3 -c 'import json,sys; print(",".join(sorted(a["name"] for a in json.load(sys.stdin)["apps"])))')" \
  "0 shop plain,shop"
eq "its steps from its labels, the rest of its analysis from [swarm.defaults]" \
  "$(managed_status step.weights) $(managed_status failure_limit)" "[20, 50, 100] 2"
host_via() { curl -s -o /dev/null --max-time 5 -w '%{http_code}:%header{x-version}' -H "Host: $1" "$managed_web/"; }
wait_for 30 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: hello.localhost' $managed_web/)\" = 200 ]" || true
eq "Traefik's swarm provider routes hello (not managed) beside canary-pilot's provider" "$(host_via hello.localhost)" "200:hello"
eq "the two-slot app plain (server URLs) routes beside them" "$(host_via plain.localhost)" "200:hello"
ready=$(curl -s "$managed_pilot/readyz")
case "$ready" in
  *'service \"cpm_typo\", label canary-pilot.analysis.stepz: unknown field `stepz`; did you mean `steps`?'*)
    pass "typo's bad label is reported for the service and the label in /readyz (still ready)" ;;
  *) fail "typo's bad label should be reported in /readyz: $ready" ;;
esac
eq "typo is not managed: no app, no route" "$(host_via typo.localhost)" "404:"

# release VERSION ERROR_RATE LOG: ship it under bounded load through Traefik; waits for the load.
managed_traffic() { bg "$1" "$bin" demo-traffic --url "$managed_web/" --host shop.localhost --rps 150 --workers 6 --duration "${2}s" --report 1s; }

echo "# docker stack deploy of v2 (good)"
managed_traffic "$tmp/managed-v2.log" 60
load=$last_pid
sleep 2
SECONDS_STEP=$SECONDS
ship v2 || fail "docker stack deploy (v2)" "$tmp/managed-deploy.log"
if wait_for 60 sh -c "[ \"\$(CANARY_PILOT_SERVER=$managed_pilot $bin status shop --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"canary\"][\"version\"])')\" = v2 ]"; then
  pass "the deploy started a release of v2 on its own, $((SECONDS - SECONDS_STEP)) s later (version from the image tag)"
else
  fail "no release of v2 within 60 s of the deploy (phase $(managed_status phase))"
fi
done_v2() { [ "$(managed_status phase)" = succeeded ] && [ "$(managed_status stable.slot)" = primary ] && [ "$(replicas cpm_shop)" = 0/0 ]; }
if wait_for 120 done_v2; then
  pass "v2 promoted, the primary brought to it and the stable role handed back, cpm_shop scaled to 0 ($((SECONDS - SECONDS_STEP)) s after the deploy)"
else
  fail "v2 not promoted and handed back within 120 s (phase $(managed_status phase), stable $(managed_status stable.slot), cpm_shop $(replicas cpm_shop))"
fi
eq "the primary runs the new spec" "$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' cpm_shop-primary)" "canary-pilot-shop:v2"
eq "status: the stable slot's tasks run v2" "$(managed_status stable.runs)" v2
kinds=$(curl -fs "$managed_pilot/api/v1/events?app=shop" | python3 -c 'import json,sys; print(" ".join(e["kind"] for e in json.load(sys.stdin)["events"]))')
case "$kinds" in
  *"started"*"promoted handed_back"*) pass "events: $kinds" ;;
  *) fail "events should go started ... promoted handed_back: $kinds" ;;
esac
wait_for 60 sh -c "! kill -0 $load 2>/dev/null" || true
stop_pid "$load"
summary=$(traffic_summary "$tmp/managed-v2.log")
note "load through the v2 release: $summary"
case "$summary" in
  *" failed=0 "*) pass "0 failed requests through the release, the primary's update, the hand-back and the scale-down" ;;
  *) fail "failed requests through the v2 release: $summary" "$tmp/managed-v2.log" ;;
esac
eq "everything reaches v2" "$(shop_via 50)" "200:v2=50"

echo "# the same deploy again starts nothing"
ship v2 || fail "docker stack deploy (v2 again)" "$tmp/managed-deploy.log"
sleep 8
eq "still succeeded on the primary, no new event" \
  "$(managed_status phase) $(managed_status stable.slot) $(curl -fs "$managed_pilot/api/v1/events?app=shop" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')" \
  "succeeded primary $(wc -w <<<"$kinds" | tr -d ' ')"
wait_for 30 sh -c "[ \"\$(docker service ls --filter name=cpm_shop --format '{{.Name}} {{.Replicas}}' | awk '\$1 == \"cpm_shop\" {print \$2}')\" = 0/0 ]" ||
  fail "cpm_shop should be back at 0 replicas (it has $(replicas cpm_shop))"

echo "# canary-pilot deploy --image, for scripts and CI"
managed_traffic "$tmp/managed-deploy.log.traffic" 90
load=$last_pid
SECONDS_STEP=$SECONDS
docker tag "$CANARY_PILOT_IMAGE" canary-pilot-shop:v2b
if CANARY_PILOT_SERVER=$managed_pilot "$bin" deploy shop --image canary-pilot-shop:v2b --wait --timeout 120s >"$tmp/managed-cli-deploy.log" 2>&1; then
  pass "deploy shop --image canary-pilot-shop:v2b --wait: promoted, exit 0 ($((SECONDS - SECONDS_STEP)) s)"
else
  fail "deploy shop --image canary-pilot-shop:v2b --wait" "$tmp/managed-cli-deploy.log"
fi
head -1 "$tmp/managed-cli-deploy.log" | grep -q 'service cpm_shop runs canary-pilot-shop:v2b now' ||
  fail "deploy says what it deployed" "$tmp/managed-cli-deploy.log"
done_v2b() { [ "$(managed_status stable.slot) $(managed_status stable.runs)" = "primary v2b" ] && [ "$(replicas cpm_shop)" = 0/0 ]; }
wait_for 90 done_v2b || fail "after deploy v2b the primary should run it and cpm_shop be at 0 (stable $(managed_status stable.slot) runs $(managed_status stable.runs), cpm_shop $(replicas cpm_shop))"
stop_pid "$load"
summary=$(traffic_summary "$tmp/managed-deploy.log.traffic")
case "$summary" in
  *" failed=0 "*) pass "0 failed requests through the deployed release ($summary)" ;;
  *) fail "failed requests through the deployed release: $summary" ;;
esac

echo "# docker stack deploy of v3 (bad: half of its answers are 500s)"
managed_traffic "$tmp/managed-v3.log" 40
load=$last_pid
SECONDS_STEP=$SECONDS
ship v3 0.5 || fail "docker stack deploy (v3)" "$tmp/managed-deploy.log"
rolled() { [ "$(managed_status phase)" = rolled_back ] && [ "$(managed_status canary.version)" = v3 ]; }
if wait_for 60 rolled; then
  pass "v3 released on its own and rolled back ($((SECONDS - SECONDS_STEP)) s after the deploy): $(managed_status reason | cut -c1-80)"
else
  fail "v3 not rolled back within 60 s (phase $(managed_status phase))"
fi
if wait_for 40 sh -c "[ \"\$(docker service ls --filter name=cpm_shop --format '{{.Name}} {{.Replicas}}' | awk '\$1 == \"cpm_shop\" {print \$2}')\" = 0/0 ]"; then
  pass "the rolled-back service is scaled to 0"
else
  fail "cpm_shop should be at 0 replicas after the rollback (it has $(replicas cpm_shop))"
fi
stop_pid "$load"
note "load through the v3 release: $(traffic_summary "$tmp/managed-v3.log")"
ship v3 0.5 || fail "docker stack deploy (v3 again)" "$tmp/managed-deploy.log"
sleep 8
eq "the same bad deploy again: still rolled back, nothing reaches v3" "$(managed_status phase) $(shop_via 100)" "rolled_back 200:v2=100"
eq "the primary still runs v2b, the last promoted" "$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' cpm_shop-primary)" "canary-pilot-shop:v2b"
