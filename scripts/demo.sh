#!/usr/bin/env bash
# One command on a fresh machine: install, build, make a busybox bundle, run it with berth-oci.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p berth-cli -p berth-testutil
bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
target/release/mkbundle "$bundle" >/dev/null
echo "bundle: $bundle"
target/release/berth-oci run --bundle "$bundle" "demo-$$"
