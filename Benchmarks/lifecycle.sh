#!/usr/bin/env bash
# Service lifecycle figures on real swarmd processes (one manager, process executor):
#  - stop: `service rm` of N tasks that ignore SIGTERM, with a 2 s grace period, until
#    every process is gone (run one at a time, this took N grace periods);
#  - update: a rolling update of R replicas with parallelism P and no delay, from
#    `service update` until the update status is COMPLETED (includes the 5 s monitor).
# Usage: Benchmarks/lifecycle.sh [N=20] [R=12] [P=3]   (after `swift build` in the root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.build/debug"
n=${1:-20}; r=${2:-12}; p=${3:-3}
dir=$(mktemp -d /tmp/swarm-lifecycle.XXXX)
port=$((20000 + RANDOM % 20000))
"$bin/swarmd" -d "$dir/m" --hostname bench --listen-remote-api "127.0.0.1:$port" > "$dir/m.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
export SWARM_SOCKET="$dir/m/swarmd.sock"
ctl="$bin/swarmctl"
for _ in $(seq 100); do "$ctl" cluster inspect default >/dev/null 2>&1 && break; sleep 0.1; done
now() { date +%s.%N; }
marker=$((100000000 + RANDOM * 1000 + RANDOM % 1000))

"$ctl" service create --name stubborn --command /bin/sh --args=-c --args "trap '' TERM; sleep $marker" \
  --replicas "$n" --stop-grace-period 2s >/dev/null
for _ in $(seq 600); do [ "$(pgrep -fxc "sleep $marker" || true)" -ge "$n" ] && break; sleep 0.1; done
t0=$(now); "$ctl" service rm stubborn >/dev/null
for _ in $(seq 1200); do [ "$(pgrep -fxc "sleep $marker" || true)" -eq 0 ] && break; sleep 0.05; done
t1=$(now)
printf 'stop:   %d tasks ignoring SIGTERM, grace 2 s: %.2f s\n' "$n" "$(echo "$t1 - $t0" | bc)"

"$ctl" service create --name web --command /bin/sleep --args "$marker" --replicas "$r" >/dev/null
for _ in $(seq 600); do [ "$(pgrep -fxc "/bin/sleep $marker" || true)" -ge "$r" ] && break; sleep 0.1; done
t0=$(now); "$ctl" service update web --args $((marker + 1)) --update-parallelism "$p" >/dev/null
for _ in $(seq 1200); do "$ctl" service inspect web | grep -q 'Update status *: COMPLETED' && break; sleep 0.05; done
t1=$(now)
printf 'update: %d replicas, parallelism %d, to COMPLETED: %.2f s (5 s of it the monitor window)\n' "$r" "$p" "$(echo "$t1 - $t0" | bc)"
"$ctl" service rm web >/dev/null
