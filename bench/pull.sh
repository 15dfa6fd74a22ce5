#!/usr/bin/env bash
# Side-by-side cold image pull + unpack: berth vs containerd (CRI, and ctr) vs podman vs
# skopeo + umoci, from a private local registry, plus the decompression floor.
#
# Builds a busybox + N-layer test image with target/debug/mkimage (the repo's generator),
# pushes it to a docker-registry on 127.0.0.1, then times each tool pulling it into an
# empty store, in interleaved rounds, and prints a markdown table. See bench/README.md.
#
# Usage: bench/pull.sh [--write] [--runs N] [--layers N] [--layer-size BYTES]
#                      [--berth PATH] [--tools LIST] [--warm-runs N] [--regen] [--keep]
#   --write             also replace the pull section of BENCHMARKS.md
#   --runs N            cold pulls per tool, one per interleaved round (env RUNS, default 5)
#   --layers N          generated layers on top of busybox (env LAYERS, default 5)
#   --layer-size BYTES  uncompressed bytes per generated layer (env LAYER_SIZE, default 40000000)
#   --berth PATH        berth CLI to test (env BERTH, default /work/main/target/release/berth);
#                       skipped, with the reason printed, if it is not there
#   --tools LIST        comma-separated subset of: berth,cri,ctr,podman,umoci,floor
#                       (env TOOLS, default all)
#   --warm-runs N       hyperfine runs of berth's warm pull (env WARM_RUNS, default 30)
#   --regen             rebuild the cached image layout (see IMAGE_CACHE)
#   --keep              keep the temp dir (logs, samples; stores are still emptied)
# Env: CONTAINERD_DISABLE_PIGZ=1 (passed to containerd: Go's gzip instead of unpigz),
#      IMAGE_CACHE (default /var/tmp/berth-bench-image): the generated OCI layout is kept
#      there, keyed by the generator's source and the layer arguments (generating it with the
#      debug mkimage takes ~2 min); BERTH_SRC (source tree of the berth binary, for the git
#      revision in the report; default this repo); CARGO_TARGET_DIR as usual.
# Needs root, docker-registry, containerd + ctr, podman, skopeo, umoci, hyperfine, GNU time,
# jq, gzip, GNU tar, cargo; optional: /usr/bin/python3 with grpc (python3-grpcio, for the
# CRI pull), pigz and libdeflate-gzip (libdeflate-tools) for more floor rows.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
orig_cmd="bench/pull.sh${*:+ $*}"
for v in RUNS LAYERS LAYER_SIZE BERTH TOOLS WARM_RUNS IMAGE_CACHE BERTH_SRC CONTAINERD_DISABLE_PIGZ; do
    [ -n "${!v:-}" ] && orig_cmd="$v=${!v} $orig_cmd"
done

write=0 keep=0 regen=0
runs=${RUNS:-5}
layers=${LAYERS:-5}
layer_size=${LAYER_SIZE:-40000000}
berth=${BERTH:-/work/main/target/release/berth}
tools=${TOOLS:-berth,cri,ctr,podman,umoci,floor}
warm_runs=${WARM_RUNS:-30}
cache_root=${IMAGE_CACHE:-/var/tmp/berth-bench-image}
while [ $# -gt 0 ]; do
    case $1 in
        --write) write=1 ;;
        --keep) keep=1 ;;
        --regen) regen=1 ;;
        --runs) runs=$2; shift ;;
        --layers) layers=$2; shift ;;
        --layer-size) layer_size=$2; shift ;;
        --berth) berth=$2; shift ;;
        --tools) tools=$2; shift ;;
        --warm-runs) warm_runs=$2; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "pull-bench: $*" >&2; }
die() { log "error: $*"; exit 1; }
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

[ "$(id -u)" = 0 ] || die "must run as root (overlay mounts, containerd, rootful podman)"
for t in docker-registry skopeo hyperfine jq gzip tar curl; do
    command -v "$t" >/dev/null || die "$t not found"
done
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) not found"
want() { [[ ",$tools," == *",$1,"* ]]; }
notes=()

# --- which tools run -------------------------------------------------------------------
# Pull rows, in this order; each is dropped (with the reason) if its binary is missing.
rows=()
skip() { log "skipping $1: $2"; notes+=("$1 not measured: $2"); }
if want berth; then
    if [ -x "$berth" ]; then berth=$(readlink -f "$berth"); rows+=(berth)
    else skip berth "no berth binary at $berth (--berth PATH / BERTH=PATH)"; fi
fi
pybin=/usr/bin/python3
if want cri; then
    if ! command -v containerd >/dev/null; then skip "containerd (CRI)" "containerd not found"
    elif ! "$pybin" -c 'import grpc' 2>/dev/null; then
        skip "containerd (CRI)" "$pybin has no grpc module (apt-get install python3-grpcio)"
    else rows+=(cri); fi
fi
if want ctr; then
    if command -v containerd >/dev/null && command -v ctr >/dev/null; then rows+=(ctr)
    else skip "containerd (ctr)" "containerd or ctr not found"; fi
fi
if want podman; then
    if command -v podman >/dev/null; then rows+=(podman); else skip podman "podman not found"; fi
fi
if want umoci; then
    if command -v umoci >/dev/null; then rows+=(umoci); else skip "skopeo + umoci" "umoci not found"; fi
fi
[ ${#rows[@]} -gt 0 ] || want floor || die "nothing to measure (--tools $tools)"
declare -A label=([berth]="berth" [cri]="containerd (CRI PullImage)" [ctr]="containerd (ctr pull)"
    [podman]="podman" [umoci]="skopeo copy + umoci unpack")

# --- temp dir, cleanup -------------------------------------------------------------------
work=$(mktemp -d /tmp/berth-pull-bench.XXXXXX)
reg_pid='' ctd_pid=''
# Everything the tools spill goes under $work too (podman and skopeo stage blobs in
# $TMPDIR, by default /var/tmp, and leave them there when interrupted).
mkdir -p "$work/tmp"
export TMPDIR=$work/tmp
umount_under() { # unmount everything mounted at or below $1, deepest first
    local m
    for m in $(awk -v p="$1" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}
stop_pid() { # pid: TERM, wait up to 10 s, then KILL
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    trap - EXIT INT TERM
    [ -n "$ctd_pid" ] && stop_pid "$ctd_pid"
    [ -n "$reg_pid" ] && stop_pid "$reg_pid"
    umount_under "$work"
    # The stores are always removed (hundreds of MB each); --keep keeps logs and samples.
    rm -rf "$work"/store-* "$work/registry" "$work/ctd/root" "$work/ctd/state" "$work/floor-x"
    if [ "$keep" = 1 ]; then log "kept $work (logs, samples)"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# --- test image --------------------------------------------------------------------------
# The generator is deterministic, so its layout is cached across runs, keyed by its source
# and arguments; the registry (new each run) gets it with skopeo, as `mkimage --push` does.
key=$(cat "$repo/crates/testutil/src/image.rs" "$repo/crates/testutil/src/bin/mkimage.rs" \
    "$repo/crates/testutil/Cargo.toml" | sha256sum | cut -c1-12)
layout=$cache_root/L$layers-S$layer_size-$key
free_port() { "$pybin" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
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
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: berth-pull-bench
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for i in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || die "registry did not start: $(tail -5 "$work/registry.log")"
log "registry on 127.0.0.1:$port (storage $work/registry)"
name=127.0.0.1:$port/bench
ref=$name:latest

if [ "$regen" = 1 ] || [ ! -s "$layout/image-id" ]; then
    command -v cargo >/dev/null || die "cargo not found (needed once, to build mkimage)"
    log "building mkimage (cargo build -p berth-testutil --bin mkimage)"
    (cd "$repo" && cargo build -q -p berth-testutil --bin mkimage) || die "building mkimage failed"
    tdir=$(cd "$repo" && cargo metadata -q --format-version 1 --no-deps | jq -r .target_directory)
    mkimage=$tdir/debug/mkimage
    log "generating the image: busybox + $layers × $layer_size B layers into $layout (debug build, ~2 min for 5 × 40 MB)"
    rm -rf "$layout"; mkdir -p "$layout"
    # Generate and push in one go (the generator's own path); the layout is then reused.
    "$mkimage" --out "$layout" --layers "$layers" --layer-size "$layer_size" --push "$name" \
        >"$layout/image-id.tmp" || { rm -rf "$layout"; die "mkimage failed"; }
    mv "$layout/image-id.tmp" "$layout/image-id"
else
    log "image layout from cache: $layout (--regen to rebuild)"
    skopeo copy --quiet --insecure-policy --dest-tls-verify=false \
        "oci:$layout:latest" "docker://$ref" || die "skopeo push to the registry failed"
fi
image_id=$(tail -1 "$layout/image-id")
# The layer blobs, in manifest order, from the layout (for the floor and the report).
manifest_digest=$(jq -r '.manifests[0].digest' "$layout/index.json")
mapfile -t layer_blobs < <(jq -r '.layers[].digest | sub("sha256:"; "")' "$layout/blobs/sha256/${manifest_digest#sha256:}" \
    | sed "s|^|$layout/blobs/sha256/|")
comp_bytes=0 raw_bytes=0
for b in "${layer_blobs[@]}"; do
    comp_bytes=$(( comp_bytes + $(stat -c %s "$b") ))
    raw_bytes=$(( raw_bytes + $(gzip -dc <"$b" | wc -c) ))
done
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1048576}'; }
log "image $ref: id $image_id, ${#layer_blobs[@]} layers, $(mib $comp_bytes) MiB gzip, $(mib $raw_bytes) MiB of tar"

# --- per-tool runs ------------------------------------------------------------------------
# run_timed LOGFILE CMD...: runs CMD under GNU time, stdout to LOGFILE, stderr to
# LOGFILE.err; sets
# T_S (wall seconds, from date +%s%N around it), T_RSS (KiB, wait4 ru_maxrss) and T_CPU
# (user + system seconds of the command and its reaped children).
run_timed() {
    local out=$1 s e; shift
    s=$(date +%s%N)
    if ! /usr/bin/time -f '%M %U %S' -o "$work/time.out" "$@" >"$out" 2>"$out.err"; then
        log "command failed: $*"; tail -n 20 "$out" "$out.err" >&2; return 1
    fi
    e=$(date +%s%N)
    T_S=$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.4f", (b-a)/1e9}')
    read -r T_RSS T_CPU < <(tail -1 "$work/time.out" | awk '{print $1, $2 + $3}')
}
# Samples go to $work/samples/ROW.{wall,rss,disk,...}, one value a line.
mkdir -p "$work/samples"
add() { echo "$3" >>"$work/samples/$1.$2"; }
check_id() { # row got-id (with or without "sha256:")
    [ "${2#sha256:}" = "${image_id#sha256:}" ] || die "${label[$1]} pulled image id '$2', expected $image_id"
}
disk_mib() { du -sm "$1" | cut -f1; }

# containerd: a private daemon (own root, state, sockets), new and with an empty root for
# every pull, so that VmHWM is the peak of that one pull (plus startup).
ctd=$work/ctd
mkdir -p "$ctd/certs.d/127.0.0.1:$port"
cat >"$ctd/certs.d/127.0.0.1:$port/hosts.toml" <<EOF
server = "http://127.0.0.1:$port"
[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve"]
EOF
cat >"$ctd/config.toml" <<EOF
version = 2
root = "$ctd/root"
state = "$ctd/state"
[grpc]
  address = "$ctd/containerd.sock"
[ttrpc]
  address = "$ctd/containerd.sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$ctd/cni-bin"
    conf_dir = "$ctd/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$ctd/certs.d"
EOF
# A CRI client: PullImage over containerd's socket, protobuf encoded by hand (no crictl).
cat >"$work/cri.py" <<'EOF'
import sys, grpc
def ld(field, b):  # a length-delimited protobuf field
    out, n = bytearray([field << 3 | 2]), len(b)
    while n >= 0x80:
        out.append(n & 0x7f | 0x80); n >>= 7
    out.append(n)
    return bytes(out) + b
sock, ref = sys.argv[1:3]
ch = grpc.insecure_channel("unix://" + sock)
pull = ch.unary_unary("/runtime.v1.ImageService/PullImage")
# PullImageRequest{image: ImageSpec{image: ref}} -> PullImageResponse{image_ref}
resp = pull(ld(1, ld(1, ref.encode())), timeout=900)
print(resp[2:].decode())
EOF
ctr_=(ctr --address "$ctd/containerd.sock")
ctd_start() {
    rm -rf "$ctd/root" "$ctd/state"
    containerd --config "$ctd/config.toml" >>"$ctd/log" 2>&1 &
    ctd_pid=$!
    local i
    for i in $(seq 100); do
        "${ctr_[@]}" version >/dev/null 2>&1 && break
        kill -0 "$ctd_pid" 2>/dev/null || die "containerd exited: $(tail -5 "$ctd/log")"
        sleep 0.1
    done
    "${ctr_[@]}" version >/dev/null 2>&1 || die "containerd did not start: $(tail -5 "$ctd/log")"
    CTD_HWM0=$(awk '/^VmHWM/ {print $2}' "/proc/$ctd_pid/status")
    CTD_CPU0=$(ctd_cpu)
}
ctd_stop() {
    stop_pid "$ctd_pid"; ctd_pid=''
    umount_under "$ctd"
    rm -rf "$ctd/root" "$ctd/state"
}
ctd_hwm() { awk '/^VmHWM/ {print $2}' "/proc/$ctd_pid/status"; }
# The daemon's user + system CPU seconds so far, with its reaped children's (unpigz):
# utime, stime, cutime, cstime, fields 14-17 of stat (counted after the "(comm)").
ctd_cpu() {
    sed 's/.*) //' "/proc/$ctd_pid/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13 + $14 + $15) / hz}'
}
ctd_cpu_used() { awk -v a="$CTD_CPU0" -v b="$(ctd_cpu)" 'BEGIN {printf "%.2f", b - a}'; }

# One cold pull of ROW into an empty store; records wall, RSS, disk.
cold() { # row round
    local row=$1 r=$2 st=$work/store-$1 lg=$work/logs/$1-$2.log
    rm -rf "$st"; mkdir -p "$st" "$work/logs"
    sync
    case $row in
    berth)
        run_timed "$lg" "$berth" --root "$st/root" --runroot "$st/run" pull --quiet "$ref" || die "berth pull failed"
        check_id berth "$(tail -1 "$lg")"
        add berth wall "$T_S"; add berth rss "$T_RSS"; add berth cpu "$T_CPU"; add berth disk "$(disk_mib "$st/root")" ;;
    cri)
        ctd_start
        run_timed "$lg" "$pybin" "$work/cri.py" "$ctd/containerd.sock" "$ref" || { ctd_stop; die "CRI pull failed"; }
        check_id cri "$(tail -1 "$lg")"
        add cri wall "$T_S"; add cri rss "$(ctd_hwm)"; add cri rss0 "$CTD_HWM0"; add cri cpu "$(ctd_cpu_used)"
        add cri disk "$(disk_mib "$ctd/root")"
        ctd_stop ;;
    ctr)
        ctd_start
        run_timed "$lg" "${ctr_[@]}" -n k8s.io images pull --plain-http --snapshotter overlayfs "$ref" \
            || { ctd_stop; die "ctr pull failed"; }
        add ctr wall "$T_S"; add ctr rss "$(ctd_hwm)"; add ctr rss0 "$CTD_HWM0"; add ctr crss "$T_RSS"
        add ctr cpu "$(awk -v a="$(ctd_cpu_used)" -v b="$T_CPU" 'BEGIN {printf "%.2f", a + b}')"
        add ctr disk "$(disk_mib "$ctd/root")"
        ctd_stop ;;
    podman)
        run_timed "$lg" podman --root "$st/root" --runroot "$st/run" --tmpdir "$st/tmp" --storage-driver overlay \
            pull --tls-verify=false "$ref" || die "podman pull failed"
        check_id podman "$(tail -1 "$lg")"
        add podman wall "$T_S"; add podman rss "$T_RSS"; add podman cpu "$T_CPU"; add podman disk "$(disk_mib "$st/root")"
        umount_under "$st" ;;
    umoci)
        local s1 r1 c1
        run_timed "$lg" skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$st/oci:latest" \
            || die "skopeo copy failed"
        s1=$T_S r1=$T_RSS c1=$T_CPU
        run_timed "$lg.unpack" umoci unpack --image "$st/oci:latest" "$st/bundle" || die "umoci unpack failed"
        [ -x "$st/bundle/rootfs/bin/busybox" ] || die "umoci unpack: no rootfs/bin/busybox"
        add umoci wall "$(awk -v a="$s1" -v b="$T_S" 'BEGIN {printf "%.4f", a+b}')"
        add umoci rss "$(( r1 > T_RSS ? r1 : T_RSS ))"
        add umoci cpu "$(awk -v a="$c1" -v b="$T_CPU" 'BEGIN {printf "%.2f", a + b}')"
        add umoci wall_skopeo "$s1"; add umoci wall_umoci "$T_S"
        add umoci disk "$(disk_mib "$st")" ;;
    esac
    umount_under "$st"
    rm -rf "$st"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
nrows=${#rows[@]}
for r in $(seq 0 $((runs - 1))); do
    for k in $(seq 0 $((nrows - 1))); do
        row=${rows[$(( (k + r) % nrows ))]}
        log "round $((r + 1))/$runs: cold pull, ${label[$row]}"
        cold "$row" "$r"
    done
done

# berth warm pull: everything present; the same store pulled again, hyperfine -N.
if [[ " ${rows[*]} " == *" berth "* ]]; then
    st=$work/store-berth-warm
    rm -rf "$st"; mkdir -p "$st"
    "$berth" --root "$st/root" --runroot "$st/run" pull --quiet "$ref" >/dev/null 2>&1 || die "berth pull (warm-up) failed"
    log "berth warm pull ($warm_runs runs)"
    hyperfine -N --style basic --warmup 3 --runs "$warm_runs" --export-json "$work/warm.json" \
        -n "berth warm pull" "$berth --root $st/root --runroot $st/run pull --quiet $ref" >&2 \
        || die "hyperfine (berth warm pull) failed"
    /usr/bin/time -f %M -o "$work/time.out" "$berth" --root "$st/root" --runroot "$st/run" pull --quiet "$ref" >/dev/null 2>&1
    warm_rss=$(tail -1 "$work/time.out")
    umount_under "$st"; rm -rf "$st"
fi

# --- decompression floor ------------------------------------------------------------------
# The same layer blobs from the OCI layout (page cache warm, like the registry's), to
# /dev/null and extracted with GNU tar, one directory per layer (as the snapshotters do).
floor_rows=()
declare -A floor_label floor_cmd
addfloor() { floor_rows+=("$1"); floor_label[$1]=$2; floor_cmd[$1]=$3; }
if want floor; then
    fx=$work/floor-x
    printf '%s\n' "${layer_blobs[@]}" >"$work/blobs.txt"
    # shellcheck disable=SC2016
    seq_dc='while read -r b; do %s <"$b" >/dev/null; done <'"$work/blobs.txt"
    par_dc='xargs -P 2 -I{} sh -c '"'"'%s <"$1" >/dev/null'"'"' _ {} <'"$work/blobs.txt"
    addfloor gz1 "gzip -dc > /dev/null, sequential" "$(printf "$seq_dc" "gzip -dc")"
    addfloor gz2 "gzip -dc > /dev/null, 2 in parallel" "$(printf "$par_dc" "gzip -dc")"
    if command -v pigz >/dev/null; then
        addfloor pigz1 "pigz -dc (zlib inflate) > /dev/null, sequential" "$(printf "$seq_dc" "pigz -dc")"
    fi
    if command -v libdeflate-gzip >/dev/null; then
        addfloor ld1 "libdeflate-gzip -dc > /dev/null, sequential" "$(printf "$seq_dc" "libdeflate-gzip -dc")"
        addfloor ld2 "libdeflate-gzip -dc > /dev/null, 2 in parallel" "$(printf "$par_dc" "libdeflate-gzip -dc")"
    fi
    addfloor tar1 "tar -xzf (GNU tar + gzip), layer by layer, sequential" \
        'n=0; while read -r b; do n=$((n+1)); mkdir '"$fx"'/$n; tar -xzf "$b" -C '"$fx"'/$n; done <'"$work/blobs.txt"
    if command -v libdeflate-gzip >/dev/null; then
        addfloor tarld2 "tar -x via libdeflate-gzip, 2 layers in parallel" \
            'xargs -P 2 -I{} sh -c '"'"'d='"$fx"'/$(basename "$1"); mkdir "$d"; tar -I libdeflate-gzip -xf "$1" -C "$d"'"'"' _ {} <'"$work/blobs.txt"
    fi
    for r in $(seq 0 $((runs - 1))); do
        for f in "${floor_rows[@]}"; do
            rm -rf "$fx"; mkdir -p "$fx"; sync
            s=$(date +%s%N)
            bash -c "${floor_cmd[$f]}" || die "floor command failed: ${floor_cmd[$f]}"
            e=$(date +%s%N)
            add "floor-$f" wall "$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.4f", (b-a)/1e9}')"
        done
        log "floor round $((r + 1))/$runs done"
    done
    rm -rf "$fx"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -------------------------------------------------------------------------------
stat_of() { # file stat(median|min|max)
    sort -g "$1" | awk -v s="$2" '{a[NR] = $1} END {
        if (s == "min") print a[1]; else if (s == "max") print a[NR];
        else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
smp() { stat_of "$work/samples/$1.$2" "${3:-median}"; }
sec() { awk -v s="$1" 'BEGIN {printf "%.2f", s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
kib_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
has() { [[ " ${rows[*]} " == *" $1 "* ]]; }
base_ctd=''
if has cri; then base_ctd=cri; elif has ctr; then base_ctd=ctr; fi
declare -A med
for row in "${rows[@]}"; do med[$row]=$(smp "$row" wall); done

report() {
    local row fr
    if [ ${#rows[@]} -gt 0 ]; then
        echo "| tool | median s | min s | max s | / ${label[${base_ctd:-cri}]} | / podman | CPU s (user+sys, median) | peak RSS MiB (median) | disk after MiB |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for row in "${rows[@]}"; do
            local rc=— rp=— rss
            [ -n "$base_ctd" ] && rc=$(ratio "${med[$row]}" "${med[$base_ctd]}")
            has podman && rp=$(ratio "${med[$row]}" "${med[podman]}")
            case $row in
                cri) rss="$(kib_mib "$(smp cri rss)") (daemon)" ;;
                ctr) rss="$(kib_mib "$(smp ctr rss)") (daemon) + $(kib_mib "$(smp ctr crss)") (ctr)" ;;
                umoci) rss="$(kib_mib "$(smp umoci rss)") (larger of the two)" ;;
                *) rss=$(kib_mib "$(smp "$row" rss)") ;;
            esac
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${label[$row]}" \
                "$(sec "${med[$row]}")" "$(sec "$(smp "$row" wall min)")" "$(sec "$(smp "$row" wall max)")" \
                "$rc" "$rp" "$(sec "$(smp "$row" cpu)")" "$rss" "$(smp "$row" disk)"
        done
        echo
    fi
    if [ ${#floor_rows[@]} -gt 0 ]; then
        echo "Decompression floor (the same $(( ${#layer_blobs[@]} )) layer blobs, $(mib $comp_bytes) MiB gzip → $(mib $raw_bytes) MiB tar, from the page cache):"
        echo
        if has berth; then
            echo "| floor | median s | min s | max s | berth median / floor |"
            echo "|---|---:|---:|---:|---:|"
        else
            echo "| floor | median s | min s | max s |"
            echo "|---|---:|---:|---:|"
        fi
        for fr in "${floor_rows[@]}"; do
            local m; m=$(smp "floor-$fr" wall)
            printf '| %s | %s | %s | %s |' "${floor_label[$fr]}" "$(sec "$m")" \
                "$(sec "$(smp "floor-$fr" wall min)")" "$(sec "$(smp "floor-$fr" wall max)")"
            has berth && printf ' %s |' "$(ratio "${med[berth]}" "$m")"
            echo
        done
        echo
    fi
    if has berth; then
        local wm rc rp rss
        wm=$(jq -r '.results[0].median' "$work/warm.json")
        echo "berth warm pull (all layers present): median **$(awk -v s="$wm" 'BEGIN {printf "%.1f", s*1000}') ms**" \
            "(min $(jq -r '.results[0].min * 1000 | . * 10 | round / 10' "$work/warm.json") ms," \
            "max $(jq -r '.results[0].max * 1000 | . * 10 | round / 10' "$work/warm.json") ms, $warm_runs runs), peak RSS $(kib_mib "$warm_rss") MiB" \
            "(target < 50 ms: $(awk -v s="$wm" 'BEGIN {print (s < 0.050) ? "met" : "not met"}'))."
        echo
        rss=$(smp berth rss)
        if [ ${#floor_rows[@]} -gt 0 ]; then
            local best_all='' best_tar='' m b
            for fr in "${floor_rows[@]}"; do
                m=$(smp "floor-$fr" wall)
                if [ -z "$best_all" ] || awk -v a="$m" -v b="$(smp "floor-$best_all" wall)" 'BEGIN {exit !(a < b)}'; then best_all=$fr; fi
                case $fr in tar*)
                    if [ -z "$best_tar" ] || awk -v a="$m" -v b="$(smp "floor-$best_tar" wall)" 'BEGIN {exit !(a < b)}'; then best_tar=$fr; fi ;;
                esac
            done
            b=$(smp "floor-$best_all" wall)
            printf 'Floor: berth'"'"'s cold pull takes **%s ×** the fastest decompression alone (%s, %s s)' \
                "$(ratio "${med[berth]}" "$b")" "${floor_label[$best_all]}" "$(sec "$b")"
            if [ -n "$best_tar" ]; then
                b=$(smp "floor-$best_tar" wall)
                printf ' and **%s ×** the fastest decompression + extraction (%s, %s s)' \
                    "$(ratio "${med[berth]}" "$b")" "${floor_label[$best_tar]}" "$(sec "$b")"
            fi
            echo "."
        fi
        echo "berth peak RSS during the cold pull: **$(kib_mib "$rss") MiB** (target < 64 MiB: $(awk -v k="$rss" 'BEGIN {print (k < 65536) ? "met" : "not met"}'))."
        if [ -n "$base_ctd" ]; then
            rc=$(ratio "${med[berth]}" "${med[$base_ctd]}")
            echo "berth median = **$rc × ${label[$base_ctd]}** (target ≤ 0.50: $(awk -v r="$rc" 'BEGIN {print (r <= 0.50) ? "met" : "not met"}'))."
        fi
        if has podman; then
            rp=$(ratio "${med[berth]}" "${med[podman]}")
            echo "berth median = **$rp × podman** (target ≤ 0.30: $(awk -v r="$rp" 'BEGIN {print (r <= 0.30) ? "met" : "not met"}'))."
        fi
        echo
    fi
    echo "- Image: \`$ref\`, busybox-static + $layers generated layers of $layer_size B (\`mkimage --layers $layers --layer-size $layer_size\`), ${#layer_blobs[@]} gzip layers, $(mib $comp_bytes) MiB compressed, $(mib $raw_bytes) MiB uncompressed; id $image_id."
    echo "- Registry: Debian's docker-registry (distribution $(docker-registry --version 2>/dev/null | awk '{print $3}')) on 127.0.0.1, plain HTTP, filesystem storage in a temp dir on $(findmnt -no FSTYPE -T "$work") (the stores too); its blobs are in the page cache (no cache dropping: the client side is measured)."
    echo "- Cold pull: $runs runs per tool, one per interleaved round (tool order rotated), each into an empty store; \`sync\` before each run. Wall = date before/after the command(s); CPU = user + system time of the client process(es) (GNU time), for containerd the daemon's (from /proc/PID/stat, before and after), for ctr daemon + client."
    echo "- Commands:"
    has berth && echo "  - berth: \`berth --root EMPTY --runroot EMPTY2 pull --quiet $ref\`; peak RSS = GNU time %M (wait4 ru_maxrss)."
    if has cri || has ctr; then
        echo "  - containerd: a private daemon (own root, state and socket; overlayfs snapshotter; registry host 127.0.0.1:$port as plain HTTP via hosts.toml) started with an empty root before every pull and stopped after; peak RSS = the daemon's VmHWM after the pull (median of the per-run baseline right after start: cri $(has cri && kib_mib "$(smp cri rss0)" || echo —) MiB, ctr $(has ctr && kib_mib "$(smp ctr rss0)" || echo —) MiB)."
        has cri && echo "  - containerd (CRI PullImage): \`runtime.v1.ImageService/PullImage\` on the daemon's socket (what the kubelet sends; a 20-line Python gRPC client, as crictl is not installed); download and unpack happen in the daemon (\`client.Pull\` with unpack, overlayfs)."
        if [ "${CONTAINERD_DISABLE_PIGZ:-}" = 1 ]; then
            echo "  - containerd decompresses with Go's compress/gzip (CONTAINERD_DISABLE_PIGZ=1 was set)."
        elif command -v unpigz >/dev/null; then
            echo "  - containerd decompresses layers with \`unpigz\` (on PATH here; $(pigz --version 2>&1)), a child process: its CPU is in the daemon's (reaped children), its RSS is not. CONTAINERD_DISABLE_PIGZ=1 makes it use Go's compress/gzip."
        else
            echo "  - containerd decompresses with Go's compress/gzip (no \`unpigz\` on PATH; with pigz installed it would use that)."
        fi
        has ctr && echo "  - containerd (ctr pull): \`ctr -n k8s.io images pull --plain-http --snapshotter overlayfs REF\`. In containerd 1.6 this is not the CRI code path: ctr downloads the blobs itself and streams them into the daemon's content store, then asks the daemon to unpack (fetch, then unpack); RSS is daemon + ctr client."
    fi
    has podman && echo "  - podman: \`podman --root EMPTY --runroot EMPTY2 --tmpdir EMPTY3 --storage-driver overlay pull --tls-verify=false $ref\`; peak RSS = GNU time %M."
    has umoci && echo "  - skopeo + umoci: \`skopeo copy --src-tls-verify=false docker://$ref oci:DIR:latest\` then \`umoci unpack --image DIR:latest BUNDLE\`; wall = sum (medians: skopeo $(sec "$(smp umoci wall_skopeo)") s, umoci $(sec "$(smp umoci wall_umoci)") s), RSS = the larger."
    has berth && echo "  - berth warm pull: the same command again on a store that has the image, hyperfine -N, --warmup 3, $warm_runs runs."
    [ ${#rows[@]} -gt 0 ] && echo "- Disk after: \`du -sm\` of the tool's store after the pull (containerd keeps the compressed blobs besides the snapshots; skopeo + umoci: OCI layout + bundle)."
    echo "- Host: kernel $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)); loadavg before $load_before, after $load_after."
    local vb=—
    if has berth; then
        vb="$("$berth" --version 2>/dev/null | head -1 | sed "s/^berth //" || echo "?") (binary $berth, sha256 $(sha256sum "$berth" | cut -c1-12)…, git $git_rev, $git_dirty)"
    fi
    echo "- Versions: berth $vb; $(containerd --version 2>/dev/null | awk '{print "containerd " $3}'); $(podman --version); $(skopeo --version); $(umoci --version); $(gzip --version | head -1); $(tar --version | head -1)$(command -v pigz >/dev/null && echo "; $(pigz --version 2>&1)")$(command -v libdeflate-gzip >/dev/null && echo "; libdeflate $(dpkg-query -W -f '${Version}' libdeflate0 2>/dev/null || echo '?')"); $(hyperfine --version)."
    if awk -v l="${load_before%% *}" 'BEGIN {exit !(l >= 1)}'; then
        echo "- Note: the host was busy before the run (1-minute load average ${load_before%% *} on $(nproc) CPUs): other work competed for the CPUs, so wall times are inflated and the parallel floor rows may not have had 2 free CPUs; compare the CPU column, or rerun on a quiet host."
    fi
    local n
    for n in "${notes[@]}"; do echo "- Note: $n."; done
}
src=${BERTH_SRC:-$repo}
git_rev=$(cd "$src" && git rev-parse --short HEAD 2>/dev/null || echo "?")
git_dirty=$(cd "$src" && { git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null && echo clean || echo "uncommitted changes in crates/ or Cargo.*"; })
[ "$src" = "$repo" ] || git_dirty="$git_dirty, source tree $src"
out=$(report)
echo "$out"

if [ "$write" = 1 ]; then
    md=$repo/BENCHMARKS.md
    begin='<!-- pull:begin (generated by bench/pull.sh --write; edits inside are overwritten) -->'
    end='<!-- pull:end -->'
    section=$(printf '%s\n\n### Latest run: %s\n\nCommand (from the repo root): `%s`\n\n%s\n\n%s\n' \
        "$begin" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$orig_cmd" "$out" "$end")
    if [ -f "$md" ] && grep -qF '<!-- pull:begin' "$md"; then
        SECTION=$section awk '
            /<!-- pull:begin/ { print ENVIRON["SECTION"]; skip = 1; next }
            /<!-- pull:end -->/ { skip = 0; next }
            !skip { print }' "$md" >"$md.new"
    else
        { if [ -f "$md" ]; then cat "$md"; echo; else printf '# Benchmarks\n\n'; fi
          printf '## Image pull\n\n'
          echo 'Cold pull + unpack of a busybox + 5 × 40 MB image from a local registry, berth vs containerd vs podman vs skopeo + umoci (`bench/pull.sh`, see `bench/README.md`). Targets: berth ≤ 0.5 × containerd, ≤ 0.3 × podman, peak RSS < 64 MiB, warm pull < 50 ms; the floor is decompression.'
          echo
          echo "$section"; } >"$md.new"
    fi
    mv "$md.new" "$md"
    log "updated $md"
fi
