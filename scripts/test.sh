#!/usr/bin/env bash
# Installs what the tests need, checks that Package.swift declares every module each target
# imports, builds, starts a private dockerd for the docker executor's tests, and runs the
# whole test suite. With CI=true (as CI runs it), the package's Swift targets build with
# warnings as errors.
#   SWARM_SIM_SEEDS=N      number of seeded Raft simulations (default 1000)
#   SWARM_SIM_SEED=S       replay one simulation seed
#   SWARM_TEST_WIDTH=N     tests run at once (default 3; each of many starts several
#                          swarmd processes, and unbounded they overload a 2-core machine)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh --test
python3 scripts/check-imports.py
swift build --build-tests
docker_dir=$(mktemp -d /tmp/swarm-test-docker.XXXX)
trap 'scripts/test-dockerd.sh stop "$docker_dir"; rm -rf "$docker_dir"' EXIT
SWARM_TEST_DOCKER_HOST="unix://$(scripts/test-dockerd.sh start "$docker_dir")"
export SWARM_TEST_DOCKER_HOST SWARM_TEST_IMAGE=swarm-test:1
SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="${SWARM_TEST_WIDTH:-3}" swift test --skip-build
