#!/usr/bin/env bash
# One command on a fresh machine: install what the tests need, then run every test
# (unit, integration with real containers, runc differential, containerd, cgroup v2 VM).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Tests run real containers concurrently; two threads keep a 2-core machine responsive.
cargo test --workspace -- --test-threads="${BERTH_TEST_THREADS:-2}"
