#!/usr/bin/env bash
# Starts a private dockerd for the tests (its own socket and data root, no iptables, no
# bridge, so it touches nothing else on the machine) and builds the test image without a
# registry: a busybox-static root file system piped to `docker import`.
#   scripts/test-dockerd.sh start DIR   prints the socket; the image is swarm-test:1
#   scripts/test-dockerd.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2
sock="$dir/docker.sock"
case "$cmd" in
start)
  mkdir -p "$dir"
  dockerd --host "unix://$sock" --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    --iptables=false --bridge=none > "$dir/dockerd.log" 2>&1 &
  for _ in $(seq 300); do
    DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1 && break
    sleep 0.1
  done
  if ! DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
    echo "dockerd did not start; its log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
  fi
  rootfs="$dir/rootfs"
  rm -rf "$rootfs"; mkdir -p "$rootfs/bin" "$rootfs/tmp"; chmod 1777 "$rootfs/tmp"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for c in sh sleep echo true false cat ls touch rm test id df; do ln -sf busybox "$rootfs/bin/$c"; done
  tar -C "$rootfs" -c . | DOCKER_HOST="unix://$sock" docker import - swarm-test:1 >/dev/null
  echo "$sock"
  ;;
stop)
  if [ -f "$dir/dockerd.pid" ]; then
    pid=$(cat "$dir/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  ;;
esac
