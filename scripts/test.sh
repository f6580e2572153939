#!/usr/bin/env bash
# Installs what the tests need, checks that Package.swift declares every module each target
# imports, builds, and runs the whole test suite. With CI=true (as CI runs it), the
# package's Swift targets build with warnings as errors.
#   SWARM_SIM_SEEDS=N      number of seeded Raft simulations (default 1000)
#   SWARM_SIM_SEED=S       replay one simulation seed
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
python3 scripts/check-imports.py
swift build --build-tests
swift test --skip-build
