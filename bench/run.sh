#!/usr/bin/env bash
# Side-by-side lifecycle benchmark: berth-oci vs crun vs runc.
#
# Times `RUNTIME --root R run --bundle B ID` (create + start + wait + delete of a
# busybox container running /bin/true) with hyperfine, measures the peak RSS of the
# same command with GNU time, and prints a markdown table. See bench/README.md.
#
# Usage: bench/run.sh [--write] [--runs N] [--rss-runs N] [--berth-oci PATH] [--keep]
#   --write           also replace the generated section of BENCHMARKS.md
#   --runs N          hyperfine runs per runtime (env RUNS, default 100)
#   --rss-runs N      GNU time runs per runtime for peak RSS (env RSS_RUNS, default 20)
#   --rounds N        split the runs into N interleaved rounds (env ROUNDS, default 5)
#   --berth-oci PATH  binary to test (env BERTH_OCI); default: build it with
#                     scripts/build-release.sh (static, non-PIE, bench/hot-text.ld layout)
#   --keep            keep the temp dir (bundle, hyperfine JSON, RSS samples)
# Env: WARMUP (default 5), RUNC (default runc), CRUN (default crun), BERTH_SRC (the source
#      tree the berth-oci binary was built from, for the git revision in the report;
#      default this repo).
# Needs root, hyperfine, jq or python3, GNU time (/usr/bin/time), /bin/busybox (static).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
orig_cmd="bench/run.sh${*:+ $*}"
for v in ROUNDS RSS_RUNS RUNS WARMUP CRUN RUNC BERTH_OCI BERTH_SRC; do
    [ -n "${!v:-}" ] && orig_cmd="$v=${!v} $orig_cmd"
done

write=0 keep=0
runs=${RUNS:-100}
rss_runs=${RSS_RUNS:-20}
warmup=${WARMUP:-5}
rounds=${ROUNDS:-5}
berth=${BERTH_OCI:-}
while [ $# -gt 0 ]; do
    case $1 in
        --write) write=1 ;;
        --keep) keep=1 ;;
        --runs) runs=$2; shift ;;
        --rss-runs) rss_runs=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --berth-oci) berth=$2; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "bench: $*" >&2; }
# The runtimes run with the caller's environment; a developer's RUST_BACKTRACE=1 would make
# berth-oci capture a backtrace for every error value it creates. Not what a shim passes.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (rootful containers, cgroups)"
for t in hyperfine /usr/bin/time /bin/busybox; do
    command -v "$t" >/dev/null || die "$t not found"
done
RUNC=$(command -v "${RUNC:-runc}") || die "runc not found"
CRUN=$(command -v "${CRUN:-crun}") || die "crun not found"
if command -v jq >/dev/null; then have_jq=1; else
    command -v python3 >/dev/null || die "need jq or python3"; have_jq=0
fi

# --- berth-oci binary ------------------------------------------------------------
if [ -z "$berth" ]; then
    log "no BERTH_OCI/--berth-oci: building berth-oci (scripts/build-release.sh)"
    berth=$("$repo/scripts/build-release.sh") || die "scripts/build-release.sh failed"
fi
[ -x "$berth" ] || die "berth-oci binary not executable: $berth"
berth=$(readlink -f "$berth")
berth_sha=$(sha256sum "$berth" | cut -c1-12)
# How it was linked: static or dynamic, PIE or not, text layout (scripts/build-release.sh).
hdr=$(readelf -hlSW "$berth" 2>/dev/null || true)
if grep -qE '^[[:space:]]*INTERP' <<<"$hdr"; then berth_link=dynamic; else berth_link=static; fi
if grep -qE 'Type:[[:space:]]*EXEC' <<<"$hdr"; then berth_link+=" non-PIE"; else berth_link+=" PIE"; fi
hot_hex=$(sed 's/^ *\[ *[0-9]*\] *//' <<<"$hdr" | awk '$1 == ".text.hot" { print $5; exit }')
[ -n "$hot_hex" ] && berth_link+=", .text.hot $(( 16#$hot_hex / 1024 )) KiB"

# --- host facts --------------------------------------------------------------------
cgroup_mode() {
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then echo "v2 (unified)"
    elif [ -d /sys/fs/cgroup/unified ] && mountpoint -q /sys/fs/cgroup/unified; then echo "v1 hybrid (v1 controllers + v2 at /sys/fs/cgroup/unified)"
    else echo "v1 (legacy)"; fi
}
cgmode=$(cgroup_mode)
notes=()
# crun refuses hybrid mode unless hugetlb is mounted as a v1 hierarchy.
case $cgmode in
    "v1 hybrid"*)
        if ! mountpoint -q /sys/fs/cgroup/hugetlb; then
            log "crun needs a v1 hugetlb hierarchy on a hybrid host: mounting /sys/fs/cgroup/hugetlb"
            mkdir -p /sys/fs/cgroup/hugetlb
            mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
            notes+=("the harness mounted a v1 hugetlb hierarchy at /sys/fs/cgroup/hugetlb (crun refuses hybrid mode without it)")
        else
            notes+=("v1 hugetlb hierarchy already mounted at /sys/fs/cgroup/hugetlb (crun needs it on hybrid hosts)")
        fi ;;
esac

ver_berth=$("$berth" --version 2>/dev/null | head -1 | sed 's/^berth-oci //' || echo "?")
ver_runc=$("$RUNC" --version | head -1)
ver_crun=$("$CRUN" --version | head -1)
ver_hf=$(hyperfine --version | head -1)
src=${BERTH_SRC:-$repo}
git_rev=$(cd "$src" && git rev-parse --short HEAD 2>/dev/null || echo "?")
git_dirty=$(cd "$src" && { git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null && echo clean || echo "uncommitted changes in crates/ or Cargo.*"; })
[ "$src" = "$repo" ] || git_dirty="$git_dirty, source tree $src"
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- bundle ------------------------------------------------------------------------
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
rts=(berth-oci crun runc)
declare -A bin=([berth-oci]=$berth [crun]=$CRUN [runc]=$RUNC)
cleanup() {
    for rt in "${rts[@]}"; do
        [ -d "$work/root-$rt" ] || continue
        for id in $(ls "$work/root-$rt" 2>/dev/null); do
            "${bin[$rt]}" --root "$work/root-$rt" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys" "$bundle/rootfs/tmp"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
ln -s busybox "$bundle/rootfs/bin/sh"
(cd "$bundle" && "$RUNC" spec)
if [ "$have_jq" = 1 ]; then
    jq '.process.terminal = false | .process.args = ["/bin/true"]' "$bundle/config.json" >"$bundle/config.json.new"
else
    python3 - "$bundle/config.json" >"$bundle/config.json.new" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, sys.stdout, indent=2)
EOF
fi
mv "$bundle/config.json.new" "$bundle/config.json"
if [ "$have_jq" = 1 ]; then ns_list=$(jq -r '[.linux.namespaces[].type] | join(",")' "$bundle/config.json")
else ns_list=$(python3 -c 'import json,sys; print(",".join(n["type"] for n in json.load(open(sys.argv[1]))["linux"]["namespaces"]))' "$bundle/config.json"); fi

# --- sanity: each runtime runs the container and cleans up after itself ---------------
# Foreground `run` must delete the container on exit. If any runtime leaves state (its
# --root entry or a cgroup directory named after the id), every runtime's timed command
# gets a trailing `delete -f` so all three do the same work.
leftovers() { # rt id
    local rt=$1 id=$2 left=""
    [ -e "$work/root-$rt/$id" ] && left+=" state:$work/root-$rt/$id"
    local d
    for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$id" 2>/dev/null); do left+=" cgroup:$d"; done
    echo "$left"
}
need_delete=0
for rt in "${rts[@]}"; do
    mkdir -p "$work/root-$rt"
    id=bench-check-$rt-$$
    if ! out=$("${bin[$rt]}" --root "$work/root-$rt" run --bundle "$bundle" "$id" 2>&1); then
        die "$rt run failed: $out"
    fi
    left=$(leftovers "$rt" "$id")
    if [ -n "$left" ]; then
        log "$rt left state after foreground run:$left"
        notes+=("$rt left state after a foreground run ($left); all timed commands include delete -f")
        need_delete=1
        "${bin[$rt]}" --root "$work/root-$rt" delete -f "$id" >/dev/null 2>&1 || true
    else
        log "$rt: run ok, no state or cgroup left behind"
    fi
done

# --- timing ------------------------------------------------------------------------
# The same fixed id can be reused because each run deletes its container; --prepare
# (not timed) removes a leftover from a failed run so one failure cannot cascade.
cmd_for() { # rt -> command string
    local rt=$1 b=${bin[$1]} r="$work/root-$1" id="bench-$1"
    if [ "$need_delete" = 1 ]; then
        echo "$b --root $r run --bundle $bundle $id; $b --root $r delete -f $id"
    else
        echo "$b --root $r run --bundle $bundle $id"
    fi
}
# Runtimes are timed in ROUNDS interleaved rounds (order rotated each round) so that
# a load change on the host hits all three alike; the rounds' samples are pooled.
per_round=$(( (runs + rounds - 1) / rounds ))
for rt in "${rts[@]}"; do
    prep=$work/prepare-$rt.sh
    printf '#!/bin/sh\n%s --root %s delete -f bench-%s >/dev/null 2>&1 || true\n' "${bin[$rt]}" "$work/root-$rt" "$rt" >"$prep"
    chmod +x "$prep"
done
if [ "$need_delete" = 1 ]; then shell=(); else shell=(-N); fi
for r in $(seq 0 $((rounds - 1))); do
    for k in 0 1 2; do
        rt=${rts[$(( (k + r) % 3 ))]}
        log "round $((r + 1))/$rounds: timing $rt ($per_round runs, $warmup warmup)"
        hyperfine --warmup "$warmup" --runs "$per_round" --style basic "${shell[@]}" \
            --prepare "$work/prepare-$rt.sh" --export-json "$work/hyperfine-$rt-$r.json" \
            -n "$rt" "$(cmd_for "$rt")" >&2 || die "hyperfine failed for $rt"
    done
done
# Pooled stats per runtime -> $work/stats-$rt.json {n,median,mean,stddev,min,max,user,system} (s)
for rt in "${rts[@]}"; do
    if [ "$have_jq" = 1 ]; then
        jq -s '[.[].results[0]] as $res
            | ($res | map(.times | length) | add) as $n
            | ([$res[].times[]] | sort) as $t
            | ($t | add / $n) as $m
            | {n: $n, mean: $m, min: $t[0], max: $t[-1],
               median: (if $n % 2 == 1 then $t[($n - 1) / 2] else ($t[$n / 2 - 1] + $t[$n / 2]) / 2 end),
               stddev: (if $n > 1 then ($t | map((. - $m) * (. - $m)) | add / ($n - 1) | sqrt) else 0 end),
               user: ($res | map(.user * (.times | length)) | add / $n),
               system: ($res | map(.system * (.times | length)) | add / $n)}' \
            "$work"/hyperfine-"$rt"-*.json >"$work/stats-$rt.json"
    else
        python3 - "$work"/hyperfine-"$rt"-*.json >"$work/stats-$rt.json" <<'EOF2'
import json, statistics, sys
res = [json.load(open(f))["results"][0] for f in sys.argv[1:]]
t = sorted(x for r in res for x in r["times"]); n = len(t)
w = lambda k: sum(r[k] * len(r["times"]) for r in res) / n
print(json.dumps({"n": n, "mean": statistics.mean(t), "median": statistics.median(t),
    "stddev": statistics.stdev(t) if n > 1 else 0, "min": t[0], "max": t[-1],
    "user": w("user"), "system": w("system")}))
EOF2
    fi
done

# --- peak RSS ------------------------------------------------------------------------
declare -A rss
for rt in "${rts[@]}"; do
    log "peak RSS of $rt ($rss_runs runs)"
    : >"$work/rss-$rt.txt"
    for i in $(seq "$rss_runs"); do
        id=bench-rss-$rt-$i
        /usr/bin/time -f %M -o "$work/rss-one.txt" \
            "${bin[$rt]}" --root "$work/root-$rt" run --bundle "$bundle" "$id" >/dev/null 2>&1 \
            || die "$rt run failed during RSS measurement"
        [ "$need_delete" = 1 ] && { "${bin[$rt]}" --root "$work/root-$rt" delete -f "$id" >/dev/null 2>&1 || true; }
        tail -1 "$work/rss-one.txt" >>"$work/rss-$rt.txt"
    done
    rss[$rt]=$(sort -n "$work/rss-$rt.txt" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}')
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------
hstat() { # rt field -> seconds (pooled over the rounds)
    if [ "$have_jq" = 1 ]; then jq -r ".$2" "$work/stats-$1.json"
    else python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/stats-$1.json" "$2"; fi
}
ms() { awk -v s="$1" 'BEGIN {printf "%.2f", s*1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
declare -A med
for rt in "${rts[@]}"; do med[$rt]=$(hstat "$rt" median); done

report() {
    echo "| runtime | median ms | mean ± σ ms | min ms | max ms | user+sys CPU ms | peak RSS KiB (median of $rss_runs) | median / crun | median / runc | RSS / crun |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for rt in "${rts[@]}"; do
        printf '| %s | %s | %s ± %s | %s | %s | %s + %s | %s | %s | %s | %s |\n' "$rt" \
            "$(ms "${med[$rt]}")" "$(ms "$(hstat "$rt" mean)")" "$(ms "$(hstat "$rt" stddev)")" \
            "$(ms "$(hstat "$rt" min)")" "$(ms "$(hstat "$rt" max)")" \
            "$(ms "$(hstat "$rt" user)")" "$(ms "$(hstat "$rt" system)")" "${rss[$rt]}" \
            "$(ratio "${med[$rt]}" "${med[crun]}")" "$(ratio "${med[$rt]}" "${med[runc]}")" \
            "$(ratio "${rss[$rt]}" "${rss[crun]}")"
    done
    echo
    local r_crun r_runc r_rss
    r_crun=$(ratio "${med[berth-oci]}" "${med[crun]}")
    r_runc=$(ratio "${med[berth-oci]}" "${med[runc]}")
    r_rss=$(ratio "${rss[berth-oci]}" "${rss[crun]}")
    echo "berth-oci median = **${r_crun} × crun**, **${r_runc} × runc** (target ≤ 0.80 × crun: $(awk -v r="$r_crun" 'BEGIN {print (r <= 0.80) ? "met" : "not met"}'))."
    echo "berth-oci peak RSS = **${r_rss} × crun** (target ≤ 1.00 × crun: $(awk -v r="${rss[berth-oci]}" -v c="${rss[crun]}" 'BEGIN {print (r <= c) ? "met" : "not met"}'))."
    echo
    echo "- Workload: \`RUNTIME --root DIR run --bundle B ID\` (create, start, wait, delete) of a busybox-static rootfs running \`/bin/true\`;"
    echo "  config.json from \`runc spec\` with process.terminal=false, args=[\"/bin/true\"]; namespaces: ${ns_list}; same bundle for all runtimes."
    if [ "$need_delete" = 1 ]; then
        echo "  Timed command also runs \`delete -f\` (a runtime left state after a foreground run)."
    else
        echo "  Every runtime deletes its container (state and cgroup) on exit of a foreground run, so no extra \`delete\` is timed."
    fi
    echo "- Timing: $ver_hf, $( [ "$need_delete" = 1 ] && echo "through sh -c" || echo "-N (no intermediate shell)" ); $rounds interleaved rounds (order rotated) of --warmup $warmup --runs $per_round per runtime, $(hstat berth-oci n) samples per runtime pooled. CPU = hyperfine's mean user + system time."
    echo "- Peak RSS: GNU time %M (wait4 ru_maxrss: largest RSS of the runtime process and of its reaped children, i.e. the container init before it execs), median of $rss_runs runs."
    echo "- Host: kernel $(uname -r), $(nproc) CPUs ($cpu_model), cgroups $cgmode; loadavg before $load_before, after $load_after."
    echo "- Versions: berth-oci $ver_berth (git $git_rev, $git_dirty; binary $berth, $berth_link, sha256 $berth_sha…), $ver_runc, $ver_crun."
    local n
    for n in "${notes[@]}"; do echo "- Note: $n."; done
}
out=$(report)
echo "$out"

if [ "$write" = 1 ]; then
    md=$repo/BENCHMARKS.md
    begin='<!-- bench:begin (generated by bench/run.sh --write; edits inside are overwritten) -->'
    end='<!-- bench:end -->'
    section=$(printf '%s\n\n## Latest run: %s\n\nCommand (from the repo root): `%s`\n\n%s\n\n%s\n' \
        "$begin" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$orig_cmd" "$out" "$end")
    if [ -f "$md" ] && grep -qF '<!-- bench:begin' "$md"; then
        SECTION=$section awk '
            /<!-- bench:begin/ { print ENVIRON["SECTION"]; skip = 1; next }
            /<!-- bench:end -->/ { skip = 0; next }
            !skip { print }' "$md" >"$md.new"
        mv "$md.new" "$md"
    else
        { [ -f "$md" ] && cat "$md" && echo || printf '# Benchmarks\n\n'; echo "$section"; } >"$md.new"
        mv "$md.new" "$md"
    fi
    log "updated $md"
fi
