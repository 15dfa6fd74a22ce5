#!/bin/bash
# containerd integration test for an OCI runtime (berth-oci, or runc for comparison).
# Usage: tests/containerd/run.sh /path/to/runtime
# Env:   KEEP_LOGS=DIR  copy containerd.log and the runtime trace there (always)
#        TRACE=0        do not wrap the runtime in the argv-logging wrapper
#        TTY=1          also run a container with -t (exercises --console-socket)
set -euo pipefail

if ! command -v containerd >/dev/null 2>&1 || ! command -v ctr >/dev/null 2>&1 \
   || ! command -v containerd-shim-runc-v2 >/dev/null 2>&1; then
  echo "SKIP: containerd not installed"
  exit 0
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNTIME_ARG="${1:-}"
if [[ -z "$RUNTIME_ARG" ]]; then
  echo "usage: $0 /path/to/oci-runtime" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: must run as root"
  exit 0
fi
RUNTIME="$(readlink -f "$RUNTIME_ARG")"
if [[ ! -x "$RUNTIME" ]]; then
  echo "FAIL: runtime $RUNTIME_ARG not executable"
  echo "0 passed, 1 failed"
  exit 1
fi
PYTHON="$(command -v python3 || true)"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
[[ -x "$BUSYBOX" ]] || BUSYBOX="$(command -v busybox || true)"
if [[ -z "$PYTHON" || -z "$BUSYBOX" ]]; then
  echo "SKIP: python3 or static busybox missing"
  exit 0
fi

NS=berth
IMAGE=localhost/busybox:latest
T="$(mktemp -d /tmp/berth-ctrd.XXXXXX)"
SOCK="$T/containerd.sock"
CTRD_LOG="$T/containerd.log"
TRACE_LOG="$T/runtime-trace.log"
RUNC_ROOT="$T/runc-root"          # shim passes --root $RUNC_ROOT/$NS
CTRD_PID=""
PASS=0
FAIL=0

pass() { echo "PASS: $*"; PASS=$((PASS + 1)); }
fail() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
ctr_() { timeout "${CTR_TIMEOUT:-60}" ctr -a "$SOCK" -n "$NS" "$@"; }

cleanup() {
  set +e
  if [[ -n "$CTRD_PID" ]] && kill -0 "$CTRD_PID" 2>/dev/null; then
    for c in c1 c2 c3; do
      CTR_TIMEOUT=10 ctr_ task kill -s SIGKILL "$c" >/dev/null 2>&1
      CTR_TIMEOUT=10 ctr_ task delete -f "$c" >/dev/null 2>&1
      CTR_TIMEOUT=10 ctr_ container delete "$c" >/dev/null 2>&1
    done
    kill "$CTRD_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$CTRD_PID" 2>/dev/null
    wait "$CTRD_PID" 2>/dev/null
  fi
  # shims started by our containerd (identified by our private socket address)
  for p in $(pgrep -f -- "-address $SOCK" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  # unmount everything left below the temp dir, deepest first
  awk -v t="$T" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo \
    | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  for c in c1 c2 c3; do
    for d in /sys/fs/cgroup/*/"$NS"/"$c" /sys/fs/cgroup/"$NS"/"$c"; do
      [[ -d "$d" ]] && rmdir "$d" 2>/dev/null
    done
  done
  if [[ -n "${KEEP_LOGS:-}" ]]; then
    mkdir -p "$KEEP_LOGS"
    cp -f "$CTRD_LOG" "$TRACE_LOG" "$KEEP_LOGS"/ 2>/dev/null
    echo "logs kept in $KEEP_LOGS"
  fi
  rm -rf "$T"
}
trap cleanup EXIT

show_diag() {
  echo "---- runtime invocations (trace) ----"
  [[ -f "$TRACE_LOG" ]] && tail -n 40 "$TRACE_LOG" | sed 's/^/  | /'
  echo "---- containerd log (errors) ----"
  grep -iE 'level=(error|warning)|failed|OCI runtime' "$CTRD_LOG" 2>/dev/null | grep -v 'skip loading plugin' \
    | tail -n 20 | sed 's/^/  | /'
}

# ---- runtime wrapper: logs argv, exit code and the runtime's --log file on failure
RUNTIME_USED="$RUNTIME"
if [[ "${TRACE:-1}" != 0 ]]; then
  RUNTIME_USED="$T/runtime-wrapper"
  cat >"$RUNTIME_USED" <<WRAP
#!/bin/bash
REAL='$RUNTIME'
TRACE='$TRACE_LOG'
printf '%s exec: %s' "\$(date +%T.%N)" "\$REAL" >>"\$TRACE"
printf ' %q' "\$@" >>"\$TRACE"; echo >>"\$TRACE"
"\$REAL" "\$@"
rc=\$?
echo "    -> rc=\$rc" >>"\$TRACE"
if [[ \$rc -ne 0 ]]; then
  prev=
  for a in "\$@"; do
    if [[ \$prev == --log ]]; then tail -n 5 "\$a" 2>/dev/null | sed 's/^/    log.json: /' >>"\$TRACE"; fi
    prev=\$a
  done
fi
exit \$rc
WRAP
  chmod +x "$RUNTIME_USED"
fi

# ---- snapshotter: overlayfs if it can be mounted here, else native
SNAP=native
mkdir -p "$T/ovl"/{l,u,w,m}
if mount -t overlay overlay -o "lowerdir=$T/ovl/l,upperdir=$T/ovl/u,workdir=$T/ovl/w" "$T/ovl/m" 2>/dev/null; then
  umount "$T/ovl/m"
  SNAP=overlayfs
fi
rm -rf "$T/ovl"

cat >"$T/config.toml" <<CFG
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[debug]
  address = ""
  level = "debug"
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$T/opt"
CFG

echo "runtime: $RUNTIME  snapshotter: $SNAP  tmp: $T"
containerd --config "$T/config.toml" --log-level debug >"$CTRD_LOG" 2>&1 &
CTRD_PID=$!
up=0
for _ in $(seq 100); do
  if [[ -S "$SOCK" ]] && ctr -a "$SOCK" version >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$CTRD_PID" 2>/dev/null || break
  sleep 0.1
done
if [[ $up -eq 1 ]]; then
  pass "containerd started"
else
  fail "containerd did not start"
  tail -n 30 "$CTRD_LOG"
  echo "$PASS passed, $FAIL failed"
  exit 1
fi

# ---- image
if "$PYTHON" "$HERE/mkimage.py" "$T/busybox.tar" "$BUSYBOX" latest \
   && ctr_ image import --snapshotter "$SNAP" --base-name localhost/busybox "$T/busybox.tar" >/dev/null \
   && ctr_ image ls -q | grep -qx "$IMAGE"; then
  pass "image import ($IMAGE)"
else
  fail "image import"
  show_diag
  echo "$PASS passed, $FAIL failed"
  exit 1
fi

RUNOPTS=(--snapshotter "$SNAP" --runtime io.containerd.runc.v2 --runc-binary "$RUNTIME_USED" --runc-root "$RUNC_ROOT")

# ---- 1. foreground run, stdout + exit code
echo "== ctr run --rm c1"
set +e
out="$(ctr_ run --rm "${RUNOPTS[@]}" "$IMAGE" c1 sh -c 'echo hello-from-berth; exit 3' 2>"$T/c1.err")"
rc=$?
set -e
if grep -q hello-from-berth <<<"$out"; then pass "c1 stdout"; else fail "c1 stdout (got: '$out')"; fi
if [[ $rc -eq 3 ]]; then pass "c1 exit code 3"; else fail "c1 exit code $rc (want 3); stderr: $(head -c 600 "$T/c1.err")"; fi
if ! ctr_ container ls -q | grep -qx c1; then pass "c1 removed (--rm)"; else fail "c1 container still listed"; fi

# ---- 2. detached run, kill, delete
echo "== ctr run -d c2"
c2ok=1
if ctr_ run -d "${RUNOPTS[@]}" "$IMAGE" c2 sleep 1000 >"$T/c2.out" 2>&1; then
  pass "c2 run -d"
else
  fail "c2 run -d: $(head -c 600 "$T/c2.out")"; c2ok=0
fi
if [[ $c2ok -eq 1 ]]; then
  if ctr_ task ls 2>&1 | awk '$1=="c2"{print $3}' | grep -qx RUNNING; then
    pass "c2 RUNNING"
  else
    fail "c2 not RUNNING: $(ctr_ task ls 2>&1 | tr '\n' ' ')"
  fi
  c2pid="$(ctr_ task ls 2>/dev/null | awk '$1=="c2"{print $2}')"
  c2cg="$(ls -d /sys/fs/cgroup/memory/"$NS"/c2 /sys/fs/cgroup/"$NS"/c2 2>/dev/null | head -n1 || true)"
  if [[ -n "$c2pid" && -n "$c2cg" ]] && grep -qx "$c2pid" "$c2cg/cgroup.procs"; then
    pass "c2 pid $c2pid in cgroup $c2cg"
  else
    fail "c2 pid '$c2pid' not in cgroup /$NS/c2 (cgroup dir: '$c2cg')"
  fi
  # exec: output and exit status through the shim
  set +e
  out="$(ctr_ task exec --exec-id e1 c2 sh -c 'echo exec-ok-$((2+3)); exit 5' 2>"$T/exec.err")"
  rc=$?
  set -e
  if grep -q "exec-ok-5" <<<"$out"; then pass "c2 exec output"; else fail "c2 exec output (got: '$out'; stderr: $(head -c 600 "$T/exec.err"))"; fi
  if [[ $rc -eq 5 ]]; then pass "c2 exec exit code 5"; else fail "c2 exec exit code $rc (want 5)"; fi
  # pause / resume
  if ctr_ task pause c2 >"$T/pause.out" 2>&1 \
     && ctr_ task ls 2>&1 | awk '$1=="c2"{print $3}' | grep -qx PAUSED; then
    pass "c2 pause"
  else
    fail "c2 pause: $(cat "$T/pause.out") $(ctr_ task ls 2>&1 | tr '\n' ' ')"
  fi
  if ctr_ task resume c2 >"$T/resume.out" 2>&1 \
     && ctr_ task ls 2>&1 | awk '$1=="c2"{print $3}' | grep -qx RUNNING; then
    pass "c2 resume"
  else
    fail "c2 resume: $(cat "$T/resume.out")"
  fi
  # metrics (the shim reads the init's cgroup)
  if ctr_ task metrics c2 >"$T/metrics.out" 2>&1 && grep -qi "memory" "$T/metrics.out"; then
    pass "c2 metrics"
  else
    fail "c2 metrics: $(head -c 600 "$T/metrics.out")"
  fi
  if ctr_ task kill -s SIGKILL c2 >"$T/kill.out" 2>&1; then pass "c2 kill SIGKILL"; else fail "c2 kill: $(cat "$T/kill.out")"; fi
  st=""
  for _ in $(seq 100); do
    st="$(ctr_ task ls 2>/dev/null | awk '$1=="c2"{print $3}')"
    [[ "$st" == STOPPED ]] && break
    sleep 0.1
  done
  if [[ "$st" == STOPPED ]]; then pass "c2 STOPPED"; else fail "c2 not STOPPED after 10s (status '$st')"; fi
  if ctr_ task delete c2 >"$T/tdel.out" 2>&1; then pass "c2 task delete"; else fail "c2 task delete: $(cat "$T/tdel.out")"; fi
  if ctr_ container delete c2 >"$T/cdel.out" 2>&1; then pass "c2 container delete"; else fail "c2 container delete: $(cat "$T/cdel.out")"; fi
fi

# ---- optional: terminal (-t => shim passes --console-socket), TTY=1 to enable
if [[ "${TTY:-0}" == 1 ]] && command -v script >/dev/null 2>&1; then
  echo "== ctr run --rm -t c3"
  set +e
  out="$(script -qec "timeout 60 ctr -a '$SOCK' -n '$NS' run --rm -t ${RUNOPTS[*]} '$IMAGE' c3 sh -c 'echo tty=\$(tty); exit 4'" /dev/null 2>&1 </dev/null)"
  rc=$?
  set -e
  if grep -q 'tty=/dev/' <<<"$out"; then pass "c3 tty output"; else fail "c3 tty output (got: '$(head -c 600 <<<"$out")')"; fi
  if [[ $rc -eq 4 ]]; then pass "c3 exit code 4"; else fail "c3 exit code $rc (want 4)"; fi
fi

# ---- 3. nothing left behind
sleep 0.5
left="$(ls -A "$RUNC_ROOT/$NS" 2>/dev/null | tr '\n' ' ' || true)"
if [[ -z "$left" ]]; then pass "no runtime state left in $RUNC_ROOT/$NS"; else fail "runtime state left in $RUNC_ROOT/$NS: $left"; fi
cg_left=""
for c in c1 c2 c3; do
  for d in /sys/fs/cgroup/*/"$NS"/"$c" /sys/fs/cgroup/"$NS"/"$c"; do
    [[ -d "$d" ]] && cg_left+="$d "
  done
done
if [[ -z "$cg_left" ]]; then pass "no cgroups left"; else fail "cgroups left: $cg_left"; fi
mnt_left="$(awk -v t="$T/state/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | tr '\n' ' ' || true)"
if [[ -z "$mnt_left" ]]; then pass "no rootfs mounts left"; else fail "mounts left: $mnt_left"; fi
if ! pgrep -f -- "-address $SOCK" >/dev/null 2>&1; then pass "no shims left"; else fail "shims left: $(pgrep -f -- "-address $SOCK" | tr '\n' ' ')"; fi
if [[ -z "$(ctr_ container ls -q || echo ERR)" ]]; then pass "no containers listed"; else fail "containers left: $(ctr_ container ls -q | tr '\n' ' ')"; fi

if [[ $FAIL -gt 0 ]]; then show_diag; fi
echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
