# Shared helpers for the scripts: free ports, process bookkeeping, waiting. Source it.

# free_ports N: N distinct TCP ports on 127.0.0.1 that are free right now (all held open while
# choosing, so none is handed out twice).
free_ports() {
  python3 -c '
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
' "$1"
}

# PIDs started by this script; stop_all kills them (TERM, then KILL) and is safe to call twice.
STARTED_PIDS=()
start_bg() { # start_bg LOGFILE CMD...
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  STARTED_PIDS+=("$!")
}
stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${STARTED_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  STARTED_PIDS=()
}

# wait_http URL [SECONDS]: until URL answers 2xx, or fail.
wait_http() {
  local url=$1 limit=${2:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for $url" >&2
  return 1
}
