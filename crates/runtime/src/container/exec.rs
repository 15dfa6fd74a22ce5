//! `exec`: a new process in a running container. Like the init it is one raw clone
//! (born in the container's pid namespace: the parent switches `pid_for_children`
//! around the clone), and the child only makes async-signal-safe calls until exec.
//!
//! Handshake over the same channel as create's:
//! 1. parent: clone; add the child to the container's cgroups, set its rlimits and
//!    oom_score_adj; send **Go**.
//! 2. child: setns into every namespace of the init that differs from ours and chroot
//!    into its root; with a terminal, a new session and a pty from the container's
//!    devpts (master to `--console-socket`); then the process's fds, seccomp,
//!    credentials, umask, cwd, no_new_privs, as for the init; exec. Success closes the
//!    channel (close-on-exec); a failure comes back as a **Failed** frame.

use super::create::{block_signals, connect_console, forward_until_exit, rlimits, write_pid_file};
use super::{Error, Outcome};
use crate::process::channel::{self, Channel, Failure, Msg, Step};
use crate::process::child::Child;
use crate::process::init;
use crate::process::join::Joined;
use crate::process::plan::ProcessPlan;
use crate::process::spawn::{self, SpawnError};
use crate::rootfs::RootPath;
use crate::state::{ContainerState, Status};
use berth_sys::process::{clone_process, Forked};
use oci_spec::runtime::Process;
use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, WaitOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    /// The whole process (from `--process`, or the container's own with the flags
    /// applied: see [`base_process`]).
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// `--cgroup [CONTROLLERS:]PATH`: existing sub-cgroups of the container's to run in.
    pub sub_cgroups: Vec<String>,
}

/// The container's config.json process, which `exec` without `--process` starts from.
pub fn base_process(root: &std::path::Path, id: &str) -> Result<Process, Error> {
    super::validate_id(id)?;
    let st = ContainerState::load(root, id)?;
    Ok(st.process.unwrap_or_default())
}

pub fn exec(opts: &ExecOptions) -> Result<Outcome, Error> {
    super::validate_id(&opts.id)?;
    // The container's processes are running: nothing of ours they can reach may be
    // the host's binary (see crate::exe). Nothing has been done yet, so starting over
    // from the copy is safe.
    crate::exe::run_from_sealed_copy()?;
    let st = ContainerState::load(&opts.root, &opts.id)?;
    let status = st.status();
    let refuse = |message: &str| {
        Err(Error::WrongStatus {
            id: opts.id.clone(),
            status,
            message: message.into(),
        })
    };
    match status {
        Status::Created | Status::Running => {}
        Status::Paused if opts.ignore_paused => {}
        Status::Paused => {
            return refuse(
                "cannot exec in a paused container (pause it later, or pass --ignore-paused)",
            )
        }
        Status::Stopped => return refuse("cannot exec in a stopped container"),
        Status::Creating => {
            return refuse("cannot exec in a container that is still being created")
        }
    }
    let terminal = opts.process.terminal().unwrap_or(false);
    match (terminal, &opts.console_socket) {
        (true, None) => return Err(Error::Usage(
            "a terminal was asked for (--tty or process.terminal): --console-socket is required"
                .into(),
        )),
        (false, Some(_)) => {
            return Err(Error::Usage(
                "--console-socket given but no terminal was asked for (--tty)".into(),
            ))
        }
        _ => {}
    }

    let joined = Joined::open(st.pid, true).map_err(SpawnError::from)?;
    let mut plan = ProcessPlan::build(&opts.process, opts.preserve_fds, joined.joins_user())?;
    plan.attrs =
        crate::process::attrs::ProcessAttrs::build(&opts.process, st.personality.as_ref(), true)?;
    plan.attrs.memory_policy = st
        .memory_policy
        .as_ref()
        .map(crate::process::attrs::memory_policy)
        .transpose()?;
    if let Some(s) = &st.seccomp {
        plan.seccomp = Some(crate::seccomp::compile_cached(
            s,
            Some(&opts.root.join(crate::seccomp::CACHE_DIR)),
        )?);
    }
    let limits = rlimits(Some(&opts.process))?;
    let floor = 3 + opts.preserve_fds as i32;
    let console = match &opts.console_socket {
        Some(p) => Some(connect_console(p, floor)?),
        None => None,
    };
    let ptmx = RootPath::new("/dev/pts/ptmx").expect("static path");
    let (parent, child) = channel::pair(floor)
        .map_err(|e| SpawnError::Channel(std::io::Error::from_raw_os_error(e.raw_os_error())))?;
    let signals = (!opts.detach).then(|| block_signals(floor)).transpose()?;

    let (pid, parent) = if joined.parent_can_join_pid() {
        // The child never returns from the closure (see Joined::around_clone); the
        // parent gets its end of the channel back.
        let forked = joined
            .around_clone(|| match clone_process(0) {
                Ok(Forked::Child) => {
                    drop(parent);
                    run_child(&plan, &joined, &child, console.as_ref(), &ptmx, false)
                }
                Ok(Forked::Parent(pid)) => Ok((pid, parent)),
                Err(e) => Err(e),
            })
            .map_err(SpawnError::from)?;
        forked
            .map_err(|e| SpawnError::Clone(std::io::Error::from_raw_os_error(e.raw_os_error())))?
    } else {
        let pid = rootless_fork(&plan, &joined, &parent, &child, console.as_ref(), &ptmx)?;
        (pid, parent)
    };
    drop(child);
    drop(console);
    let guard = Child::new(pid);

    if let Some(m) = &plan.attrs.affinity_initial {
        berth_sys::process::set_affinity(pid.as_raw_nonzero().get(), m).map_err(|e| {
            SpawnError::Exec(format!(
                "process.execCPUAffinity.initial: {}",
                std::io::Error::from_raw_os_error(e.raw_os_error())
            ))
        })?;
    }
    if let Some(cg) = &st.cgroup {
        cg.add_pid_in(pid.as_raw_nonzero().get(), &opts.sub_cgroups)
            .map_err(SpawnError::from)?;
    }
    spawn::apply_rlimits(pid, &limits)?;
    if let Some(adj) = opts.process.oom_score_adj() {
        spawn::apply_oom_score_adj(pid, adj)?;
    }
    parent
        .send(&Msg::Go)
        .map_err(|e| SpawnError::Channel(std::io::Error::from_raw_os_error(e.raw_os_error())))?;
    let mut msg = parent.recv();
    while let Ok(Some(Msg::SeccompFd(fd))) = msg {
        if let Some(l) = plan.seccomp.as_ref().and_then(|p| p.listener.as_ref()) {
            let doc = super::create::document(&st, st.pid, status);
            crate::seccomp::send_to_listener(l, &doc, pid.as_raw_nonzero().get(), fd)?;
        }
        msg = parent.recv();
    }
    match msg {
        Ok(None) => {}
        Ok(Some(Msg::Failed(f))) => {
            return Err(SpawnError::failed("exec failed", &f, describe(&plan, &joined, &f)).into())
        }
        _ => return Err(SpawnError::Exec("protocol error on the exec channel".into()).into()),
    }
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid.as_raw_nonzero().get())?;
    }
    guard.disarm();
    match signals {
        Some(sigfd) => Ok(Outcome::Exited {
            code: forward_until_exit(pid, &sigfd)?,
        }),
        None => Ok(Outcome::Started {
            pid: pid.as_raw_nonzero().get(),
        }),
    }
}

fn describe(plan: &ProcessPlan, joined: &Joined, f: &Failure) -> String {
    if f.step == Step::JoinNamespace {
        let name = joined.name(f.index as usize);
        let errno = std::io::Error::from_raw_os_error(f.errno);
        return format!("joining the container's {name} namespace: {errno}");
    }
    plan.describe(f)
}

/// Rootless: an intermediate joins the user namespace and sets pid_for_children,
/// forks the process, reports its pid and exits; as child subreaper we inherit the
/// process, so it can be waited for as if we had forked it ourselves.
fn rootless_fork(
    plan: &ProcessPlan,
    joined: &Joined,
    parent: &Channel,
    child: &Channel,
    console: Option<&OwnedFd>,
    ptmx: &RootPath,
) -> Result<Pid, Error> {
    let io = |e: berth_sys::Errno| std::io::Error::from_raw_os_error(e.raw_os_error());
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| SpawnError::Clone(io(e)))?;
    let middle = match clone_process(0).map_err(|e| SpawnError::Clone(io(e)))? {
        Forked::Child => {
            if let Err((name, e)) = joined.enter_user_and_pid_for_children() {
                let _ = child.send(&Msg::Failed(Failure::new(
                    Step::JoinNamespace,
                    joined.index_of(name) as u32,
                    e,
                )));
                berth_sys::process::exit_immediately(1)
            }
            match clone_process(0) {
                Ok(Forked::Child) => run_child(plan, joined, child, console, ptmx, true),
                Ok(Forked::Parent(pid)) => {
                    let _ = child.send(&Msg::Pid(pid.as_raw_nonzero().get()));
                    berth_sys::process::exit_immediately(0)
                }
                Err(e) => {
                    let _ = child.send(&Msg::Failed(Failure::new(Step::JoinNamespace, 0, e)));
                    berth_sys::process::exit_immediately(1)
                }
            }
        }
        Forked::Parent(pid) => pid,
    };
    let msg = parent.recv();
    let _ = rustix::process::waitpid(Some(middle), WaitOptions::empty());
    match msg {
        Ok(Some(Msg::Pid(p))) => Ok(Pid::from_raw(p)
            .ok_or_else(|| SpawnError::Exec("bad pid from the intermediate process".into()))?),
        Ok(Some(Msg::Failed(f))) => {
            Err(SpawnError::failed("exec failed", &f, describe(plan, joined, &f)).into())
        }
        _ => {
            Err(SpawnError::Exec("the intermediate process of a rootless exec died".into()).into())
        }
    }
}

/// The exec'd process's side. Async-signal-safe only.
fn run_child(
    plan: &ProcessPlan,
    joined: &Joined,
    chan: &Channel,
    console: Option<&OwnedFd>,
    ptmx: &RootPath,
    user_joined: bool,
) -> ! {
    let report = |f: Failure| -> ! {
        let _ = chan.send(&Msg::Failed(f));
        berth_sys::process::exit_immediately(1)
    };
    match chan.recv() {
        Ok(Some(Msg::Go)) => {}
        _ => berth_sys::process::exit_immediately(1),
    }
    if let Err((name, e)) = joined.enter(user_joined) {
        report(Failure::new(
            Step::JoinNamespace,
            joined.index_of(name) as u32,
            e,
        ));
    }
    if let Some(socket) = console {
        if let Err(e) = rustix::process::setsid() {
            report(Failure::new(Step::Setsid, 0, e));
        }
        let root = match rustix::fs::open(
            c"/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(r) => r,
            Err(e) => report(Failure::new(Step::Console, 0, e)),
        };
        let tty = match crate::rootfs::setup::pty(root.as_fd(), ptmx, socket) {
            Ok(t) => t,
            Err(f) => report(f),
        };
        if let Err(e) = rustix::process::ioctl_tiocsctty(&tty) {
            report(Failure::new(Step::Stdio, 0, e));
        }
        if let Err(e) = berth_sys::fd::dup_to_stdio(tty.as_raw_fd()) {
            report(Failure::new(Step::Stdio, 0, e));
        }
    }
    match init::prepare_process(plan, chan) {
        Ok(exe) => init::exec(plan, exe, chan),
        Err(f) => report(f),
    }
}
