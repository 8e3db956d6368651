# shellcheck shell=bash
# Helpers shared by the release scripts (deploy-canary.sh, promote-canary.sh, rollback-canary.sh,
# deploy-stack.sh). Source it after setting $prog.
# shellcheck disable=SC2154 # $prog is the caller's

die() { echo "$prog: $*" >&2; exit 1; }
usage_error() { echo "$prog: $*" >&2; echo "Try '$prog --help'." >&2; exit 2; }

# json_get PATH: a field of the JSON on stdin (e.g. canary.slot), empty if absent.
json_get() {
  if command -v jq >/dev/null 2>&1; then
    jq -r ".$1 // empty"
  else
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)
' "$1"
  fi
}
