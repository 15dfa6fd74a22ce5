#!/usr/bin/env bash
# Side-by-side container lifecycle through the engines' CLIs: berth vs podman (crun, conmon).
#
# On the same busybox image, served by a docker-registry on 127.0.0.1:
#   1. `run --rm IMAGE true`, with --network none and with each tool's default network:
#      median and p90 of N runs (hyperfine, after warm-up, interleaved rounds);
#   2. M × `run -d --network none --name bN IMAGE sleep 1000`, then one `rm -f` of all M
#      (total wall times);
#   3. with those M containers running: `ps` and `ps -a --format json` (hyperfine medians);
#   4. the per-container monitor's memory (berth-monitor vs conmon): RSS, PSS and USS
#      (private pages) from /proc/PID/smaps_rollup, over the M monitors.
# Prints a markdown report; see bench/README.md.
#
# Usage: bench/container.sh [--write] [--runs N] [--rounds N] [--warmup N] [--many M]
#                           [--ps-runs N] [--berth PATH] [--tools LIST] [--keep]
#   --write        also replace the container section of BENCHMARKS.md
#   --runs N       timed `run --rm` per tool and network (env RUNS, default 50)
#   --rounds N     interleaved rounds the runs are split into (env ROUNDS, default 5)
#   --warmup N     untimed runs before each round (env WARMUP, default 3)
#   --many M       detached containers for parts 2-4 (env MANY, default 100)
#   --ps-runs N    hyperfine runs of each ps command (env PS_RUNS, default 20)
#   --berth PATH   berth CLI (env BERTH; default $CARGO_TARGET_DIR/release/berth, else
#                  target/release/berth); berth-monitor must be beside it
#   --tools LIST   berth,podman or a subset (env TOOLS, default both)
#   --keep         keep the temp dir (hyperfine JSON, logs, samples)
# Env: IMAGE_CACHE (default /var/tmp/berth-bench-image: the busybox OCI layout from
#      target/debug/mkimage is kept there), BERTH_SRC (source tree of the berth binary, for
#      the git revision in the report; default this repo).
# Needs root, podman (with crun and conmon), docker-registry, skopeo, hyperfine, jq, python3,
# cargo (once, for mkimage). podman gets --ulimit nofile=1024:1024 --ulimit nproc=4096:4096
# because this VM lacks CAP_SYS_RESOURCE (crun cannot raise the limits to podman's defaults).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
orig_cmd="bench/container.sh${*:+ $*}"
for v in RUNS ROUNDS WARMUP MANY PS_RUNS BERTH TOOLS IMAGE_CACHE BERTH_SRC; do
    [ -n "${!v:-}" ] && orig_cmd="$v=${!v} $orig_cmd"
done

write=0 keep=0
runs=${RUNS:-50}
rounds=${ROUNDS:-5}
warmup=${WARMUP:-3}
many=${MANY:-100}
ps_runs=${PS_RUNS:-20}
berth=${BERTH:-${CARGO_TARGET_DIR:-$repo/target}/release/berth}
tools=${TOOLS:-berth,podman}
cache_root=${IMAGE_CACHE:-/var/tmp/berth-bench-image}
while [ $# -gt 0 ]; do
    case $1 in
        --write) write=1 ;;
        --keep) keep=1 ;;
        --runs) runs=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --many) many=$2; shift ;;
        --ps-runs) ps_runs=$2; shift ;;
        --berth) berth=$2; shift ;;
        --tools) tools=$2; shift ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "container-bench: $*" >&2; }
die() { log "error: $*"; exit 1; }
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

[ "$(id -u)" = 0 ] || die "must run as root (rootful containers, cgroups, networks)"
for t in docker-registry skopeo hyperfine jq python3 curl; do
    command -v "$t" >/dev/null || die "$t not found"
done
want() { [[ ",$tools," == *",$1,"* ]]; }
rows=()
if want berth; then
    [ -x "$berth" ] || die "no berth binary at $berth (cargo build --release -p berth-cli, or --berth PATH)"
    berth=$(readlink -f "$berth")
    [ -x "$(dirname "$berth")/berth-monitor" ] || die "no berth-monitor beside $berth"
    rows+=(berth)
fi
if want podman; then
    command -v podman >/dev/null || die "podman not found (apt-get install podman)"
    command -v crun >/dev/null || die "crun not found (apt-get install crun)"
    rows+=(podman)
fi
[ ${#rows[@]} -gt 0 ] || die "nothing to measure (--tools $tools)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- temp dir, cleanup -----------------------------------------------------------------
work=$(mktemp -d /tmp/berth-container-bench.XXXXXX)
mkdir -p "$work/tmp" "$work/logs"
export TMPDIR=$work/tmp
reg_pid=''
B=("$berth" --root "$work/berth/root" --runroot "$work/berth/run")
P=(podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
    --storage-driver overlay --runtime crun --cgroup-manager cgroupfs)
# crun cannot raise RLIMIT_NOFILE/NPROC to podman's defaults here (no CAP_SYS_RESOURCE).
PODMAN_LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
bridge_existed() { ip link show "$1" >/dev/null 2>&1; }
had_berth0=0 had_podman0=0
bridge_existed berth0 && had_berth0=1
bridge_existed podman0 && had_podman0=1
umount_under() { # unmount everything mounted at or below $1, deepest first
    local m
    for m in $(awk -v p="$1" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}
stop_pid() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    trap - EXIT INT TERM
    local ids
    if want berth && [ -d "$work/berth/root" ]; then
        ids=$("${B[@]}" ps -aq 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || "${B[@]}" rm -f $ids >/dev/null 2>&1 || log "berth rm -f of leftovers failed"
    fi
    if want podman && [ -d "$work/podman/root" ]; then
        "${P[@]}" rm -a -f -t 0 >/dev/null 2>&1 || log "podman rm -a -f failed"
        "${P[@]}" rmi -a -f >/dev/null 2>&1 || true
    fi
    # The default bridges go if this run made them and nothing is attached any more.
    local br had
    for br in berth0 podman0; do
        had=$([ "$br" = berth0 ] && echo $had_berth0 || echo $had_podman0)
        if [ "$had" = 0 ] && bridge_existed "$br" && [ -z "$(ip -o link show master "$br" 2>/dev/null)" ]; then
            ip link delete "$br" 2>/dev/null || true
        fi
    done
    # berth's NAT chains for this run's networks (kernel state that outlives $work).
    "$repo/scripts/rules-cleanup.sh" "$work/berth/root"
    [ -n "$reg_pid" ] && stop_pid "$reg_pid"
    umount_under "$work"
    rm -rf "$work/berth" "$work/podman" "$work/registry"
    if [ "$keep" = 1 ]; then log "kept $work (logs, samples)"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# --- image and registry -----------------------------------------------------------------
key=$(cat "$repo/crates/testutil/src/image.rs" "$repo/crates/testutil/src/bin/mkimage.rs" \
    "$repo/crates/testutil/Cargo.toml" | sha256sum | cut -c1-12)
layout=$cache_root/busybox-$key
if [ ! -s "$layout/index.json" ]; then
    command -v cargo >/dev/null || die "cargo not found (needed once, to build mkimage)"
    log "building mkimage (cargo build -p berth-testutil --bin mkimage)"
    (cd "$repo" && cargo build -q -p berth-testutil --bin mkimage) || die "building mkimage failed"
    tdir=$(cd "$repo" && cargo metadata -q --format-version 1 --no-deps | jq -r .target_directory)
    rm -rf "$layout"; mkdir -p "$layout.tmp"
    "$tdir/debug/mkimage" --out "$layout.tmp" >/dev/null || die "mkimage failed"
    mv "$layout.tmp" "$layout"
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: berth-container-bench
EOF
docker-registry serve "$work/registry.yml" >"$work/logs/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || die "registry did not start: $(tail -5 "$work/logs/registry.log")"
ref=127.0.0.1:$port/busybox:latest
skopeo copy --quiet --insecure-policy --dest-tls-verify=false "oci:$layout:latest" "docker://$ref" \
    || die "skopeo push to the registry failed"
log "image $ref (from $layout)"
if want berth; then
    "${B[@]}" pull -q "$ref" >"$work/logs/berth-pull.log" 2>&1 || die "berth pull failed: $(tail -3 "$work/logs/berth-pull.log")"
fi
if want podman; then
    "${P[@]}" pull -q --tls-verify=false "$ref" >"$work/logs/podman-pull.log" 2>&1 \
        || die "podman pull failed: $(tail -3 "$work/logs/podman-pull.log")"
fi

# --- 1. run --rm IMAGE true -------------------------------------------------------------
# The command lines hyperfine runs (-N: no shell), keyed by tool-network.
declare -A cmd
cmd[berth-none]="${B[*]} run --rm --network none $ref true"
cmd[berth-default]="${B[*]} run --rm $ref true"
cmd[podman-none]="${P[*]} run --rm --network none ${PODMAN_LIMITS[*]} $ref true"
cmd[podman-default]="${P[*]} run --rm ${PODMAN_LIMITS[*]} $ref true"
nets=(none default)
keys=()
for net in "${nets[@]}"; do for t in "${rows[@]}"; do keys+=("$t-$net"); done; done
for k in "${keys[@]}"; do
    # shellcheck disable=SC2086
    ${cmd[$k]} >"$work/logs/check-$k.log" 2>&1 || die "$k failed: ${cmd[$k]}: $(tail -5 "$work/logs/check-$k.log")"
done
per_round=$(( (runs + rounds - 1) / rounds ))
for r in $(seq 0 $((rounds - 1))); do
    for i in $(seq 0 $((${#keys[@]} - 1))); do
        k=${keys[$(( (i + r) % ${#keys[@]} ))]}
        log "run --rm, round $((r + 1))/$rounds: $k ($per_round runs, $warmup warm-up)"
        hyperfine -N --warmup "$warmup" --runs "$per_round" --style none \
            --export-json "$work/hf-$k-$r.json" -n "$k" "${cmd[$k]}" >/dev/null \
            || die "hyperfine failed for $k"
    done
done
# Pooled samples -> {n, median, p90 (nearest rank), mean, min, max} in seconds.
pool() { # json files...
    jq -s '[.[].results[0].times[]] | sort | length as $n
        | {n: $n, mean: (add / $n), min: .[0], max: .[-1],
           median: (if $n % 2 == 1 then .[($n - 1) / 2] else (.[$n / 2 - 1] + .[$n / 2]) / 2 end),
           p90: .[((0.9 * $n) | ceil) - 1]}' "$@"
}
for k in "${keys[@]}"; do pool "$work"/hf-"$k"-*.json >"$work/stats-$k.json"; done
st() { jq -r ".$2" "$work/stats-$1.json"; }
ms() { awk -v s="$1" 'BEGIN {printf "%.1f", s*1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

# --- 2-4. M detached containers, ps, monitor memory, rm -f -------------------------------
now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", b - a}'; }
names=()
for i in $(seq "$many"); do names+=("bench$i"); done
# Memory of every monitor process whose command line mentions this run's temp dir:
# one "rss pss uss" line (KiB) per process.
monitor_mem() { # process name (comm)
    local p
    for p in $(pgrep -x "$1"); do
        tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$work/" || continue
        awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_(Clean|Dirty):/ {u+=$2}
             END {print r, p, u}' "/proc/$p/smaps_rollup"
    done
}
med() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "?"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A many_run many_run_med many_rm ps_med psj_med mem_n mem_rss mem_pss mem_uss mem_rss_max
for t in "${rows[@]}"; do
    if [ "$t" = berth ]; then
        run_d=("${B[@]}" run -d --network none); rm_f=("${B[@]}" rm -f)
        ps1="${B[*]} ps"; ps2="${B[*]} ps -a --format json"; mon=berth-monitor
    else
        run_d=("${P[@]}" run -d --network none "${PODMAN_LIMITS[@]}"); rm_f=("${P[@]}" rm -f -t 0)
        ps1="${P[*]} ps"; ps2="${P[*]} ps -a --format json"; mon=conmon
    fi
    log "$t: $many × run -d ... sleep 1000"
    : >"$work/many-$t.each"
    s=$(now)
    for n in "${names[@]}"; do
        a=$(now)
        "${run_d[@]}" --name "$n" "$ref" sleep 1000 >>"$work/logs/many-$t.log" 2>&1 \
            || die "$t run -d $n failed: $(tail -3 "$work/logs/many-$t.log")"
        b=$(now)
        secs "$a" "$b" >>"$work/many-$t.each"
    done
    e=$(now)
    many_run[$t]=$(secs "$s" "$e")
    many_run_med[$t]=$(med <"$work/many-$t.each")

    # ps with M running containers: check the count first.
    # shellcheck disable=SC2086
    lines=$($ps1 | wc -l)
    [ "$lines" = $((many + 1)) ] || die "$t ps listed $((lines - 1)) containers, expected $many"
    # shellcheck disable=SC2086
    $ps2 | jq -e "length == $many" >/dev/null || die "$t ps -a --format json does not list $many containers"
    log "$t: ps, ps -a --format json ($ps_runs runs each)"
    hyperfine -N --warmup 3 --runs "$ps_runs" --style none --export-json "$work/hf-ps-$t.json" \
        -n ps "$ps1" -n ps-json "$ps2" >/dev/null || die "hyperfine failed for $t ps"
    ps_med[$t]=$(jq -r '.results[0].median' "$work/hf-ps-$t.json")
    psj_med[$t]=$(jq -r '.results[1].median' "$work/hf-ps-$t.json")

    monitor_mem "$mon" >"$work/mem-$t.txt"
    mem_n[$t]=$(wc -l <"$work/mem-$t.txt")
    mem_rss[$t]=$(cut -d' ' -f1 "$work/mem-$t.txt" | med)
    mem_pss[$t]=$(cut -d' ' -f2 "$work/mem-$t.txt" | med)
    mem_uss[$t]=$(cut -d' ' -f3 "$work/mem-$t.txt" | med)
    mem_rss_max[$t]=$(cut -d' ' -f1 "$work/mem-$t.txt" | sort -n | tail -1)
    [ "${mem_n[$t]}" = "$many" ] || log "warning: $t has ${mem_n[$t]} $mon processes for $many containers"

    log "$t: rm -f of all $many"
    s=$(now)
    "${rm_f[@]}" "${names[@]}" >>"$work/logs/many-$t.log" 2>&1 || die "$t rm -f failed: $(tail -3 "$work/logs/many-$t.log")"
    e=$(now)
    many_rm[$t]=$(secs "$s" "$e")
    left=$(if [ "$t" = berth ]; then "${B[@]}" ps -aq; else "${P[@]}" ps -aq; fi | wc -l)
    [ "$left" = 0 ] || die "$t: $left containers left after rm -f"
    sleep 1
    left=$(monitor_mem "$mon" | wc -l)
    [ "$left" = 0 ] || log "warning: $left $mon processes left 1 s after rm -f"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------
linkage() { # binary -> "static|dynamic PIE|non-PIE, N KiB"
    local h l
    h=$(readelf -hlW "$1" 2>/dev/null || true)
    if grep -qE '^[[:space:]]*INTERP' <<<"$h"; then l=dynamic; else l=static; fi
    if grep -qE 'Type:[[:space:]]*EXEC' <<<"$h"; then l+=" non-PIE"; else l+=" PIE"; fi
    echo "$l, $(( $(stat -c %s "$1") / 1024 )) KiB"
}
mib() { awk -v k="$1" 'BEGIN {printf "%.2f", k/1024}'; }
has() { [[ " ${rows[*]} " == *" $1 "* ]]; }
both() { has berth && has podman; }
met() { awk -v a="$1" -v b="$2" 'BEGIN {print (a <= b) ? "met" : "not met"}'; }
report() {
    local net k t
    echo "#### \`run --rm IMAGE true\`"
    echo
    echo "| tool | network | median ms | p90 ms | mean ms | min ms | max ms | median / podman |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for net in "${nets[@]}"; do for t in "${rows[@]}"; do
        k=$t-$net
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$net" "$(ms "$(st "$k" median)")" \
            "$(ms "$(st "$k" p90)")" "$(ms "$(st "$k" mean)")" "$(ms "$(st "$k" min)")" "$(ms "$(st "$k" max)")" \
            "$(both && ratio "$(st "$k" median)" "$(st "podman-$net" median)" || echo -)"
    done; done
    echo
    if both; then
        for net in "${nets[@]}"; do
            local r
            r=$(ratio "$(st "berth-$net" median)" "$(st "podman-$net" median)")
            echo "berth median = **$r × podman** with network $net (target ≤ 0.20: $(met "$r" 0.20))."
        done
        echo
    fi
    echo "#### $many detached containers"
    echo
    echo "| tool | $many × run -d, total s | run -d median ms | rm -f of all $many, s | ps ms (median) | ps -a --format json ms (median) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in "${rows[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "${many_run[$t]}" "$(ms "${many_run_med[$t]}")" \
            "${many_rm[$t]}" "$(ms "${ps_med[$t]}")" "$(ms "${psj_med[$t]}")"
    done
    if both; then
        echo
        echo "berth / podman: run -d total $(ratio "${many_run[berth]}" "${many_run[podman]}"), rm -f $(ratio "${many_rm[berth]}" "${many_rm[podman]}"), ps $(ratio "${ps_med[berth]}" "${ps_med[podman]}"), ps -a --format json $(ratio "${psj_med[berth]}" "${psj_med[podman]}")."
    fi
    echo
    echo "#### Per-container monitor memory ($many running containers)"
    echo
    echo "| monitor | processes | RSS MiB (median) | RSS MiB (max) | PSS MiB (median) | USS MiB (median, private pages) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in "${rows[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$([ "$t" = berth ] && echo berth-monitor || echo conmon)" \
            "${mem_n[$t]}" "$(mib "${mem_rss[$t]}")" "$(mib "${mem_rss_max[$t]}")" "$(mib "${mem_pss[$t]}")" "$(mib "${mem_uss[$t]}")"
    done
    echo
    if has berth; then
        echo "berth-monitor RSS = **$(mib "${mem_rss[berth]}") MiB** per container (target ≤ 1 MiB: $(met "${mem_rss[berth]}" 1024)); PSS $(mib "${mem_pss[berth]}") MiB$(both && echo ", conmon's $(mib "${mem_pss[podman]}") MiB")."
        echo
    fi
    echo "- Image: \`$ref\`, busybox-static (\`mkimage\`, no extra layers), pushed to Debian's docker-registry on 127.0.0.1 (plain HTTP); each tool pulled it once into its private store."
    echo "- Commands (DIR = a temp dir on $(findmnt -no FSTYPE -T "$work" 2>/dev/null || echo ?)):"
    has berth && echo "  - berth: \`berth --root DIR/root --runroot DIR/run run --rm [--network none] IMAGE true\`; detached: \`run -d --network none --name bN IMAGE sleep 1000\`, then \`rm -f b1 … b$many\` (one command; SIGKILL)."
    has podman && echo "  - podman: \`podman --root DIR/root --runroot DIR/run --tmpdir DIR/tmp --storage-driver overlay --runtime crun --cgroup-manager cgroupfs run --rm [--network none] ${PODMAN_LIMITS[*]} IMAGE true\` (the ulimits because crun cannot raise podman's default limits without CAP_SYS_RESOURCE here); detached: the same \`run -d --network none\`, then \`rm -f -t 0 b1 … b$many\` (one command; -t 0 = SIGKILL at once like berth's \`rm -f\`, rather than podman's 10 s SIGTERM grace, which \`sleep\` as pid 1 ignores)."
    echo "  - Default networks: berth's \`berth\` CNI bridge (berth0); podman's \`podman\` network (netavark, podman0)."
    echo "- Timing of \`run --rm\`: $(hyperfine --version | head -1) -N, $rounds interleaved rounds (order rotated) of --warmup $warmup --runs $per_round per tool and network, $(st "${keys[0]}" n) samples pooled; p90 = nearest rank."
    echo "- Detached: wall time of the whole loop of $many \`run -d\` (each one's own time for the median) and of the single \`rm -f\`, bash \$EPOCHREALTIME; ps: hyperfine -N, --warmup 3, $ps_runs runs, with the $many containers running (the count is checked)."
    echo "- Memory: every monitor process of this run (berth-monitor / conmon whose command line names the temp dir) with the $many containers running; RSS, PSS and USS (Private_Clean + Private_Dirty) from /proc/PID/smaps_rollup; PSS splits pages shared between the $many monitors, USS is what one more container adds."
    echo "- Host: kernel $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)); loadavg before $load_before, after $load_after."
    local src rev dirty
    src=${BERTH_SRC:-$repo}
    rev=$(cd "$src" && git rev-parse --short HEAD 2>/dev/null || echo "?")
    dirty=$(cd "$src" && { git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null && echo clean || echo "uncommitted changes"; })
    local v="- Versions:"
    has berth && v+=" berth $("$berth" --version 2>/dev/null | awk '{print $NF}') (git $rev, $dirty; berth $(linkage "$berth"); berth-monitor $(linkage "$(dirname "$berth")/berth-monitor"))"
    has podman && v+="; $(podman --version); $(crun --version | head -1); $(conmon --version | head -1) ($(linkage "$(command -v conmon)"))"
    echo "$v; $(hyperfine --version | head -1)."
    if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}'; then
        echo "- Note: the host was busy (1-minute load average ${load_before%% *} on $(nproc) CPUs before the run): other work competed for the CPUs; ratios of interleaved runs are more telling than absolute times."
    fi
}
out=$(report)
echo "$out"

if [ "$write" = 1 ]; then
    md=$repo/BENCHMARKS.md
    begin='<!-- container:begin (generated by bench/container.sh --write; edits inside are overwritten) -->'
    end='<!-- container:end -->'
    section=$(printf '%s\n\n### Latest run: %s\n\nCommand (from the repo root): `%s`\n\n%s\n\n%s\n' \
        "$begin" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$orig_cmd" "$out" "$end")
    if grep -qF '<!-- container:begin' "$md"; then
        SECTION=$section awk '
            /<!-- container:begin/ { print ENVIRON["SECTION"]; skip = 1; next }
            /<!-- container:end -->/ { skip = 0; next }
            !skip { print }' "$md" >"$md.new"
    else
        { cat "$md"; echo; echo "## Containers through the CLI: berth vs podman"; echo
          echo "\`berth run\` / \`run -d\` / \`rm -f\` / \`ps\` and the per-container monitor's memory, against podman (crun, conmon), through both CLIs (\`bench/container.sh\`, see \`bench/README.md\`). Targets: \`run --rm\` median ≤ 0.2 × podman's, monitor ≤ 1 MiB per container."
          echo; echo "$section"; } >"$md.new"
    fi
    mv "$md.new" "$md"
    log "updated $md"
fi
