#!/usr/bin/env bash
# Installs what is needed, builds, and starts a local demo cluster of three replicated-store
# managers on loopback (127.0.0.1:4242-4244), state under ./demo. `scripts/demo.sh stop`
# stops it. (The full swarmd manager/worker demo replaces this once swarmd lands.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/opt/swift/usr/bin:$PATH"
demo="$root/demo"

stop() {
  if [ -d "$demo" ]; then
    for pid in "$demo"/*.pid; do
      [ -e "$pid" ] || continue
      kill "$(cat "$pid")" 2>/dev/null || true
      rm -f "$pid"
    done
  fi
}

if [ "${1:-}" = "stop" ]; then
  stop
  echo "demo stopped (state kept in $demo; remove it for a fresh cluster)"
  exit 0
fi

scripts/install-deps.sh
swift build --product swarm-raftd
bin="$(swift build --show-bin-path)/swarm-raftd"
stop
mkdir -p "$demo"
start() {
  local k=$1; shift
  nohup "$bin" --state-dir "$demo/m$k" --listen "127.0.0.1:$((4241 + k))" "$@" >"$demo/m$k.log" 2>&1 &
  echo $! >"$demo/m$k.pid"
}
start 1
sleep 2
start 2 --join 127.0.0.1:4242
start 3 --join 127.0.0.1:4242
sleep 3
grep -h "listening\|leader\|promoting" "$demo"/m*.log | head -20
echo "demo cluster running: managers on 127.0.0.1:4242-4244, logs in $demo/m*.log"
echo "stop it with: scripts/demo.sh stop"
