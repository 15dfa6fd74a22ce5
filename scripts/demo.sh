#!/usr/bin/env bash
# One command on a fresh machine (offline but for package registries): install, build,
# start a local registry holding a busybox image built here, pull it with berth and run
# it with `berth run`; then the same container the runc way, with berth-oci on a bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p berth-cli -p berth-testutil
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry=$!
cleanup() {
    kill "$registry" 2>/dev/null || true
    target/release/berth --root "$work/root" --runroot "$work/run" rm -f demo >/dev/null 2>&1 || true
    scripts/rules-cleanup.sh "$work/root"
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
target/release/mkimage --out "$work/layout" --push "127.0.0.1:$port/busybox" >/dev/null
berth="target/release/berth --root $work/root --runroot $work/run"
$berth pull "127.0.0.1:$port/busybox:latest"
$berth images
$berth run --rm "127.0.0.1:$port/busybox:latest" sh -c 'echo "hello from a berth container: $(hostname), $(id)"'
bundle="$work/bundle"
target/release/mkbundle "$bundle" >/dev/null
target/release/berth-oci --root "$work/oci" run --bundle "$bundle" "demo-$$"
