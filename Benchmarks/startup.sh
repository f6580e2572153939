#!/usr/bin/env bash
# Start-up figures on real swarmd processes:
#  - docker: from `service create --image ... --replicas N` to N containers RUNNING on one
#    node (the service's count N/N), against Docker Swarm mode on the same dockerd
#    (`docker swarm init`, `docker service create --replicas N`, until N/N), in one run,
#    alternating which goes first over ROUNDS rounds; then the time until `service rm`
#    leaves no container, for both;
#  - stop: `service rm` of 20 containers that ignore SIGTERM, grace 2 s, until none is left;
#  - process: from `service create --replicas M` to M processes RUNNING over 3 nodes (one
#    manager, two workers), and until `service rm` leaves none.
# It starts its own dockerd (scripts/test-dockerd.sh) with the image swarm-test:1.
# Usage: Benchmarks/startup.sh [N=100] [M=1000] [ROUNDS=1]   (after `swift build`; set
# BIN=.build/release to use a release build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/${BIN:-.build/debug}"
n=${1:-100}; m=${2:-1000}; rounds=${3:-1}
dir=$(mktemp -d /tmp/swarm-startup.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  DOCKER_HOST="unix://$dir/docker/docker.sock" docker swarm leave --force >/dev/null 2>&1 || true
  "$root/scripts/test-dockerd.sh" stop "$dir/docker" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
# Waits (up to $2 s) until the command in $1 prints a number >= $3.
wait_count() {
  local deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    local v; v=$(eval "$1" 2>/dev/null | head -1 || true); [ "${v:-0}" -ge "$3" ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for: $1 >= $3" >&2; return 1
}
wait_zero() {
  local deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    local v; v=$(eval "$1" 2>/dev/null | head -1 || true); [ "${v:-1}" -eq 0 ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for: $1 == 0" >&2; return 1
}
start_swarmd() {  # name, extra args...; env DOCKER_HOST passes through
  local name=$1; shift
  "$bin/swarmd" -d "$dir/$name" --hostname "$name" "$@" > "$dir/$name.log" 2>&1 &
  pids+=($!)
}

sock=$("$root/scripts/test-dockerd.sh" start "$dir/docker")
export DOCKER_HOST="unix://$sock"
port=$((20000 + RANDOM % 20000))
start_swarmd m --listen-remote-api "127.0.0.1:$port"
export SWARM_SOCKET="$dir/m/swarmd.sock"
ctl="$bin/swarmctl"
for _ in $(seq 200); do "$ctl" cluster inspect default >/dev/null 2>&1 && break; sleep 0.1; done
wait_count "'$ctl' plugin ls | grep docker | grep -c ' ok '" 30 1
docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$((port + 1))" >/dev/null

ours_running() { "$ctl" service ls | awk -v s="$1" '$2 == s { split($4, a, "/"); print a[1] }'; }
theirs_running() { docker service ls --filter "name=$1" --format '{{.Replicas}}' | cut -d/ -f1; }
containers() { docker ps -aq --filter "label=$1" | wc -l; }

run_ours() {
  local t0; t0=$(now)
  "$ctl" service create --name "ours$1" --image swarm-test:1 --args "sleep 3600" --replicas "$n" --stop-grace-period 1s >/dev/null
  wait_count "ours_running ours$1" 600 "$n"
  printf 'swift-swarm  %d containers RUNNING: %6.2f s\n' "$n" "$(since "$t0")"
  t0=$(now); "$ctl" service rm "ours$1" >/dev/null
  wait_zero "containers com.swift-swarm.service.name=ours$1" 600
  printf 'swift-swarm  %d containers removed: %6.2f s\n' "$n" "$(since "$t0")"
}
run_theirs() {
  local t0; t0=$(now)
  docker service create --detach --quiet --name "theirs$1" --replicas "$n" --stop-grace-period 1s swarm-test:1 sleep 3600 >/dev/null
  wait_count "theirs_running theirs$1" 600 "$n"
  printf 'docker swarm %d containers RUNNING: %6.2f s\n' "$n" "$(since "$t0")"
  t0=$(now); docker service rm "theirs$1" >/dev/null
  wait_zero "containers com.docker.swarm.service.name=theirs$1" 600
  printf 'docker swarm %d containers removed: %6.2f s\n' "$n" "$(since "$t0")"
}
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then run_ours "$r"; run_theirs "$r"; else run_theirs "$r"; run_ours "$r"; fi
done

# 20 containers that ignore SIGTERM, grace 2 s: stopped together, not one by one.
"$ctl" service create --name stubborn --image swarm-test:1 --args=sh --args=-c \
  --args "trap '' TERM; while true; do sleep 1; done" --replicas 20 --stop-grace-period 2s >/dev/null
wait_count "ours_running stubborn" 600 20
t0=$(now); "$ctl" service rm stubborn >/dev/null
wait_zero "containers com.swift-swarm.service.name=stubborn" 600
printf 'swift-swarm  20 containers ignoring SIGTERM, grace 2 s, removed: %6.2f s\n' "$(since "$t0")"

token=$("$ctl" cluster inspect default | awk '/Worker/ { print $3 }')
for w in w1 w2; do start_swarmd "$w" --join-addr "127.0.0.1:$port" --join-token "$token"; done
wait_count "'$ctl' node ls | grep -c READY" 60 3
marker=$((100000000 + RANDOM * 1000 + RANDOM % 1000))
t0=$(now)
"$ctl" service create --name procs --command /bin/sleep --args "$marker" --replicas "$m" --stop-grace-period 1s >/dev/null
wait_count "ours_running procs" 900 "$m"
printf 'swift-swarm  %d processes RUNNING over 3 nodes: %6.2f s (%s on this host)\n' "$m" "$(since "$t0")" \
  "$(pgrep -fxc "/bin/sleep $marker" || true)"
t0=$(now); "$ctl" service rm procs >/dev/null
wait_zero "pgrep -fxc '/bin/sleep $marker' || true" 900
printf 'swift-swarm  %d processes removed: %6.2f s\n' "$m" "$(since "$t0")"
