#!/usr/bin/env bash
# Installs what is needed, builds, and starts a local demo cluster on loopback: one
# manager (127.0.0.1:4242) and two workers (4243, 4244), each a swarmd process running
# tasks with the embedded process executor, then deploys a sample service.
#   scripts/demo.sh        start (state and logs in ./demo)
#   scripts/demo.sh stop   stop every node and the sample service's processes
# If any step of the start fails, everything it started is stopped again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/opt/swift/usr/bin:$PATH"
demo="$root/demo"

# The processes the demo started: its nodes (by pid file) and what still runs from its
# state directory (task processes have their working directories there).
demo_pids() {
  local pid
  for f in "$demo"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null && echo "$pid"
  done
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    case "$(readlink "$p/cwd" 2>/dev/null)" in "$demo"/*) echo "$pid" ;; esac
  done | sort -u
}

stop() {
  [ -d "$demo" ] || return 0
  # Remove the sample service first, so that its processes go with it.
  if [ -S "$demo/manager/swarmd.sock" ] && [ -x "$demo/bin/swarmctl" ]; then
    SWARM_SOCKET="$demo/manager/swarmd.sock" timeout 10 "$demo/bin/swarmctl" service rm hello >/dev/null 2>&1 || true
    for _ in $(seq 50); do
      pgrep -f 'hello from task' >/dev/null 2>&1 || break
      sleep 0.2
    done
  fi
  for f in "$demo"/*.pid; do
    [ -e "$f" ] || continue
    kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  # Nodes stop gracefully on SIGTERM; whatever is left after 15 s is killed.
  for _ in $(seq 75); do
    [ -z "$(demo_pids)" ] && break
    sleep 0.2
  done
  local left
  left=$(demo_pids)
  if [ -n "$left" ]; then
    echo "killing what did not stop: $(echo $left)" >&2
    kill -KILL $left 2>/dev/null || true
  fi
  rm -f "$demo"/*.pid
}

if [ "${1:-}" = "stop" ]; then
  stop
  echo "demo stopped (state kept in $demo; remove it for a fresh cluster)"
  exit 0
fi

scripts/install-deps.sh
# Everything the nodes start and load: swarmd, swarmctl and the plugin libraries
# (libswarm-process.so, libswarm-spread.so, ...), which swarmd finds beside itself.
swift build
bin="$(swift build --show-bin-path)"
for f in swarmd swarmctl libswarm-process.so libswarm-spread.so; do
  [ -e "$bin/$f" ] || { echo "the build did not produce $bin/$f" >&2; exit 1; }
done
stop
rm -rf "$demo"
mkdir -p "$demo"
ln -s "$bin" "$demo/bin"
ctl() { SWARM_SOCKET="$demo/manager/swarmd.sock" "$bin/swarmctl" "$@"; }

failed() {
  echo "demo: failed; stopping what it started (logs in $demo/*.log)" >&2
  tail -n 5 "$demo"/*.log >&2 2>/dev/null || true
  stop
}
trap failed ERR

node() {
  local name=$1; shift
  nohup "$bin/swarmd" -d "$demo/$name" --hostname "$name" "$@" >"$demo/$name.log" 2>&1 &
  echo $! >"$demo/$name.pid"
}

node manager --listen-remote-api 127.0.0.1:4242 --listen-metrics 127.0.0.1:9242
for _ in $(seq 100); do ctl cluster inspect default >/dev/null 2>&1 && break; sleep 0.2; done
token=$(ctl cluster inspect default --format json | sed -n 's/.*"worker": *"\([^"]*\)".*/\1/p' | head -1)
[ -n "$token" ] || { echo "the manager did not start; see $demo/manager.log" >&2; false; }
node worker-1 --listen-remote-api 127.0.0.1:4243 --join-addr 127.0.0.1:4242 --join-token "$token"
node worker-2 --listen-remote-api 127.0.0.1:4244 --join-addr 127.0.0.1:4242 --join-token "$token"
ready=0
for _ in $(seq 150); do
  ready=$(ctl node ls | grep -c READY || true)
  [ "$ready" = 3 ] && break
  sleep 0.2
done
[ "$ready" = 3 ] || { echo "only $ready of 3 nodes became READY" >&2; false; }
ctl service create --name hello --command /bin/sh --args=-c \
  --args 'while true; do echo "hello from task $SWARM_TASK_SLOT at $(date +%T)"; sleep 5; done' --replicas 3 >/dev/null
running=""
for _ in $(seq 150); do
  running=$(ctl service ls | awk '$2 == "hello" { print $NF }')
  [ "$running" = 3/3 ] && break
  sleep 0.2
done
[ "$running" = 3/3 ] || { echo "the sample service has $running tasks running, not 3/3" >&2; false; }
trap - ERR
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
