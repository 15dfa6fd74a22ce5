#!/usr/bin/env bash
# `run` never hangs: N consecutive foreground `run`s of /bin/true (default 10000), each
# with a 10 s watchdog. Prints how many completed, failed and hung, and the wall time.
# A hang would be the SIGCHLD-race class (a child exiting between the check and the
# wait); berth-oci blocks every signal and reads a signalfd opened before the clone.
#
# Usage: BERTH_OCI=/path/to/berth-oci bench/run-many.sh [N]
set -euo pipefail

n=${1:-10000}
berth=${BERTH_OCI:?set BERTH_OCI to the berth-oci binary}
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
tmp=$(mktemp -d /tmp/berth-run-many.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/b/rootfs/bin" "$tmp/b/rootfs/proc" "$tmp/b/rootfs/dev" "$tmp/b/rootfs/sys"
cp /bin/busybox "$tmp/b/rootfs/bin/busybox"
ln -s busybox "$tmp/b/rootfs/bin/true"
( cd "$tmp/b" && "$berth" spec )
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"true"/; s/"sh"/"true"/' "$tmp/b/config.json"

ok=0 failed=0 hung=0
start=$(date +%s.%N)
for i in $(seq "$n"); do
    rc=0
    timeout -k 2 10 "$berth" --root "$tmp/root" run --bundle "$tmp/b" "m$i" </dev/null >/dev/null 2>"$tmp/err" || rc=$?
    case $rc in
        0) ok=$((ok + 1)) ;;
        124|137) hung=$((hung + 1)); echo "run $i hung" >&2
                 "$berth" --root "$tmp/root" delete --force "m$i" >/dev/null 2>&1 || true ;;
        *) failed=$((failed + 1)); echo "run $i failed ($rc): $(head -c 300 "$tmp/err")" >&2
           "$berth" --root "$tmp/root" delete --force "m$i" >/dev/null 2>&1 || true ;;
    esac
done
end=$(date +%s.%N)
left=$(ls "$tmp/root" 2>/dev/null | wc -l)
echo "runs=$n completed=$ok failed=$failed hung=$hung state_left=$left seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
[ "$failed" -eq 0 ] && [ "$hung" -eq 0 ] && [ "$left" -eq 0 ]
