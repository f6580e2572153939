#!/usr/bin/env bash
# Installs the Debian packages the project needs, idempotently. Safe to run as root in CI
# (no standard input) and on a developer machine. With --test, also what the tests need:
# Docker Engine and a static busybox (for the docker executor's tests and their image).
set -euo pipefail
packages=(libsqlite3-dev libffi-dev procps psmisc gcc python3)
if [ "${1:-}" = "--test" ]; then packages+=(docker.io busybox-static); fi
# The Rust example plugin needs rustc; Debian's is used when there is no rustup one.
if ! command -v rustc >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/rustc" ]; then packages+=(rustc); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "swift is at /opt/swift/usr/bin; add it to PATH" >&2
  else
    echo "Swift 6.3 toolchain not found (expected at /opt/swift)" >&2
  fi
  exit 1
fi
