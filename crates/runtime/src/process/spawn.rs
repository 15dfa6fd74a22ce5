//! Parent side of creating the init: one clone, then the handshake of [`super::channel`].

use super::channel::{self, Channel, Msg};
use super::init;
use super::plan::InitPlan;
use crate::cgroups::{Cgroup, CgroupError};
use berth_sys::process::{clone_process, clone_process_into, Forked};
use berth_sys::Errno;
use rustix::process::{Pid, Resource, Rlimit, WaitOptions};
use std::os::fd::AsFd;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("creating the init's channel: {0}")]
    Channel(std::io::Error),
    #[error("{label}: joining before clone: {source}")]
    JoinNamespace {
        label: String,
        source: std::io::Error,
    },
    #[error("linux.timeOffsets: {0}")]
    TimeNamespace(std::io::Error),
    #[error("clone of the container's init: {0}")]
    Clone(std::io::Error),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("{field}: writing {file}: {source}")]
    IdMap {
        field: &'static str,
        file: String,
        source: std::io::Error,
    },
    #[error("process.rlimits: {name}: {problem}")]
    Rlimit { name: String, problem: String },
    #[error("process.oomScoreAdj: {problem}")]
    OomScoreAdj { problem: String },
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Join(#[from] super::join::JoinError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("exec failed: {0}")]
    Exec(String),
    #[error("container init failed: {0}")]
    Init(String),
    /// The child reported the step that failed (`context` says whose: the init's or an
    /// exec'd process's).
    #[error("{context}: {message}")]
    Failed {
        context: &'static str,
        message: String,
        step: channel::Step,
        errno: i32,
    },
    #[error("container init exited during setup ({0})")]
    InitDied(String),
}

impl SpawnError {
    /// A failure frame from the child, described by `describe`.
    pub fn failed(context: &'static str, f: &channel::Failure, describe: String) -> SpawnError {
        SpawnError::Failed {
            context,
            message: describe,
            step: f.step,
            errno: f.errno,
        }
    }

    /// The errno of a process whose program could not be exec'd (not found, not
    /// executable): what docker's 127 and 126 exit codes tell apart.
    pub fn exec_errno(&self) -> Option<i32> {
        match self {
            SpawnError::Failed {
                step: channel::Step::ExecLookup | channel::Step::Exec,
                errno,
                ..
            } => Some(*errno),
            _ => None,
        }
    }
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

const INIT_FAILED: &str = "container init failed";

/// One rlimit to apply with prlimit, by the parent, before the init goes on.
#[derive(Debug, Clone)]
pub struct RlimitSpec {
    pub name: String,
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// What the parent does around the clone.
pub struct ParentSetup<'a> {
    pub cgroup: &'a Cgroup,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    pub time_offsets: Vec<(String, i64, u32)>,
    pub rlimits: Vec<RlimitSpec>,
    pub oom_score_adj: Option<i32>,
}

/// A live init that has reported `Ready`.
pub struct Spawned {
    pub pid: Pid,
    /// The parent's end of the channel: EOF once the init has exec'd.
    pub channel: Channel,
}

/// What the init asks of the parent during the handshake.
pub enum Event {
    /// Paused before pivot_root: run the create hooks.
    Pause,
    /// The seccomp notify fd, for linux.seccomp.listenerPath.
    SeccompFd(std::os::fd::OwnedFd),
}

/// The parent's handler for [`Event`]s.
pub type OnEvent<'a> = &'a mut dyn FnMut(Pid, Event) -> Result<(), SpawnError>;

/// Clones the init and takes it through the handshake up to `Ready`.
pub fn spawn(
    plan: &InitPlan,
    setup: &ParentSetup,
    on_event: OnEvent,
) -> Result<Spawned, SpawnError> {
    let (parent, child) = channel::pair(3 + plan.process.preserve_fds as i32)
        .map_err(|e| SpawnError::Channel(io(e)))?;
    for j in &plan.ns.parent_join {
        rustix::thread::move_into_link_name_space(j.fd.as_fd(), Some(j.kind)).map_err(|e| {
            SpawnError::JoinNamespace {
                label: j.label.clone(),
                source: io(e),
            }
        })?;
    }
    if plan.ns.new_time {
        berth_sys::process::unshare_namespaces(libc::CLONE_NEWTIME)
            .map_err(|e| SpawnError::TimeNamespace(io(e)))?;
        if !setup.time_offsets.is_empty() {
            let text: String = setup
                .time_offsets
                .iter()
                .map(|(clock, s, ns)| format!("{clock} {s} {ns}\n"))
                .collect();
            std::fs::write("/proc/self/timens_offsets", text).map_err(SpawnError::TimeNamespace)?;
        }
    }
    // Born in its cgroup where the kernel can (pure v2); else moved in by the handshake.
    let target = setup.cgroup.clone_target();
    let mut born_in_cgroup = false;
    let forked = match &target {
        Some(dir) => match clone_process_into(plan.ns.clone_flags, dir.as_fd()) {
            Ok(f) => {
                born_in_cgroup = true;
                Ok(f)
            }
            Err(e) => {
                tracing::debug!("clone into the cgroup refused ({e}); moving the init in");
                clone_process(plan.ns.clone_flags)
            }
        },
        None => clone_process(plan.ns.clone_flags),
    };
    let pid = match forked.map_err(|e| SpawnError::Clone(io(e)))? {
        Forked::Child => {
            drop(parent);
            // A host cgroup directory must not stay open in the container's init, even
            // close-on-exec: a `process.cwd` of /proc/self/fd/N would reach the host
            // through it (runc's CVE-2024-21626). close(2) is async-signal-safe.
            drop(target);
            init::run(plan, &child)
        }
        Forked::Parent(pid) => pid,
    };
    drop(target);
    drop(child);
    if born_in_cgroup {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), "init born in its cgroup");
    }
    // A failed handshake kills and reaps the init (the guard's drop).
    let guard = super::child::Child::new(pid);
    handshake(plan, setup, pid, &parent, on_event, born_in_cgroup)?;
    guard.disarm();
    Ok(Spawned {
        pid,
        channel: parent,
    })
}

fn handshake(
    plan: &InitPlan,
    setup: &ParentSetup,
    pid: Pid,
    chan: &Channel,
    on_event: OnEvent,
    born_in_cgroup: bool,
) -> Result<(), SpawnError> {
    if !born_in_cgroup {
        setup.cgroup.add_pid(pid.as_raw_nonzero().get())?;
    }
    if let Some(map) = &setup.uid_map {
        let file = format!("/proc/{}/uid_map", pid.as_raw_nonzero());
        std::fs::write(&file, map).map_err(|source| SpawnError::IdMap {
            field: "linux.uidMappings",
            file,
            source,
        })?;
    }
    if setup.gid_map.is_some() && !rustix::process::geteuid().is_root() {
        // An unprivileged writer may map its own gid only once setgroups is denied
        // (user_namespaces(7)).
        let file = format!("/proc/{}/setgroups", pid.as_raw_nonzero());
        std::fs::write(&file, "deny").map_err(|source| SpawnError::IdMap {
            field: "linux.gidMappings",
            file,
            source,
        })?;
    }
    if let Some(map) = &setup.gid_map {
        let file = format!("/proc/{}/gid_map", pid.as_raw_nonzero());
        std::fs::write(&file, map).map_err(|source| SpawnError::IdMap {
            field: "linux.gidMappings",
            file,
            source,
        })?;
    }
    apply_rlimits(pid, &setup.rlimits)?;
    if let Some(adj) = setup.oom_score_adj {
        apply_oom_score_adj(pid, adj)?;
    }
    chan.send(&Msg::Go)
        .map_err(|e| SpawnError::Channel(io(e)))?;
    let msg = loop {
        match chan.recv() {
            Ok(Some(Msg::Pause)) if plan.pause_for_hooks => {
                on_event(pid, Event::Pause)?;
                chan.send(&Msg::Go)
                    .map_err(|e| SpawnError::Channel(io(e)))?;
            }
            Ok(Some(Msg::SeccompFd(fd))) => on_event(pid, Event::SeccompFd(fd))?,
            other => break other,
        }
    };
    match msg {
        Ok(Some(Msg::Ready)) => Ok(()),
        Ok(Some(Msg::Failed(f))) => Err(SpawnError::failed(INIT_FAILED, &f, plan.describe(&f))),
        Ok(Some(Msg::Go | Msg::Pause | Msg::SeccompFd(_) | Msg::Pid(_))) | Err(_) => Err(
            SpawnError::Init("protocol error on the init channel".into()),
        ),
        Ok(None) => {
            let status = rustix::process::waitpid(Some(pid), WaitOptions::empty())
                .ok()
                .flatten()
                .map(|(_, s)| describe_status(s))
                .unwrap_or_else(|| "unknown status".into());
            Err(SpawnError::InitDied(status))
        }
    }
}

/// "exit status 3" / "killed by signal 9".
pub fn describe_status(s: rustix::process::WaitStatus) -> String {
    if let Some(code) = s.exit_status() {
        format!("exit status {code}")
    } else if let Some(sig) = s.terminating_signal() {
        format!("killed by signal {sig}")
    } else {
        "stopped".into()
    }
}

/// The shell convention runc follows: the exit code, or 128+N for a signal.
pub fn exit_code(s: rustix::process::WaitStatus) -> i32 {
    if let Some(code) = s.exit_status() {
        code
    } else if let Some(sig) = s.terminating_signal() {
        128 + sig
    } else {
        255
    }
}

/// After `Ready` in `run`: EOF means the init exec'd, a frame means exec failed.
pub fn wait_exec(plan: &InitPlan, chan: &Channel) -> Result<(), SpawnError> {
    match chan.recv() {
        Ok(None) => Ok(()),
        Ok(Some(Msg::Failed(f))) => Err(SpawnError::failed(INIT_FAILED, &f, plan.describe(&f))),
        _ => Err(SpawnError::Init(
            "protocol error on the init channel".into(),
        )),
    }
}

/// process.rlimits, set on `pid` with prlimit (the parent can, the child may lack the
/// capability once it has dropped it).
pub fn apply_rlimits(pid: Pid, rlimits: &[RlimitSpec]) -> Result<(), SpawnError> {
    for r in rlimits {
        let limit = |v: u64| if v == u64::MAX { None } else { Some(v) };
        let new = Rlimit {
            current: limit(r.soft),
            maximum: limit(r.hard),
        };
        if let Err(e) = rustix::process::prlimit(Some(pid), r.resource, new) {
            let problem = if e == Errno::PERM {
                let cur = rustix::process::getrlimit(r.resource).maximum;
                let cur = cur.map_or("unlimited".to_string(), |c| c.to_string());
                format!(
                    "hard limit {} is above this host's hard limit {cur}, and raising a hard limit needs CAP_SYS_RESOURCE{}",
                    r.hard,
                    if crate::capabilities::have(crate::capabilities::CAP_SYS_RESOURCE) { "" } else { ", which berth-oci does not have here" }
                )
            } else {
                io(e).to_string()
            };
            return Err(SpawnError::Rlimit {
                name: r.name.clone(),
                problem,
            });
        }
    }
    Ok(())
}

/// process.oomScoreAdj, written for `pid`.
pub fn apply_oom_score_adj(pid: Pid, adj: i32) -> Result<(), SpawnError> {
    let file = format!("/proc/{}/oom_score_adj", pid.as_raw_nonzero());
    if let Err(e) = std::fs::write(&file, adj.to_string()) {
        let problem = if e.kind() == std::io::ErrorKind::PermissionDenied && adj < 0 {
            format!("{adj}: lowering oom_score_adj needs CAP_SYS_RESOURCE, which berth-oci does not have here")
        } else {
            format!("{adj}: writing {file}: {e}")
        };
        return Err(SpawnError::OomScoreAdj { problem });
    }
    Ok(())
}
