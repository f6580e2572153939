#!/usr/bin/env bash
# Installs what is needed, builds, and starts a local demo cluster on loopback: one
# manager (127.0.0.1:4242) and two workers (4243, 4244), each a swarmd process running
# tasks with the embedded process executor, then deploys a sample service.
#   scripts/demo.sh        start (state and logs in ./demo)
#   scripts/demo.sh stop   stop every node and the sample service's processes
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/opt/swift/usr/bin:$PATH"
demo="$root/demo"

stop() {
  [ -d "$demo" ] || return 0
  # Remove the sample service first, so that its processes go with it.
  if [ -S "$demo/manager/swarmd.sock" ] && [ -x "$demo/bin/swarmctl" ]; then
    SWARM_SOCKET="$demo/manager/swarmd.sock" timeout 10 "$demo/bin/swarmctl" service rm hello >/dev/null 2>&1 || true
    sleep 1
  fi
  for pid in "$demo"/*.pid; do
    [ -e "$pid" ] || continue
    kill "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
  done
}

if [ "${1:-}" = "stop" ]; then
  stop
  echo "demo stopped (state kept in $demo; remove it for a fresh cluster)"
  exit 0
fi

scripts/install-deps.sh
swift build --product swarmd
swift build --product swarmctl
bin="$(swift build --show-bin-path)"
stop
rm -rf "$demo"
mkdir -p "$demo"
ln -s "$bin" "$demo/bin"
ctl() { SWARM_SOCKET="$demo/manager/swarmd.sock" "$bin/swarmctl" "$@"; }

node() {
  local name=$1; shift
  nohup "$bin/swarmd" -d "$demo/$name" --hostname "$name" "$@" >"$demo/$name.log" 2>&1 &
  echo $! >"$demo/$name.pid"
}

node manager --listen-remote-api 127.0.0.1:4242 --listen-metrics 127.0.0.1:9242
for _ in $(seq 50); do ctl cluster inspect default >/dev/null 2>&1 && break; sleep 0.2; done
token=$(ctl cluster inspect default --format json | sed -n 's/.*"worker": *"\([^"]*\)".*/\1/p' | head -1)
[ -n "$token" ] || { echo "the manager did not start; see $demo/manager.log" >&2; exit 1; }
node worker-1 --listen-remote-api 127.0.0.1:4243 --join-addr 127.0.0.1:4242 --join-token "$token"
node worker-2 --listen-remote-api 127.0.0.1:4244 --join-addr 127.0.0.1:4242 --join-token "$token"
for _ in $(seq 100); do
  [ "$(ctl node ls | grep -c READY)" = 3 ] && break
  sleep 0.2
done
ctl service create --name hello --command /bin/sh --args=-c \
  --args 'while true; do echo "hello from task $SWARM_TASK_SLOT at $(date +%T)"; sleep 5; done' --replicas 3 >/dev/null
for _ in $(seq 100); do
  [ "$(ctl task ls | grep -c 'RUNNING.*RUNNING')" = 3 ] && break
  sleep 0.2
done
ctl node ls
echo
ctl service inspect hello
cat <<MSG

Demo cluster running: manager on 127.0.0.1:4242 (metrics on http://127.0.0.1:9242/metrics),
workers on 4243 and 4244; state and logs in $demo.
  export SWARM_SOCKET=$demo/manager/swarmd.sock PATH=$bin:\$PATH
  swarmctl service logs hello          # the sample service's output
  swarmctl service update hello --replicas 6
Stop it with: scripts/demo.sh stop
MSG
