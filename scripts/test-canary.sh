#!/usr/bin/env bash
# Send requests through Traefik with and without the canary pin header; show who answered.
set -euo pipefail

prog=${0##*/}

usage() {
  cat <<EOF
Usage: $prog [URL] [--host HOST] [--header NAME:VALUE] [-n N]

Send N requests to URL without the pin header, then N with it, and print for each the status,
the version that answered (its X-Version header) and the time taken; then the count per version.
Without the header the split follows canary-pilot's weights; with it every request must reach
the canary slot.

Arguments and options:
  URL                 where Traefik's web entry point listens (default: http://127.0.0.1:80/)
  --host HOST         Host header, matching the app's rule (default: api.localhost; "" sends none)
  --header NAME:VALUE the pin header (default: X-Canary:true)
  -n N                requests per group (default: 10)
  -h, --help          this help

Exit codes: 0 every request answered 2xx/3xx, 1 some failed (no answer, 4xx or 5xx), 2 usage
error.
EOF
}

usage_error() { echo "$prog: $*" >&2; echo "Try '$prog --help'." >&2; exit 2; }

url="" host=api.localhost header="X-Canary:true" n=10
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --host) [ $# -ge 2 ] || usage_error "--host needs a value"; host=$2; shift 2 ;;
    --host=*) host=${1#*=}; shift ;;
    --header) [ $# -ge 2 ] || usage_error "--header needs a value"; header=$2; shift 2 ;;
    --header=*) header=${1#*=}; shift ;;
    -n) [ $# -ge 2 ] || usage_error "-n needs a value"; n=$2; shift 2 ;;
    -n*) n=${1#-n}; shift ;;
    -*) usage_error "unknown option: $1" ;;
    *) [ -z "$url" ] || usage_error "one URL only, got '$url' and '$1'"; url=$1; shift ;;
  esac
done
url=${url:-http://127.0.0.1:80/}
if ! [[ $n =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 100000 ]; then usage_error "-n must be 1..100000"; fi
[[ $header == ?*:* ]] || usage_error "--header must be NAME:VALUE, got '$header'"
command -v curl >/dev/null 2>&1 || { echo "$prog: curl is needed" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=0
# group LABEL [CURL_ARGS...]: N requests; prints one line each and a summary.
group() {
  local label=$1 i code time version
  shift
  echo "$label"
  : >"$tmp/versions"
  for ((i = 1; i <= n; i++)); do
    : >"$tmp/headers"
    out=$(curl -sS -o /dev/null -D "$tmp/headers" --max-time 10 -w '%{http_code} %{time_total}' \
      ${host:+-H "Host: $host"} "$@" "$url" 2>"$tmp/err") || true
    read -r code time <<<"${out:-000 0}"
    version=$(tr -d '\r' <"$tmp/headers" | awk 'tolower($1) == "x-version:" { v = $2 } END { print v }')
    version=${version:--}
    if [[ $code =~ ^[23] ]]; then
      printf '  %4d  %s  %-16s %ss\n' "$i" "$code" "$version" "$time"
      echo "$version" >>"$tmp/versions"
    else
      failed=$((failed + 1))
      printf '  %4d  %s  %-16s %ss  FAILED %s\n' "$i" "$code" "$version" "$time" "$(head -c 200 "$tmp/err")"
      echo "failed" >>"$tmp/versions"
    fi
  done
  printf '  => %s\n' "$(sort "$tmp/versions" | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }')"
}

echo "$prog: $n requests to $url${host:+ (Host: $host)}"
group "without ${header%%:*}:"
group "with ${header%%:*}: ${header#*:}" -H "${header%%:*}: ${header#*:}"

if [ "$failed" -gt 0 ]; then
  echo "$prog: $failed request(s) failed" >&2
  exit 1
fi
