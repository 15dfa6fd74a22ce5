#!/usr/bin/env bash
# One command on a fresh machine: install what the tests need, then run every test
# (unit, integration with real containers, runc differential, containerd, cgroup v2 VM).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Tests run real containers concurrently; two threads keep a 2-core machine responsive.
status=0
cargo test --workspace -- --test-threads="${BERTH_TEST_THREADS:-2}" 2>&1 | tee "$log" || status=$?
# One closing line with the totals over every test binary (cargo ends on doc-tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
