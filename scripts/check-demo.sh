#!/usr/bin/env bash
# Runs the README's first command as a new user would, and checks what it promises: three
# READY nodes and the sample service at 3/3. Then stops the demo and checks that nothing it
# started is left running. Exits non-zero, saying why, if any of that fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
demo="$root/demo"
fail() { echo "check-demo: $*" >&2; scripts/demo.sh stop >/dev/null 2>&1 || true; exit 1; }

scripts/demo.sh </dev/null || fail "scripts/demo.sh failed"
ctl() { SWARM_SOCKET="$demo/manager/swarmd.sock" timeout 20 "$demo/bin/swarmctl" "$@"; }
ready=$(ctl node ls | grep -c READY || true)
[ "$ready" = 3 ] || fail "$ready nodes READY, expected 3"
replicas=$(ctl service ls | awk '$2 == "hello" { print $NF }')
[ "$replicas" = 3/3 ] || fail "the sample service is at '$replicas', expected 3/3"
echo "check-demo: 3 nodes READY, sample service 3/3"

scripts/demo.sh stop
left=""
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  cmd=$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null || true)  # the process may be gone by now
  cwd=$(readlink "$p/cwd" 2>/dev/null || true)
  case "$cmd" in *"$demo/"*|*"hello from task"*) left="$left $pid" ; continue ;; esac
  case "$cwd" in "$demo"/*) left="$left $pid" ;; esac
done
if [ -n "$left" ]; then
  ps -o pid,args -p ${left// /,} >&2 || true
  kill -KILL $left 2>/dev/null || true
  fail "processes left after scripts/demo.sh stop:$left"
fi
echo "check-demo: nothing left running after scripts/demo.sh stop"
