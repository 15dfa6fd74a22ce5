#!/bin/bash
# podman (Debian's) driving an OCI runtime through its runc-compatible command line:
# run, exec (plain and -t), pause/unpause, stop, rm, with a private storage root and an
# image imported from a busybox-static rootfs (no network needed).
# Usage: tests/podman/run.sh /path/to/runtime
# This machine lacks CAP_SYS_RESOURCE, so podman's default rlimits cannot be applied:
# every container gets --ulimit nofile=1024:1024 --ulimit nproc=4096:4096.
set -uo pipefail

RUNTIME_ARG="${1:?usage: $0 /path/to/oci-runtime}"
if ! command -v podman >/dev/null 2>&1; then
  echo "SKIP: podman not installed"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: must run as root"
  exit 0
fi
RUNTIME="$(readlink -f "$RUNTIME_ARG")"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
[[ -x "$BUSYBOX" ]] || { echo "SKIP: static busybox missing"; exit 0; }

T="$(mktemp -d /tmp/berth-podman.XXXXXX)"
P=(podman --root "$T/storage" --runroot "$T/run" --cgroup-manager cgroupfs
   --events-backend file --runtime "$RUNTIME")
U=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
PASS=0
FAIL=0
pass() { echo "PASS: $*"; PASS=$((PASS + 1)); }
fail() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
pm() { timeout 60 "${P[@]}" "$@"; }

cleanup() {
  pm rm -f -a >/dev/null 2>&1
  pm rmi -a -f >/dev/null 2>&1
  # podman leaves its storage's overlay mounts: unmount below the temp dir first
  awk -v t="$T" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo \
    | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf --one-file-system "$T"
}
trap cleanup EXIT

# ---- image: a busybox rootfs with applet links, imported as localhost/bb
mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/tmp"
cp "$BUSYBOX" "$T/rootfs/bin/busybox"
for a in sh echo cat sleep true id hostname ls; do ln -s busybox "$T/rootfs/bin/$a"; done
if tar -C "$T/rootfs" -cf "$T/rootfs.tar" . && pm import "$T/rootfs.tar" localhost/bb:latest >/dev/null 2>&1; then
  pass "image import"
else
  fail "image import"; echo "$PASS passed, $FAIL failed"; exit 1
fi

# ---- 1. foreground run: output and exit code
out="$(pm run --rm "${U[@]}" localhost/bb sh -c 'echo hello-$$; exit 3' 2>"$T/err")"
rc=$?
[[ "$out" == hello-1 ]] && pass "run output (pid 1)" || fail "run output '$out': $(head -c 400 "$T/err")"
[[ $rc -eq 3 ]] && pass "run exit code 3" || fail "run exit code $rc (want 3)"

# ---- 2. detached run, exec, pause/unpause, stop, rm
if pm run -d --name p1 "${U[@]}" localhost/bb sleep 1000 >"$T/id" 2>"$T/err"; then
  pass "run -d"
else
  fail "run -d: $(head -c 400 "$T/err")"
fi
st="$(pm inspect -f '{{.State.Status}}' p1 2>&1)"
[[ "$st" == running ]] && pass "p1 running" || fail "p1 status '$st'"
out="$(pm exec p1 sh -c 'echo exec-$(cat /proc/1/cmdline | tr "\0" " "); exit 4' 2>"$T/err")"
rc=$?
[[ "$out" == "exec-sleep 1000" ]] && pass "exec sees the container's pid 1" || fail "exec output '$out': $(head -c 400 "$T/err")"
[[ $rc -eq 4 ]] && pass "exec exit code 4" || fail "exec exit code $rc (want 4)"
out="$(pm exec -t p1 sh -c 'test -t 1 && echo tty' 2>"$T/err" | tr -d '\r')"
[[ "$out" == tty ]] && pass "exec -t gets a terminal" || fail "exec -t output '$out': $(head -c 400 "$T/err")"
pm pause p1 >/dev/null 2>"$T/err"
st="$(pm inspect -f '{{.State.Status}}' p1 2>&1)"
[[ "$st" == paused ]] && pass "pause" || fail "pause: status '$st' $(head -c 400 "$T/err")"
pm unpause p1 >/dev/null 2>"$T/err"
st="$(pm inspect -f '{{.State.Status}}' p1 2>&1)"
[[ "$st" == running ]] && pass "unpause" || fail "unpause: status '$st' $(head -c 400 "$T/err")"
# sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL after -t.
if pm stop -t 1 p1 >/dev/null 2>"$T/err"; then pass "stop"; else fail "stop: $(head -c 400 "$T/err")"; fi
st="$(pm inspect -f '{{.State.Status}}' p1 2>&1)"
[[ "$st" == exited ]] && pass "p1 exited" || fail "p1 status after stop '$st'"
if pm rm p1 >/dev/null 2>"$T/err"; then pass "rm"; else fail "rm: $(head -c 400 "$T/err")"; fi
left="$(pm ps -a -q)"
[[ -z "$left" ]] && pass "no containers left" || fail "containers left: $left"
cg_left="$(find /sys/fs/cgroup -path "*$(cat "$T/id" 2>/dev/null || echo none)*" -maxdepth 6 -type d 2>/dev/null | head -3)"
[[ -z "$cg_left" ]] && pass "no cgroups left" || fail "cgroups left: $cg_left"

echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
