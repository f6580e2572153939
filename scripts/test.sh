#!/usr/bin/env bash
# Installs what the tests need, builds, and runs the whole test suite.
#   SWARM_SIM_SEEDS=N      number of seeded Raft simulations (default 1000)
#   SWARM_SIM_SEED=S       replay one simulation seed
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
