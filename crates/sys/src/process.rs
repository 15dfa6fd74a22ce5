//! Process creation without threads: one raw `clone` that behaves like `fork` but can
//! create namespaces, so the container's init is born inside them (no intermediate
//! process, unlike runc's and youki's chains).

use crate::{last_errno, Errno};
use rustix::process::Pid;

/// What `clone_process` returned in each of the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(Pid),
}

/// Forks, creating the namespaces in `ns_flags` (CLONE_NEW* bits) for the child.
///
/// The caller must be single-threaded: the child gets a copy of the address space in
/// which no other thread can hold a lock, and from then on must only make
/// async-signal-safe calls until it execs or exits.
pub fn clone_process(ns_flags: u64) -> Result<Forked, Errno> {
    // SAFETY: SYS_clone with a NULL stack and no CLONE_VM/CLONE_SETTLS/*TID flags is
    // fork(2) with extra namespace flags: the child runs on a copy of the parent's stack.
    // No pointers are passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (ns_flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        r if r < 0 => Err(last_errno()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(
            Pid::from_raw(pid as i32).ok_or(Errno::INVAL)?,
        )),
    }
}

/// [`clone_process`], with the child born in the cgroup v2 directory `cgroup` is open
/// on (clone3 with CLONE_INTO_CGROUP, Linux 5.7). Moving a process in afterwards, by
/// writing `cgroup.procs`, takes the cgroup threadgroup lock as a writer, whose first
/// writer after a quiet spell waits out an RCU grace period (10–30 ms here); a clone
/// into the cgroup only reads it. Errors are clone3's: ENOSYS before 5.3, E2BIG or
/// EINVAL before 5.7, and whatever the cgroup refuses (EBUSY, EOPNOTSUPP, ...); the
/// caller falls back to [`clone_process`] and a write.
///
/// The same rules as [`clone_process`] hold for the caller and the child.
pub fn clone_process_into(
    ns_flags: u64,
    cgroup: std::os::fd::BorrowedFd<'_>,
) -> Result<Forked, Errno> {
    use std::os::fd::AsRawFd;
    /// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: ns_flags | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: clone3 without CLONE_VM and with no stack is fork(2) with extra flags:
    // the child runs on a copy of the parent's stack. The kernel reads `args` (whose
    // size we pass) before either process returns; no other pointer is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        r if r < 0 => Err(last_errno()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(
            Pid::from_raw(pid as i32).ok_or(Errno::INVAL)?,
        )),
    }
}

/// Ends the calling process at once: no atexit handlers, no stdio flush (the child
/// shares the parent's buffers and must not flush them twice).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Reads the real user id without touching libc's caches.
pub fn getuid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// unshare(2) for namespace flags only (CLONE_NEW*): never CLONE_FILES or CLONE_FS,
/// which are what make rustix's wrapper unsafe.
pub fn unshare_namespaces(ns_flags: i32) -> Result<(), Errno> {
    const NS_MASK: i32 = libc::CLONE_NEWNS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWTIME;
    if ns_flags & !NS_MASK != 0 {
        return Err(Errno::INVAL);
    }
    // SAFETY: only namespace flags reach the kernel (checked above), which change no
    // memory or fd table the process relies on.
    let ret = unsafe { libc::unshare(ns_flags) };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// kill(2) with raw numbers: `kill` accepts any signal, real-time ones included, which
/// rustix's Signal type cannot all name.
pub fn kill(pid: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: kill takes plain integers.
    let ret = unsafe { libc::kill(pid, signal) };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Installs a classic-BPF seccomp filter (`bpf` is an array of struct sock_filter).
/// With SECCOMP_FILTER_FLAG_NEW_LISTENER in `flags`, returns the notify fd.
pub fn seccomp_set_filter(bpf: &[u8], flags: u32) -> Result<Option<std::os::fd::OwnedFd>, Errno> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const u8,
    }
    let prog = SockFprog {
        len: (bpf.len() / 8) as u16,
        filter: bpf.as_ptr(),
    };
    // SAFETY: prog points at `bpf`, alive for the call; the kernel copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1, /* SECCOMP_SET_MODE_FILTER */
            flags,
            &prog as *const SockFprog,
        )
    };
    if ret < 0 {
        return Err(last_errno());
    }
    const NEW_LISTENER: u32 = 1 << 3;
    if flags & NEW_LISTENER != 0 {
        use std::os::fd::FromRawFd;
        // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
        return Ok(Some(unsafe {
            std::os::fd::OwnedFd::from_raw_fd(ret as i32)
        }));
    }
    Ok(None)
}

/// prctl(PR_SET_DUMPABLE, 0): other processes of the same user can no longer open this
/// process's /proc/<pid>/exe, mem or fds without CAP_SYS_PTRACE. Inherited across fork
/// and reset by execve of an ordinary program.
pub fn set_not_dumpable() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// personality(2): the execution domain (linux.personality).
pub fn set_personality(persona: u64) -> Result<(), Errno> {
    // SAFETY: personality takes one integer.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// set_mempolicy(mode | flags, nodes, maxnode) for the calling thread; inherited by
/// its children and kept across execve.
pub fn set_mempolicy(mode: i32, nodes: &[u64]) -> Result<(), Errno> {
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits.
        (nodes.as_ptr(), nodes.len() as libc::c_ulong * 64 + 1)
    };
    // SAFETY: ptr is null or points at nodes.len() words, which maxnode does not exceed.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, value) for the calling process.
pub fn set_io_priority(value: i32) -> Result<(), Errno> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    // SAFETY: integers only.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The kernel's struct sched_attr (sched_setattr(2)), first version plus util clamps.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// sched_setattr(0, attr, 0) for the calling thread.
pub fn set_scheduler(attr: &SchedAttr) -> Result<(), Errno> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a properly sized, initialised sched_attr on our stack.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// sched_setaffinity for `pid` (0: the caller) from a CPU bit mask.
pub fn set_affinity(pid: i32, mask: &[u64; 16]) -> Result<(), Errno> {
    // SAFETY: the mask is a 1024-bit array on the caller's stack, passed with its size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    if ret < 0 {
        return Err(last_errno());
    }
    Ok(())
}
