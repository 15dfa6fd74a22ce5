#!/usr/bin/env bash
# Run a command as root inside a throw-away qemu (TCG) VM whose kernel has a
# pure cgroup v2 hierarchy (cgroup_no_v1=all) mounted at /sys/fs/cgroup.
#
# Usage: tests/vm/run-v2.sh [options] -- COMMAND [ARGS...]
#
# Options:
#   --timeout SECS        kill the VM after SECS (boot included); default 300
#                         (env BERTH_VM_TIMEOUT). Exit code 124 on timeout.
#   --add HOST[:GUEST]    copy a file or directory into the guest (repeatable).
#                         GUEST defaults to /berth/<basename of HOST>; a GUEST
#                         ending in '/' gets the basename appended. Shared
#                         libraries of ELF files (as found by ldd) are copied too.
#   --env NAME=VALUE      export a variable for COMMAND (repeatable).
#   --module NAME         load one more kernel module at boot (repeatable).
#   --append ARGS         extra kernel command line arguments.
#   --mem MiB / --smp N   guest size; default 2048 / 2 (env BERTH_VM_MEM, BERTH_VM_SMP).
#   -v, --verbose         show the whole boot log (on stderr) and drop 'quiet'.
#   --print-deps          print the apt packages needed and exit.
#
# Exit code: COMMAND's exit code, 124 on timeout, 125 if the VM never reported
# one (boot failure: the console log is kept in the cache dir), 126 on a usage
# or host-setup error (missing packages are named).
#
# Other environment: BERTH_VM_KERNEL (path of a vmlinuz; default the newest
# /boot/vmlinuz-* that has /lib/modules/<version>), BERTH_VM_CACHE (cache dir,
# default ${TMPDIR:-/tmp}/berth-vm-cache), BERTH_VM_NICE (nice level for qemu,
# default 0).
#
# The guest: busybox-static applets, /init runs COMMAND via 'sh' from '/', with
# stdin /dev/null, PATH=/berth:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,
# root on a tmpfs (switch_root'ed out of the initramfs, so pivot_root works),
# proc, sysfs, devtmpfs, devpts, /dev/shm, /tmp, /run, cgroup2 at
# /sys/fs/cgroup with every controller enabled in the root's
# cgroup.subtree_control, / made rshared (as systemd does), lo up, and the
# modules in DEFAULT_MODULES loaded. No network device.
set -euo pipefail

DEPS="qemu-system-x86 linux-image-amd64 cpio busybox-static"
DEFAULT_MODULES="crc32c_generic overlay veth bridge br_netfilter tun nf_tables nft_chain_nat nft_masq nft_compat ip_tables iptable_filter iptable_nat xt_MASQUERADE xt_addrtype xt_conntrack"
START_MARK="===VM-CMD-START==="

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
prog=${0##*/}

die() { echo "$prog: $*" >&2; exit 126; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH" >&2; exit 126; }

timeout_s=${BERTH_VM_TIMEOUT:-300}
mem=${BERTH_VM_MEM:-2048}
smp=${BERTH_VM_SMP:-2}
verbose=${BERTH_VM_VERBOSE:-0}
extra_append=""
adds=()
envs=()
extra_modules=()

while [ $# -gt 0 ]; do
    case $1 in
        --timeout) timeout_s=${2:?--timeout needs a value}; shift 2 ;;
        --timeout=*) timeout_s=${1#*=}; shift ;;
        --add) adds+=("${2:?--add needs a value}"); shift 2 ;;
        --add=*) adds+=("${1#*=}"); shift ;;
        --env) envs+=("${2:?--env needs a value}"); shift 2 ;;
        --env=*) envs+=("${1#*=}"); shift ;;
        --module) extra_modules+=("${2:?--module needs a value}"); shift 2 ;;
        --module=*) extra_modules+=("${1#*=}"); shift ;;
        --append) extra_append="$extra_append ${2:?--append needs a value}"; shift 2 ;;
        --append=*) extra_append="$extra_append ${1#*=}"; shift ;;
        --mem) mem=${2:?}; shift 2 ;;
        --smp) smp=${2:?}; shift 2 ;;
        -v|--verbose) verbose=1; shift ;;
        --print-deps) echo "$DEPS"; exit 0 ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) echo "$prog: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "$prog: no COMMAND given" >&2; usage; }
case $timeout_s in ''|*[!0-9]*) die "--timeout wants whole seconds, got '$timeout_s'" ;; esac

# ---------------------------------------------------------------- host checks
missing=()
QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$QEMU" ] || missing+=(qemu-system-x86)
command -v cpio >/dev/null || missing+=(cpio)
BUSYBOX=/bin/busybox
if [ ! -x "$BUSYBOX" ] || ldd "$BUSYBOX" >/dev/null 2>&1; then
    # missing, or dynamically linked (the 'busybox' package, not busybox-static)
    missing+=(busybox-static)
fi
KERNEL=${BERTH_VM_KERNEL:-}
if [ -z "$KERNEL" ]; then
    for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
        if [ -d "/lib/modules/${k#/boot/vmlinuz-}" ]; then KERNEL=$k; break; fi
    done
fi
if [ -z "$KERNEL" ] || [ ! -r "$KERNEL" ]; then
    missing+=(linux-image-amd64)
fi
for t in perl gzip timeout sha256sum ldd find; do
    command -v $t >/dev/null || die "'$t' not found (it is part of an Essential Debian package)"
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "$prog: missing Debian packages: ${missing[*]}" >&2
    echo "$prog: install them with: apt-get install -y $DEPS" >&2
    exit 126
fi
KVER=${KERNEL##*/vmlinuz-}
MODDIR=/lib/modules/$KVER
[ -f "$MODDIR/modules.dep" ] || die "$MODDIR/modules.dep not found (kernel $KERNEL has no modules installed?)"

CACHE=${BERTH_VM_CACHE:-${TMPDIR:-/tmp}/berth-vm-cache}
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-vm.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

shquote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

# Writes a newc cpio of directory $1 (owned by root) to stdout.
mkcpio() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | nice cpio --quiet -o -H newc -R 0:0); }

# Copies HOST file to STAGE/GUEST dereferencing symlinks, and the libraries it needs.
copy_libs() { # stage elf
    local stage=$1 f=$2 lib
    { ldd "$f" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// {print $3; next} $1 ~ /^\// {print $1}' |
    while read -r lib; do
        [ -e "$stage$lib" ] && continue
        mkdir -p "$stage${lib%/*}"
        cp -L "$lib" "$stage$lib"
    done
}
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | tr -d '\0')" = $'\x7fELF' ]; }

# ---------------------------------------------------------------- base initramfs (cached)
modules="$DEFAULT_MODULES ${extra_modules[*]:-}"
key=$( { sha256sum "$SCRIPT_PATH" "$BUSYBOX" "$MODDIR/modules.dep"; echo "$KVER $modules"; } | sha256sum | cut -c1-16)
BASE=$CACHE/base-$KVER-$key.cpio

build_base() {
    local stage=$WORK/base m rel mods_found="" line
    mkdir -p "$stage"
    (cd "$stage" && mkdir -p bin sbin usr/bin usr/sbin dev proc sys tmp run root mnt newroot var/tmp etc/vm berth "lib/modules/$KVER")
    chmod 1777 "$stage/tmp" "$stage/var/tmp"
    chmod 0700 "$stage/root"
    cp "$BUSYBOX" "$stage/bin/busybox"
    local a
    for a in $("$BUSYBOX" --list-full); do
        [ -e "$stage/$a" ] || ln -s /bin/busybox "$stage/$a"
    done
    mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
    mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true

    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$stage/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$stage/etc/group"
    printf '127.0.0.1 localhost berth-vm\n::1 localhost\n' >"$stage/etc/hosts"
    echo berth-vm >"$stage/etc/hostname"

    # Kernel modules: the wanted ones and everything they depend on (modules.dep
    # lists the transitive closure on each line). Built-in ones are skipped.
    local depf=$stage/lib/modules/$KVER/modules.dep
    : >"$depf"
    for m in $modules; do
        m=${m//-/_}
        line=$(awk -v m="$m" '{ f=$1; sub(/:$/,"",f); n=f; sub(/.*\//,"",n); sub(/\.ko(\.(xz|zst|gz))?$/,"",n); gsub(/-/,"_",n); if (n==m) { print; exit } }' "$MODDIR/modules.dep")
        if [ -z "$line" ]; then
            if ! sed 's,.*/,,;s,\.ko$,,;s,-,_,g' "$MODDIR/modules.builtin" 2>/dev/null | grep -qx "$m"; then
                echo "$prog: warning: kernel module $m not found for $KVER; skipped" >&2
            fi
            continue
        fi
        mods_found="$mods_found $m"
        for rel in $line; do
            rel=${rel%:}
            local out=${rel%.xz}; out=${out%.zst}; out=${out%.gz}
            [ -e "$stage/lib/modules/$KVER/$out" ] && continue
            mkdir -p "$stage/lib/modules/$KVER/${out%/*}"
            case $rel in
                *.xz) xz -dc "$MODDIR/$rel" ;;
                *.zst) zstd -qdc "$MODDIR/$rel" ;;
                *.gz) gzip -dc "$MODDIR/$rel" ;;
                *) cat "$MODDIR/$rel" ;;
            esac >"$stage/lib/modules/$KVER/$out"
            # this module's own modules.dep line (its deps are in the closure too)
            grep -E "^${rel//./\\.}:" "$MODDIR/modules.dep" | sed -E 's/\.ko\.(xz|zst|gz)/.ko/g' >>"$depf"
        done
    done
    for f in modules.builtin modules.builtin.modinfo modules.order; do
        [ -f "$MODDIR/$f" ] && cp "$MODDIR/$f" "$stage/lib/modules/$KVER/"
    done
    echo "$mods_found" >"$stage/etc/vm/modules"

    cat >"$stage/init" <<'INIT_EOF'
#!/bin/sh
# /init of the berth cgroup v2 test VM (generated by tests/vm/run-v2.sh).
export PATH=/berth:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
warn() { echo "vm-init: $*"; }

if [ "$1" != stage2 ]; then
    # Stage 1, on the initramfs (rootfs): pivot_root cannot leave it, so copy
    # everything into a tmpfs and switch_root there.
    mount -t devtmpfs devtmpfs /dev 2>/dev/null
    exec </dev/console >/dev/console 2>&1
    mount -t tmpfs -o mode=0755 root /newroot || warn "tmpfs on /newroot failed"
    for e in /* /.[!.]*; do
        case $e in /dev|/proc|/sys|/newroot|'/.[!.]*') continue ;; esac
        cp -a "$e" /newroot/ || warn "copying $e failed"
    done
    mkdir -p /newroot/dev /newroot/proc /newroot/sys
    mount -o move /dev /newroot/dev || umount /dev
    exec switch_root /newroot /init stage2
    warn "switch_root failed"; poweroff -f
fi

# Stage 2, on the tmpfs root.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || { ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr; }
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup 2>/dev/null ||
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || warn "mounting cgroup2 failed"
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || warn "enabling controller $c failed"
done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
for m in $(cat /etc/vm/modules); do
    modprobe "$m" || warn "modprobe $m failed"
done
mount --make-rshared /
hostname berth-vm
ip link set lo up
export HOME=/root TERM=dumb
[ -f /etc/vm/env ] && . /etc/vm/env
cd /
echo "===VM-CMD-START==="
sh /etc/vm/cmd </dev/null
rc=$?
echo "VM-EXIT-CODE=$rc"
sync
poweroff -f
INIT_EOF
    chmod 755 "$stage/init"
    mkcpio "$stage" >"$BASE.tmp.$$"
    mv -f "$BASE.tmp.$$" "$BASE"
    # drop bases built by older versions of this script
    find "$CACHE" -maxdepth 1 -name 'base-*.cpio' ! -name "${BASE##*/}" -mmin +60 -delete 2>/dev/null || true
    rm -rf "$stage"
}
[ -s "$BASE" ] || build_base

# ---------------------------------------------------------------- per-run initramfs
RUN=$WORK/run
mkdir -p "$RUN/etc/vm"
{
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(shquote "$a")"; done
    printf '\n'
} >"$RUN/etc/vm/cmd"
: >"$RUN/etc/vm/env"
for e in "${envs[@]+"${envs[@]}"}"; do
    case $e in [A-Za-z_]*=*) ;; *) die "--env wants NAME=VALUE, got '$e'" ;; esac
    printf 'export %s=%s\n' "${e%%=*}" "$(shquote "${e#*=}")" >>"$RUN/etc/vm/env"
done
for spec in "${adds[@]+"${adds[@]}"}"; do
    host=$spec guest=""
    if [[ $spec == *:* ]]; then host=${spec%%:*}; guest=${spec#*:}; fi
    [ -e "$host" ] || die "--add: $host does not exist"
    base=$(basename "$(readlink -f "$host")")
    [ -n "$guest" ] || guest=/berth/
    [[ $guest == */ ]] && guest=$guest$base
    [[ $guest == /* ]] || guest=/$guest
    mkdir -p "$RUN$(dirname "$guest")"
    if [ -d "$host" ]; then
        rm -rf "${RUN:?}$guest"
        cp -a "$(readlink -f "$host")" "$RUN$guest"
        while IFS= read -r -d '' f; do
            is_elf "$f" && copy_libs "$RUN" "$f"
        done < <(find "$RUN$guest" -type f -print0)
    else
        cp -L --preserve=mode,timestamps "$host" "$RUN$guest"
        is_elf "$RUN$guest" && copy_libs "$RUN" "$RUN$guest"
    fi
done
INITRD=$WORK/initrd.cpio
{ cat "$BASE"; mkcpio "$RUN"; } >"$INITRD"

# ---------------------------------------------------------------- boot
append="console=ttyS0 panic=-1 cgroup_no_v1=all mitigations=off"
[ "$verbose" = 1 ] || append="quiet $append"
append="$append$extra_append"
LOG=$CACHE/last-console.log
RCFILE=$WORK/rc

set +e
nice -n "${BERTH_VM_NICE:-0}" timeout -k 5 "$timeout_s" \
    "$QEMU" -nodefaults -nographic -no-user-config -serial stdio -no-reboot \
        -accel tcg -cpu max -m "$mem" -smp "$smp" \
        -kernel "$KERNEL" -initrd "$INITRD" -append "$append" </dev/null |
perl -e '
    use strict; use warnings;
    my ($log, $rcfile, $verbose, $start) = @ARGV;
    $| = 1;
    $SIG{PIPE} = "IGNORE";  # a closed stdout (e.g. | head) must not stop the log or the exit code
    open(my $L, ">", $log) or die "cannot write $log: $!";
    $L->autoflush(1);
    my ($started, $done) = (0, 0);
    while (my $l = <STDIN>) {
        print $L $l;
        next if $done;
        $l =~ s/\r//g;
        if (!$started) {
            if (index($l, $start) >= 0) { $started = 1; next; }
            print STDERR "[vm] $l" if $verbose || $l =~ /^vm-init:|\b(error|fail|panic|oops|bug)\b/i;
            next;
        }
        if ($l =~ /^(.*)VM-EXIT-CODE=(\d+)\s*$/) {
            print $1 if length $1;
            open(my $R, ">", $rcfile) or die; print $R "$2\n"; close $R;
            $done = 1;
            next;
        }
        print $l;
    }
    close STDOUT;
' "$LOG" "$RCFILE" "$verbose" "$START_MARK"
st=("${PIPESTATUS[@]}")
set -e

if [ -s "$RCFILE" ]; then
    exit "$(cat "$RCFILE")"
fi
if [ "${st[0]}" = 124 ] || [ "${st[0]}" = 137 ]; then
    echo "$prog: timed out after ${timeout_s}s (console log: $LOG)" >&2
    exit 124
fi
echo "$prog: the VM did not report an exit code (qemu status ${st[0]}); last console lines ($LOG):" >&2
tail -n 30 "$LOG" | tr -d '\r' >&2
exit 125
