#!/usr/bin/env bash
# Regenerates bench/hot-text.ld, the text layout scripts/build-release.sh links berth-oci with.
#
# berth-oci's peak RSS is mostly its own text: each page fault on the binary maps the
# surrounding 64 KiB window (the kernel's fault-around), so code executed here and there
# across the ~3 MB text makes almost all of it resident. This script records which functions
# a container's lifecycle executes and writes a linker script that puts them first, in
# `.text.hot`; the rest stays in `.text` and is never read.
#
# Steps: build with scripts/build-release.sh (its linker map names every function section
# and its address); run berth-oci under bench/steptrace.c (ptrace single-stepping: every
# executed instruction address of berth-oci and of the processes it clones, until they
# exec) on bench/run.sh's busybox bundle; map the addresses to input sections; write one
# pattern per section in first-executed order, with the symbol hashes globbed out (v0 crate
# disambiguators, back-references, .llvm. suffixes) so the patterns keep matching after code
# changes and rebuilds. glibc's string functions come in per-CPU variants chosen at start
# (ifunc): all variants of the ones executed follow, grouped by kind (evex, avx2, sse2 ...),
# so a host that picks other variants than the tracing host still finds them together.
#
# Traced, in this order: `run` of the bench bundle (berth-oci, then the container's init up
# to its exec), then create / state / start / list / kill / delete of a `sleep` container.
# (valgrind cannot do this: 3.19 lacks openat2 and the mount API, so the init fails there.)
#
# Usage (root): bench/hot-text.sh [--check]
#   --check   write nothing; report how much of the traced code the current layout covers
# Env: CARGO_TARGET_DIR as for scripts/build-release.sh; KEEP=1 keeps the temp dir.
# Needs: cc, python3, /bin/busybox (static), runc (for `runc spec`; else `berth-oci spec`);
# x86_64. After it: rebuild with scripts/build-release.sh, check RSS with bench/run.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
check=0
[ "${1:-}" = --check ] && check=1
log() { echo "hot-text: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it runs containers)"
for t in cc python3 /bin/busybox; do command -v "$t" >/dev/null || die "$t not found"; done

bin=$("$repo/scripts/build-release.sh")
map=$(dirname "$bin")/berth-oci.map
[ -s "$map" ] || die "no linker map at $map"

work=$(mktemp -d /tmp/berth-hot-text.XXXXXX)
cleanup() {
    local id
    for id in $(ls "$work/root" 2>/dev/null); do "$bin" --root "$work/root" delete -f "$id" >/dev/null 2>&1 || true; done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM
mkdir -p "$work/root" "$work/traces"

# Bundles: "bench" is bench/run.sh's (runc spec, terminal off, /bin/true); "sleep" is the
# same running `sleep 30`, for the create/start/kill/delete lifecycle.
b=$work/bench
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/busybox"
for l in true sh sleep; do ln -s busybox "$b/rootfs/bin/$l"; done
if command -v runc >/dev/null; then (cd "$b" && runc spec); else (cd "$b" && "$bin" spec); fi
mkdir -p "$work/sleep"
ln -s "$b/rootfs" "$work/sleep/rootfs"
python3 - "$b/config.json" "$work/sleep/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(sys.argv[1], "w"), indent=2)
c["process"]["args"] = ["sleep", "30"]
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY

cc -O2 -Wall -o "$work/steptrace" "$here/steptrace.c"

# traced NAME ARGS...: berth-oci under steptrace; traces in $work/traces/NAME.<n>, n = 0 for
# berth-oci itself, 1, 2 ... for the processes it cloned, in order of appearance.
traced() {
    local name=$1
    shift
    env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$work/steptrace" "$work/traces/$name" \
        "$bin" --root "$work/root" "$@" >"$work/$name.out" 2>&1 \
        || die "traced berth-oci $* failed: $(cat "$work/$name.out")"
}
log "tracing $bin (single-stepping: a minute or two)"
traced run run --bundle "$b" hot-run
traced create create --bundle "$work/sleep" hot-life
traced state state hot-life
traced start start hot-life
traced list list
traced kill kill hot-life KILL
for _ in $(seq 100); do
    "$bin" --root "$work/root" state hot-life 2>/dev/null | grep -q '"stopped"' && break
    sleep 0.1
done
traced delete delete hot-life

traces=()
for n in run create state start list kill delete; do
    for f in $(ls "$work/traces/$n".* | sort -t. -k2 -n); do
        [ -s "$f" ] && traces+=("$f")
    done
done
log "traces: ${#traces[@]}"

out=$here/hot-text.ld
[ "$check" = 1 ] && out=$work/hot-text.ld
python3 - "$map" "$out" "$check" "${traces[@]}" <<'PY'
import bisect, re, sys
mapf, outf, check, traces = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]

# lld map: "VMA LMA Size Align Out In Symbol"; output sections start in the Out column,
# input sections ("file:(section)") one level deeper, symbols deeper still.
secs, out = [], None
with open(mapf) as f:
    outcol = f.readline().index("Out")
    for line in f:
        p = line.rstrip("\n").split(None, 4)
        if len(p) != 5:
            continue
        rest = p[4]
        col = len(line.rstrip("\n")) - len(rest)
        if col == outcol:
            out = rest
        elif out in (".text", ".text.hot") and ":(" in rest:
            path, sec = rest.rsplit(":(", 1)
            secs.append((int(p[0], 16), int(p[2], 16), out, path, sec[:-1]))
secs.sort()
starts = [s[0] for s in secs]

order, seen = [], set()
for t in traces:
    with open(t) as f:
        for line in f:
            if not line.startswith("I "):
                continue
            a = int(line.split()[1], 16)
            i = bisect.bisect_right(starts, a) - 1
            if i >= 0 and i not in seen and a < secs[i][0] + secs[i][1]:
                seen.add(i)
                order.append(secs[i])

total = sum(s[1] for s in order)
in_hot = sum(s[1] for s in order if s[2] == ".text.hot")
print(f"hot-text: {len(order)} executed input sections, {total // 1024} KiB; "
      f"{in_hot // 1024} KiB of them in .text.hot now", file=sys.stderr)
for s in order:
    if check and s[2] != ".text.hot":
        print(f"hot-text:   not in .text.hot: {s[3].rsplit('/', 1)[-1]}:({s[4]})", file=sys.stderr)
if check:
    sys.exit(0)

def member(path):
    m = re.search(r"\.a\((.*)\)$", path)
    return m.group(1) if m else None

def pattern(path, sec):
    base = path.rsplit("/", 1)[-1]
    m = re.match(r"(.*\.a)\((.*)\)$", base)
    if m:  # member of a C archive (libc.a ...): one .text per object
        return f"*{m.group(1)}:{m.group(2)}({sec})"
    m = re.match(r".*\.rlib\((.*)\)$", base)
    if m and not m.group(1).endswith(".rcgu.o"):  # C object bundled in an rlib (libseccomp)
        return f"*:{m.group(1)}({sec})"
    if not base.endswith(".rcgu.o"):  # crt1.o, crtbeginT.o ...
        return f"*{base}({sec})"
    # A Rust function section: .text[.unlikely].<v0 symbol>. Glob out what changes from
    # build to build, and accept either hotness prefix (LLVM may move a function).
    name = re.sub(r"^\.text\.(unlikely\.|hot\.|startup\.)?", "", sec)
    name = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name)      # crate disambiguators
    name = re.sub(r"B[0-9A-Za-z]*_", "B*_", name)        # back-references (byte offsets)
    name = re.sub(r"\.llvm\.[0-9]+$", ".llvm.*", name)   # LTO-promoted local symbols
    return f"*(.text.{name} .text.unlikely.{name})"

pats, done = [], set()
def add(p):
    if p not in done:
        done.add(p)
        pats.append(p)

for s in order:
    if s[4] in (".init", ".fini"):  # crti/crtn pieces: must stay in their own sections
        continue
    add(pattern(s[3], s[4]))

# glibc multiarch variants (memmove-avx-unaligned-erms.o, strlen-evex.o ...): for each
# string function executed in some variant, all its variants, grouped by section name.
variant = re.compile(r"^([a-z0-9_]+?)-(sse|ssse|avx|evex|erms|rtm|vec)")
libc = [s for s in secs if "/libc.a(" in s[3]]
funcs = {m.group(1) for s in order if "/libc.a(" in s[3]
         for m in [variant.match(member(s[3]))] if m}
groups = {}
for s in libc:
    m = variant.match(member(s[3]))
    if m and m.group(1) in funcs:
        groups.setdefault(s[4], []).append(f"*libc.a:{member(s[3])}({s[4]})")
for sec in sorted(groups):
    for p in groups[sec]:
        add(p)

with open(outf, "w") as f:
    f.write("/* Generated by bench/hot-text.sh: the functions a container lifecycle executes,\n"
            "   in first-executed order, gathered at the start of the text segment (see the\n"
            "   script). Used by scripts/build-release.sh; regenerate after larger changes. */\n")
    f.write(f"/* {len(pats)} patterns; {total // 1024} KiB of executed sections when generated. */\n")
    f.write("SECTIONS\n{\n  .text.hot :\n  {\n")
    for p in pats:
        f.write(f"    {p}\n")
    f.write("  }\n}\nINSERT BEFORE .text;\n")
print(f"hot-text: wrote {outf} ({len(pats)} patterns)", file=sys.stderr)
PY
[ "$check" = 1 ] || log "now rebuild: scripts/build-release.sh (and check with bench/run.sh)"
