#!/usr/bin/env bash
# A Docker engine in Swarm mode for swarm/stack.yml, from whatever this machine has:
#
#   scripts/swarm-engine.sh install   install Debian's docker.io when no engine answers and no
#                                     dockerd is installed, and busybox-static (the local images
#                                     need a static busybox); what scripts/setup.sh runs
#   scripts/swarm-engine.sh start     install if needed; start dockerd when none runs (there is no
#                                     systemd on our machines) and print its PID; make the engine a
#                                     one-node Swarm when it is in none; label the node that keeps
#                                     canary-pilot's state (node.labels.canary-pilot == true)
#   scripts/swarm-engine.sh stop PID  stop the dockerd started with PID (TERM, then KILL)
#
# Every step checks first: an engine that answers is used as it is, a node already in a swarm
# stays in it (the swarm state lives in /var/lib/docker/swarm and survives a dockerd restart),
# and a label already on some node is left where it is. The test suite sources this file and
# stops only a dockerd it started itself, by PID (tests/swarm/run.sh).
#
# Environment: SWARM_ADVERTISE_ADDR (docker swarm init --advertise-addr; default 127.0.0.1),
# DOCKERD_LOG (dockerd's output; default a temporary file).

ENGINE_STARTED_PID=""   # set by engine_up when it started dockerd
ENGINE_LOG=""           # its output
ENGINE_LOG_OWNED=false  # a temporary file of ours, removed with the dockerd

engine_log() { printf 'swarm-engine: %s\n' "$*" >&2; }

# engine_answers: the engine behind the docker client answers.
engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

ENGINE_HOWTO="install Docker Engine and start it: on Debian/Ubuntu 'apt-get install -y docker.io' then 'dockerd &' (or 'systemctl start docker'); elsewhere https://docs.docker.com/engine/install/"

# engine_install: docker.io when neither an engine answers nor dockerd is installed, and
# busybox-static when /bin/busybox is not a static binary. Fails saying how to install.
engine_install() {
  local pkgs=() sudo=""
  if ! command -v docker >/dev/null 2>&1 || { ! engine_answers && ! command -v dockerd >/dev/null 2>&1; }; then
    pkgs+=(docker.io)
  fi
  if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
    pkgs+=(busybox-static)
  fi
  [ ${#pkgs[@]} -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    engine_log "cannot install ${pkgs[*]}: no apt-get here; $ENGINE_HOWTO (and a static busybox at /bin/busybox)"
    return 1
  fi
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  engine_log "installing ${pkgs[*]} (Debian)"
  # APT_UPDATED: the caller (scripts/setup.sh) ran apt-get update already.
  if ! { { [ -n "${APT_UPDATED:-}" ] || $sudo apt-get update -qq; } && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }; then
    engine_log "apt-get install ${pkgs[*]} failed; $ENGINE_HOWTO"
    return 1
  fi
}

# engine_up: an answering engine, started here when none runs (ENGINE_STARTED_PID is then its
# PID), in Swarm mode as a manager, with the canary-pilot node label on one node.
engine_up() {
  local i pid
  if ! engine_answers; then
    case ${DOCKER_HOST:-unix:///var/run/docker.sock} in
      unix:///var/run/docker.sock) ;;
      *) engine_log "DOCKER_HOST=$DOCKER_HOST does not answer; $ENGINE_HOWTO"; return 1 ;;
    esac
    engine_install || return 1
    command -v dockerd >/dev/null 2>&1 || { engine_log "dockerd not found; $ENGINE_HOWTO"; return 1; }
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      engine_log "dockerd $pid is running but does not answer yet; waiting for it"
    else
      # A dockerd killed earlier leaves its pid file, and a new one refuses to start over it.
      rm -f /var/run/docker.pid
      if [ -n "${DOCKERD_LOG:-}" ]; then
        ENGINE_LOG=$DOCKERD_LOG
      else
        ENGINE_LOG=$(mktemp "${TMPDIR:-/tmp}/canary-pilot-dockerd.XXXXXX")
        ENGINE_LOG_OWNED=true
      fi
      dockerd >"$ENGINE_LOG" 2>&1 &
      ENGINE_STARTED_PID=$!
      engine_log "started dockerd (pid $ENGINE_STARTED_PID, log $ENGINE_LOG)"
    fi
    for ((i = 0; i < 120; i++)); do
      engine_answers && break
      if [ -n "$ENGINE_STARTED_PID" ] && ! kill -0 "$ENGINE_STARTED_PID" 2>/dev/null; then
        engine_log "dockerd exited at start; its log:"
        tail -n 20 "$ENGINE_LOG" >&2
        ENGINE_STARTED_PID=""
        return 1
      fi
      sleep 0.5
    done
    engine_answers || { engine_log "the engine did not answer within 60 s${ENGINE_LOG:+ (log $ENGINE_LOG)}"; return 1; }
  fi
  engine_log "engine $(docker version --format '{{.Server.Version}}') answers"

  local state
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  case $state in
    active) engine_log "already in a swarm" ;;
    inactive)
      docker swarm init --advertise-addr "${SWARM_ADVERTISE_ADDR:-127.0.0.1}" >/dev/null || return 1
      engine_log "initialised a one-node swarm (advertise address ${SWARM_ADVERTISE_ADDR:-127.0.0.1})" ;;
    pending)
      for ((i = 0; i < 60; i++)); do
        [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ] && break
        sleep 0.5
      done ;;
    locked) engine_log "the swarm is locked: docker swarm unlock"; return 1 ;;
    *) engine_log "swarm state '$state': see docker info"; return 1 ;;
  esac
  if [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
    engine_log "this node is a swarm worker: deploy from a manager"
    return 1
  fi

  # canary-pilot's state volume is local to one node; the stack pins the controller to the
  # node with this label (swarm/README.md). Label this node unless some node has it already.
  local labelled
  labelled=$(docker node ls -q --filter node.label=canary-pilot=true | wc -l)
  if [ "$labelled" -eq 0 ]; then
    docker node update --label-add canary-pilot=true "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null || return 1
    engine_log "labelled this node canary-pilot=true (the controller's state lives here)"
  fi
}

# engine_down [PID]: stop the dockerd started with PID (default ENGINE_STARTED_PID); a no-op
# without one, so an engine found running is left alone.
engine_down() {
  local pid=${1:-$ENGINE_STARTED_PID} i children
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { ENGINE_STARTED_PID=""; return 0; }
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
    engine_log "process $pid is not a dockerd; not stopping it"
    return 1
  fi
  # dockerd runs its own containerd; a graceful stop takes it along, a KILL would not.
  children=$(pgrep -P "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    engine_log "dockerd $pid did not stop within 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086 # a list of PIDs
    [ -z "$children" ] || kill -KILL $children 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  engine_log "stopped dockerd (pid $pid)"
  if [ "$pid" = "$ENGINE_STARTED_PID" ]; then
    ENGINE_STARTED_PID=""
    ! $ENGINE_LOG_OWNED || rm -f "$ENGINE_LOG"
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case ${1:-} in
    install) engine_install ;;
    start)
      engine_up
      if [ -n "$ENGINE_STARTED_PID" ]; then
        echo "$ENGINE_STARTED_PID"
        engine_log "dockerd keeps running; stop it with: $0 stop $ENGINE_STARTED_PID"
      fi ;;
    stop)
      [ -n "${2:-}" ] || { echo "usage: $0 stop PID" >&2; exit 2; }
      engine_down "$2" ;;
    -h | --help | "") sed -n '2,21p' "$0"; [ -n "${1:-}" ] ;;
    *) echo "${0##*/}: unknown command: $1 (try --help)" >&2; exit 2 ;;
  esac
fi
