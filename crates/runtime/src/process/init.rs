//! The container's init, between clone and exec. Async-signal-safe only: every value
//! comes pre-built from [`InitPlan`]; failures go to the parent as fixed-size frames.

// A Failure is returned by value on purpose: boxing it would allocate between clone and exec.
#![allow(clippy::result_large_err)]

use super::channel::{Channel, Failure, Msg, Step};
use super::plan::{InitPlan, ProcessPlan};
use crate::rootfs::setup;
use berth_sys::Errno;
use rustix::fs::{Access, AtFlags, FileType, Mode, OFlags, CWD};
use std::os::fd::AsFd;

type R<T> = Result<T, Failure>;

fn fail(step: Step, index: usize) -> impl Fn(Errno) -> Failure {
    move |e| Failure::new(step, index as u32, e)
}

/// Runs the init; never returns.
pub(crate) fn run(plan: &InitPlan, chan: &Channel) -> ! {
    let exe = match setup(plan, chan) {
        Ok(exe) => exe,
        Err(f) => {
            let _ = chan.send(&Msg::Failed(f));
            berth_sys::process::exit_immediately(1)
        }
    };
    if chan.send(&Msg::Ready).is_err() {
        berth_sys::process::exit_immediately(1)
    }
    if let Some(fifo) = &plan.exec_fifo {
        // Blocks until `start` writes a byte (the fifo is open read-write here, so a
        // missing writer cannot end the read early).
        let mut b = [0u8; 1];
        loop {
            match rustix::io::read(fifo, &mut b) {
                Ok(1) => break,
                Err(Errno::INTR) => continue,
                Ok(_) => berth_sys::process::exit_immediately(1),
                Err(e) => {
                    let _ = chan.send(&Msg::Failed(Failure::new(Step::ExecFifo, 0, e)));
                    berth_sys::process::exit_immediately(1)
                }
            }
        }
    }
    exec(&plan.process, exe, chan)
}

/// Resets signals and execs the program; on failure reports it and exits 127.
pub(crate) fn exec(p: &ProcessPlan, exe: usize, chan: &Channel) -> ! {
    berth_sys::signal::reset_dispositions();
    let _ = berth_sys::signal::set_mask(&berth_sys::signal::SigSet::empty());
    let e = berth_sys::exec::execve(&p.candidates[exe], &p.argv, &p.envp);
    let _ = chan.send(&Msg::Failed(Failure::new(Step::Exec, 0, e)));
    // Nobody may be listening any more (create exited long ago): say it on stderr too.
    let _ = rustix::io::write(
        rustix::stdio::stderr(),
        b"berth-oci: container process: exec failed\n",
    );
    berth_sys::process::exit_immediately(127)
}

fn setup(plan: &InitPlan, chan: &Channel) -> R<usize> {
    // Handshake 1: wait until the parent has put us in our cgroups and written maps.
    match chan.recv() {
        Ok(Some(Msg::Go)) => {}
        _ => berth_sys::process::exit_immediately(1),
    }
    namespaces(plan)?;
    rustix::process::umask(rustix::fs::Mode::empty());
    let root = if plan.ns.mount {
        let root = setup::prepare(&plan.rootfs)?;
        setup::mounts(root.as_fd(), &plan.rootfs)?;
        setup::devices(root.as_fd(), &plan.rootfs)?;
        root
    } else {
        // The runtime's own mount namespace: the host's root, untouched.
        rustix::fs::open(
            c"/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail(Step::RootfsBind, 0))?
    };
    for (i, (path, value, _)) in plan.sysctls.iter().enumerate() {
        setup::sysctl(root.as_fd(), i, path, value)?;
    }
    let console = match (&plan.rootfs.console, &plan.console_socket) {
        (Some((ptmx, console)), Some(socket)) if plan.ns.mount => {
            Some(setup::console(root.as_fd(), ptmx, console, socket)?)
        }
        // No /dev/console bind without a mount namespace of our own.
        (Some((ptmx, _)), Some(socket)) => Some(setup::pty(root.as_fd(), ptmx, socket)?),
        _ => None,
    };
    if plan.pause_for_hooks {
        // Handshake 1b: the parent runs the create hooks while we wait.
        if chan.send(&Msg::Pause).is_err() || !matches!(chan.recv(), Ok(Some(Msg::Go))) {
            berth_sys::process::exit_immediately(1)
        }
    }
    if plan.ns.mount {
        setup::mask_and_protect(root.as_fd(), &plan.rootfs)?;
        setup::enter(root, &plan.rootfs)?;
    } else {
        drop(root);
        // Nothing was mounted (that would change the host's mounts), but the process
        // still gets its root filesystem, as with runc: chroot instead of pivot_root.
        let err = fail(Step::PivotRoot, 0);
        rustix::process::chdir(plan.rootfs.rootfs.as_c_str()).map_err(&err)?;
        rustix::process::chroot(c".").map_err(&err)?;
        rustix::process::chdir(c"/").map_err(&err)?;
    }
    rustix::process::setsid().map_err(fail(Step::Setsid, 0))?;
    if let Some(tty) = &console {
        rustix::process::ioctl_tiocsctty(tty).map_err(fail(Step::Stdio, 0))?;
        berth_sys::fd::dup_to_stdio(std::os::fd::AsRawFd::as_raw_fd(tty))
            .map_err(fail(Step::Stdio, 0))?;
    }
    drop(console);
    prepare_process(&plan.process, chan)
}

/// From the runtime's credentials to the process's, up to the exec: fds, seccomp,
/// credentials, umask, cwd, no_new_privs. Returns the executable's candidate index.
pub(crate) fn prepare_process(plan: &ProcessPlan, chan: &Channel) -> R<usize> {
    // While every capability is still there (a real-time scheduler or I/O class needs
    // CAP_SYS_NICE / CAP_SYS_ADMIN) and before a filter could refuse the syscalls.
    attrs(&plan.attrs)?;
    // Before any seccomp filter: close_range may not be on a profile's allowlist.
    fds(plan)?;
    if !plan.no_new_privs {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we
        // still have every capability.
        seccomp(plan, chan)?;
    }
    credentials(plan)?;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(plan.umask));
    // No magic links: "/proc/self/fd/N" must not turn an fd of ours, still open until
    // exec, into a working directory outside the container (CVE-2024-21626 class).
    match berth_sys::fd::openat2(
        CWD,
        plan.cwd.as_c_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        rustix::fs::ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(cwd) => rustix::process::fchdir(&cwd).map_err(fail(Step::Chdir, 0))?,
        // openat2 filtered by a seccomp profile from before it existed (installed
        // already when noNewPrivileges is false), or too old a kernel: chdir, then
        // make sure the result is inside our root, as runc does.
        Err(Errno::PERM) | Err(Errno::NOSYS) => {
            rustix::process::chdir(plan.cwd.as_c_str()).map_err(fail(Step::Chdir, 0))?;
            if !berth_sys::fd::cwd_inside_root().map_err(fail(Step::Chdir, 0))? {
                return Err(Failure::new(Step::Chdir, 0, Errno::NOENT)
                    .with_detail(b"the working directory is outside the container's root"));
            }
        }
        Err(e) => return Err(Failure::new(Step::Chdir, 0, e)),
    }
    if plan.no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(fail(Step::NoNewPrivs, 0))?;
    }
    let exe = find_executable(plan)?;
    if plan.no_new_privs {
        seccomp(plan, chan)?;
    }
    Ok(exe)
}

fn attrs(a: &super::attrs::ProcessAttrs) -> R<()> {
    if let Some(p) = a.personality {
        berth_sys::process::set_personality(p).map_err(fail(Step::Personality, 0))?;
    }
    if let Some(v) = a.io_priority {
        berth_sys::process::set_io_priority(v).map_err(fail(Step::IoPriority, 0))?;
    }
    if let Some(s) = &a.scheduler {
        berth_sys::process::set_scheduler(s).map_err(fail(Step::Scheduler, 0))?;
    }
    if let Some(m) = &a.affinity_final {
        berth_sys::process::set_affinity(0, m).map_err(fail(Step::CpuAffinity, 0))?;
    }
    if let Some((mode, nodes)) = &a.memory_policy {
        berth_sys::process::set_mempolicy(*mode, nodes).map_err(fail(Step::MemoryPolicy, 0))?;
    }
    if let Some((file, value)) = &a.lsm {
        let f = rustix::fs::open(
            file.as_c_str(),
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail(Step::Lsm, 0))?;
        rustix::io::write(&f, value).map_err(fail(Step::Lsm, 0))?;
    }
    Ok(())
}

fn seccomp(plan: &ProcessPlan, chan: &Channel) -> R<()> {
    if let Some(p) = &plan.seccomp {
        let notify = berth_sys::process::seccomp_set_filter(&p.bpf, p.flags)
            .map_err(fail(Step::Seccomp, 0))?;
        if let Some(fd) = notify {
            // The parent hands it to linux.seccomp.listenerPath.
            chan.send(&Msg::SeccompFd(fd))
                .map_err(fail(Step::Seccomp, 1))?;
        }
    }
    Ok(())
}

fn namespaces(plan: &InitPlan) -> R<()> {
    for (i, j) in plan.ns.child_join.iter().enumerate() {
        rustix::thread::move_into_link_name_space(j.fd.as_fd(), Some(j.kind))
            .map_err(fail(Step::JoinNamespace, i))?;
    }
    if plan.ns.new_user {
        rustix::thread::set_thread_res_gid(
            rustix::fs::Gid::ROOT,
            rustix::fs::Gid::ROOT,
            rustix::fs::Gid::ROOT,
        )
        .map_err(fail(Step::BecomeRoot, 0))?;
        rustix::thread::set_thread_res_uid(
            rustix::fs::Uid::ROOT,
            rustix::fs::Uid::ROOT,
            rustix::fs::Uid::ROOT,
        )
        .map_err(fail(Step::BecomeRoot, 0))?;
    }
    if plan.ns.new_cgroup {
        berth_sys::process::unshare_namespaces(libc::CLONE_NEWCGROUP)
            .map_err(fail(Step::UnshareCgroupNs, 0))?;
    }
    if let Some(h) = &plan.hostname {
        rustix::system::sethostname(h).map_err(fail(Step::Hostname, 0))?;
    }
    if let Some(d) = &plan.domainname {
        rustix::system::setdomainname(d).map_err(fail(Step::Domainname, 0))?;
    }
    Ok(())
}

/// Bounding set, groups, uid/gid (keeping capabilities across the switch), then the
/// exact effective/permitted/inheritable sets and the ambient ones.
fn credentials(plan: &ProcessPlan) -> R<()> {
    let caps = plan.caps;
    for cap in 0..=plan.last_cap {
        if caps.bounding & (1u64 << cap) == 0 {
            match berth_sys::caps::bounding_drop(cap) {
                Ok(()) | Err(Errno::INVAL) => {}
                Err(e) => return Err(Failure::new(Step::BoundingSet, cap, e)),
            }
        }
    }
    if !plan.in_new_userns || !plan.additional_gids.is_empty() {
        rustix::thread::set_thread_groups(&plan.additional_gids)
            .map_err(fail(Step::Setgroups, 0))?;
    }
    berth_sys::caps::set_keepcaps(true).map_err(fail(Step::Setuid, 0))?;
    let gid = rustix::fs::Gid::from_raw(plan.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(fail(Step::Setgid, 0))?;
    let uid = rustix::fs::Uid::from_raw(plan.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(fail(Step::Setuid, 0))?;
    berth_sys::caps::set_keepcaps(false).map_err(fail(Step::Setuid, 0))?;
    berth_sys::caps::capset(caps.effective, caps.permitted, caps.inheritable)
        .map_err(fail(Step::Capset, 0))?;
    for cap in 0..=plan.last_cap {
        if caps.ambient & (1u64 << cap) != 0 {
            berth_sys::caps::ambient_raise(cap).map_err(fail(Step::Ambient, cap as usize))?;
        }
    }
    Ok(())
}

/// The first candidate that is a regular file this user may execute.
fn find_executable(plan: &ProcessPlan) -> R<usize> {
    let mut last = Errno::NOENT;
    for (i, c) in plan.candidates.iter().enumerate() {
        let st = match rustix::fs::statat(CWD, c.as_c_str(), AtFlags::empty()) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => st,
            Ok(_) => {
                last = Errno::ACCESS;
                continue;
            }
            // A seccomp profile may filter the lookup itself: leave the verdict to execve.
            Err(Errno::PERM) | Err(Errno::NOSYS) => return Ok(i),
            Err(e) => {
                if e != Errno::NOENT && e != Errno::NOTDIR {
                    last = e;
                }
                continue;
            }
        };
        match rustix::fs::accessat(CWD, c.as_c_str(), Access::EXEC_OK, AtFlags::EACCESS) {
            Ok(()) => return Ok(i),
            // faccessat2 filtered (a profile from before it existed) or missing: judge by
            // the mode bits, as Go's exec.LookPath does.
            Err(Errno::PERM) | Err(Errno::NOSYS) if executable_by_mode(&st) => return Ok(i),
            Err(e) => last = e,
        }
    }
    Err(Failure::new(Step::ExecLookup, 0, last))
}

fn executable_by_mode(st: &rustix::fs::Stat) -> bool {
    let mode = st.st_mode;
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        return mode & 0o111 != 0;
    }
    if st.st_uid == uid {
        return mode & 0o100 != 0;
    }
    if st.st_gid == rustix::process::getegid().as_raw() {
        return mode & 0o010 != 0;
    }
    mode & 0o001 != 0
}

/// Nothing but stdio and the preserved fds may reach the container: mark every other
/// fd close-on-exec (the channel and exec fifo stay usable until exec).
fn fds(plan: &ProcessPlan) -> R<()> {
    berth_sys::fd::cloexec_from(3 + plan.preserve_fds).map_err(fail(Step::Fds, 0))?;
    for fd in 3..3 + plan.preserve_fds {
        // A preserved number the caller left closed simply passes nothing, as with runc.
        match berth_sys::fd::clear_cloexec(fd as i32) {
            Ok(()) | Err(Errno::BADF) => {}
            Err(e) => return Err(Failure::new(Step::Fds, fd, e)),
        }
    }
    Ok(())
}
