#!/usr/bin/env bash
# exec latency, side by side: `RUNTIME exec ID true` into a running busybox container
# (one per runtime, started with `run --detach`), for berth-oci, crun and runc, timed
# by hyperfine in interleaved rounds. Prints medians and ratios (markdown).
#
# Usage: BERTH_OCI=/path/to/berth-oci bench/exec.sh [RUNS]   (default RUNS=100)
# Needs root, hyperfine, python3, /bin/busybox (static). crun needs hugetlb mounted as a
# v1 hierarchy on a hybrid host (this script mounts it if missing).
set -euo pipefail

runs=${1:-100}
rounds=5
berth=${BERTH_OCI:?set BERTH_OCI to the berth-oci binary to measure}
RUNC=$(command -v runc) CRUN=$(command -v crun)
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
if [ -d /sys/fs/cgroup/unified ] && ! grep -q " /sys/fs/cgroup/hugetlb " /proc/self/mountinfo; then
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

tmp=$(mktemp -d /tmp/berth-exec-bench.XXXXXX)
cleanup() {
    for r in berth crun runc; do
        bin=$berth; [ $r = crun ] && bin=$CRUN; [ $r = runc ] && bin=$RUNC
        "$bin" --root "$tmp/root-$r" delete --force "bench-$r" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/b/rootfs/bin" "$tmp/b/rootfs/proc" "$tmp/b/rootfs/dev" "$tmp/b/rootfs/sys"
cp /bin/busybox "$tmp/b/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$tmp/b/rootfs/bin/$a"; done
( cd "$tmp/b" && "$berth" spec )
python3 - "$tmp/b/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
# Debian's crun knows runtime-spec versions up to 1.1 only.
c["ociVersion"] = "1.0.2"
c["process"]["args"] = ["sleep", "100000"]
json.dump(c, open(p, "w"))
EOF

for r in berth crun runc; do
    bin=$berth; [ $r = crun ] && bin=$CRUN; [ $r = runc ] && bin=$RUNC
    "$bin" --root "$tmp/root-$r" run --detach --bundle "$tmp/b" "bench-$r" </dev/null >/dev/null 2>&1
done

per=$((runs / rounds))
for i in $(seq "$rounds"); do
    for r in berth crun runc; do
        bin=$berth; [ $r = crun ] && bin=$CRUN; [ $r = runc ] && bin=$RUNC
        hyperfine -N --warmup 3 --runs "$per" --export-json "$tmp/$r-$i.json" \
            "$bin --root $tmp/root-$r exec bench-$r true" >/dev/null
    done
done

python3 - "$tmp" "$rounds" <<'EOF'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for r in ["berth", "crun", "runc"]:
    times = []
    for i in range(1, rounds + 1):
        times += json.load(open(f"{tmp}/{r}-{i}.json"))["results"][0]["times"]
    med[r] = statistics.median(times) * 1000
print("| runtime | exec median (ms) | vs crun | vs runc |")
print("|---|---|---|---|")
names = {"berth": "berth-oci", "crun": "crun", "runc": "runc"}
for r in ["berth", "crun", "runc"]:
    print(f"| {names[r]} | {med[r]:.2f} | {med[r]/med['crun']:.2f} | {med[r]/med['runc']:.2f} |")
EOF
