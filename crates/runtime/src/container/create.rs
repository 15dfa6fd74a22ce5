//! The create path, top to bottom. Each step is a named function; everything that can
//! be checked is checked before anything is made; the [`Rollback`] guard undoes what
//! was made if a later step fails.

use super::Error;
use crate::cgroups::{Cgroup, Mode};
use crate::hooks::{self, Kind};
use crate::process::plan::{InitPlan, Namespaces};
use crate::process::spawn::{self, ParentSetup, RlimitSpec};
use crate::rootfs;
use crate::rootfs::CgroupMount;
use crate::state::{self, ContainerState, Phase, StateDocument, Status};
use oci_spec::runtime::Spec;
use rustix::fs::{Mode as FsMode, OFlags};
use rustix::process::{Resource, WaitOptions};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What happens after the init is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `create`: the init waits on the exec fifo for `start`.
    Create,
    /// `run --detach`: exec at once, return.
    RunDetached,
    /// `run`: exec at once, forward signals, wait, delete, return the exit code.
    RunForeground,
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub launch: Launch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The init's pid (waiting on the fifo, or running the program).
    Started { pid: i32 },
    /// Foreground `run`: the exit code (128+N for a signal).
    Exited { code: i32 },
}

pub fn create(opts: &CreateOptions) -> Result<Outcome, Error> {
    super::validate_id(&opts.id)?;
    let bundle = opts.bundle.canonicalize().map_err(|source| Error::Io {
        what: "bundle",
        path: opts.bundle.clone(),
        source,
    })?;
    let spec = crate::spec::load(&bundle)?;
    crate::spec::validate(&spec, &bundle)?;
    let ns = Namespaces::from_spec(&spec)?;
    if !ns.mount && spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        tracing::warn!("mounts: ignored: without a mount namespace of its own the container shares the runtime's, and berth-oci does not mount into the host's");
    }
    if ns
        .parent_join
        .iter()
        .any(|j| j.kind == rustix::thread::LinkNameSpaceType::ProcessID)
    {
        // Joining a pid namespace where processes already run (see crate::exe).
        crate::exe::run_from_sealed_copy()?;
    }
    check_terminal(&spec, opts)?;

    let mut rollback = Rollback::reserve(&opts.root, &opts.id)?;
    let cgroup = create_cgroup(&spec, &opts.id)?;
    rollback.cgroup = Some(cgroup.clone());
    let rootfs = rootfs::build(
        &spec,
        &bundle,
        &cgroup_mount(&cgroup, ns.new_cgroup),
        ns.new_user,
        opts.no_pivot,
    )?;
    let mut plan = InitPlan::build(&spec, ns, rootfs, opts.preserve_fds)?;
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        plan.process.seccomp = Some(crate::seccomp::compile_cached(
            s,
            Some(&opts.root.join(crate::seccomp::CACHE_DIR)),
        )?);
    }
    let hooks = spec.hooks().clone();
    let has = |kind: Kind| hooks.as_ref().is_some_and(|h| !kind.of(h).is_empty());
    plan.pause_for_hooks = CREATE_HOOKS.into_iter().any(has);
    // startContainer hooks run between setup and exec, so `run` then waits on the
    // fifo as `create` does and releases the init itself.
    let start_hooks = has(Kind::StartContainer);
    let floor = 3 + opts.preserve_fds as i32;
    if opts.launch == Launch::Create || start_hooks {
        plan.exec_fifo = Some(make_exec_fifo(&rollback.dir, floor)?);
    }
    if let Some(socket) = &opts.console_socket {
        plan.console_socket = Some(connect_console(socket, floor)?);
    }
    let setup = parent_setup(&spec, &cgroup)?;

    let mut st = ContainerState {
        id: opts.id.clone(),
        pid: 0,
        start_time: 0,
        phase: Phase::Creating,
        bundle: bundle.clone(),
        rootfs: plan.rootfs.rootfs.to_string_lossy().into_owned().into(),
        created: state::now_rfc3339(),
        owner_uid: berth_sys::process::getuid(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cgroup: Some(cgroup.clone()),
        hooks,
        process: spec.process().clone(),
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        personality: spec.linux().as_ref().and_then(|l| l.personality().clone()),
        memory_policy: spec
            .linux()
            .as_ref()
            .and_then(|l| l.memory_policy().clone()),
    };
    st.save(&opts.root)?;
    rollback.poststop = Some(st.clone());

    let signals = (opts.launch == Launch::RunForeground)
        .then(|| block_signals(floor))
        .transpose()?;
    let spawned = {
        let listener = plan
            .process
            .seccomp
            .as_ref()
            .and_then(|p| p.listener.clone());
        let mut on_event = |pid: rustix::process::Pid, event: spawn::Event| {
            let pid = pid.as_raw_nonzero().get();
            match event {
                spawn::Event::Pause => {
                    let doc = document(&st, pid, Status::Created);
                    for kind in CREATE_HOOKS {
                        hooks::run(kind, st.hooks.as_ref(), &doc, pid)?;
                    }
                }
                spawn::Event::SeccompFd(fd) => {
                    if let Some(l) = &listener {
                        let doc = document(&st, pid, Status::Creating);
                        crate::seccomp::send_to_listener(l, &doc, pid, fd)?;
                    }
                }
            }
            Ok(())
        };
        spawn::spawn(&plan, &setup, &mut on_event)?
    };
    rollback.pid = Some(spawned.pid.as_raw_nonzero().get());

    st.pid = spawned.pid.as_raw_nonzero().get();
    st.start_time = state::proc_start_time(st.pid).map(|(t, _)| t).unwrap_or(0);
    st.phase = if opts.launch == Launch::Create {
        Phase::Created
    } else {
        Phase::Started
    };
    st.save(&opts.root)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, st.pid)?;
    }
    if opts.launch != Launch::Create {
        if start_hooks {
            hooks::run(
                Kind::StartContainer,
                st.hooks.as_ref(),
                &document(&st, st.pid, Status::Created),
                st.pid,
            )?;
            if let Some(fifo) = &plan.exec_fifo {
                super::start::release(fifo, &rollback.dir.join(state::EXEC_FIFO))?;
            }
        }
        spawn::wait_exec(&plan, &spawned.channel)?;
    }
    rollback.commit();
    if opts.launch != Launch::Create {
        hooks::run_warn(
            Kind::Poststart,
            st.hooks.as_ref(),
            &document(&st, st.pid, Status::Running),
        );
    }

    match (opts.launch, signals) {
        (Launch::RunForeground, Some(sigfd)) => {
            let code = forward_until_exit(spawned.pid, &sigfd)?;
            super::delete::destroy(&opts.root, &st)?;
            Ok(Outcome::Exited { code })
        }
        _ => Ok(Outcome::Started { pid: st.pid }),
    }
}

/// The hooks create runs while the init is paused before pivot_root, in this order.
const CREATE_HOOKS: [Kind; 3] = [Kind::Prestart, Kind::CreateRuntime, Kind::CreateContainer];

/// The state given to hooks: runc's statuses (the create hooks see "created").
pub(super) fn document(st: &ContainerState, pid: i32, status: Status) -> StateDocument {
    let mut doc = st.document();
    doc.pid = pid;
    doc.status = status;
    doc
}

fn check_terminal(spec: &Spec, opts: &CreateOptions) -> Result<(), Error> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    match (terminal, &opts.console_socket) {
        (true, None) => Err(Error::Usage(
            "process.terminal is true: --console-socket is required (berth-oci does not proxy a terminal itself)".into(),
        )),
        (false, Some(_)) => Err(Error::Usage("--console-socket given but process.terminal is false".into())),
        _ => Ok(()),
    }
}

/// cgroupsPath, or /berth-oci/<id> when the spec leaves it out.
fn create_cgroup(spec: &Spec, id: &str) -> Result<Cgroup, Error> {
    let linux = spec.linux().as_ref();
    let path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("/berth-oci/{id}"));
    let resources = linux.and_then(|l| l.resources().as_ref());
    match Cgroup::create(&path, resources) {
        Ok(cg) => Ok(cg),
        // Rootless without a delegated cgroup: like runc, run without one when the
        // config asks for no limits; otherwise say what is missing.
        Err(crate::cgroups::CgroupError::Create { dir, source })
            if source.kind() == std::io::ErrorKind::PermissionDenied
                && !rustix::process::geteuid().is_root() =>
        {
            if resources.is_some_and(has_limits) {
                return Err(Error::Usage(format!(
                    "linux.resources: running as uid {} without write access to {} (cgroups are not delegated to this user); drop linux.resources, or delegate the cgroup (e.g. systemd's Delegate=yes) or run as root",
                    rustix::process::geteuid().as_raw(),
                    dir.display()
                )));
            }
            tracing::debug!("rootless: no cgroup ({} is not writable)", dir.display());
            Ok(Cgroup::none(&path))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether resources ask for any limit (an empty `resources` object, or only the
/// default device rules, limits nothing a missing cgroup could fail to apply).
fn has_limits(r: &oci_spec::runtime::LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
        || r.rdma().as_ref().is_some_and(|u| !u.is_empty())
}

fn cgroup_mount(cg: &Cgroup, cgroupns: bool) -> CgroupMount {
    match (cg.mode, cg.unified()) {
        (Mode::Unified, Some(d)) => CgroupMount::Unified {
            host_dir: d.path.clone(),
            cgroupns,
        },
        _ => CgroupMount::Legacy {
            hierarchies: cg
                .dirs
                .iter()
                .map(|d| (d.hierarchy.clone(), d.path.clone()))
                .collect(),
        },
    }
}

/// Moves an fd above the range `--preserve-fds` hands to the container.
pub(super) fn lift(fd: OwnedFd, floor: i32) -> Result<OwnedFd, Error> {
    rustix::io::fcntl_dupfd_cloexec(&fd, floor).map_err(|e| Error::Io {
        what: "duplicating an fd above --preserve-fds, fd",
        path: floor.to_string().into(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    })
}

/// The fifo the init blocks on until `start`. The init holds it read-write, so its read
/// waits for data rather than ending when no writer is there.
fn make_exec_fifo(dir: &Path, floor: i32) -> Result<OwnedFd, Error> {
    let path = dir.join(state::EXEC_FIFO);
    let err = |source: std::io::Error| Error::Io {
        what: "creating the exec fifo",
        path: path.clone(),
        source,
    };
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        FsMode::from_raw_mode(0o600),
        0,
    )
    .map_err(|e| err(std::io::Error::from_raw_os_error(e.raw_os_error())))?;
    let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, FsMode::empty())
        .map_err(|e| err(std::io::Error::from_raw_os_error(e.raw_os_error())))?;
    lift(fd, floor)
}

pub(super) fn connect_console(path: &Path, floor: i32) -> Result<OwnedFd, Error> {
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(|source| Error::Io {
        what: "connecting to --console-socket",
        path: path.to_path_buf(),
        source,
    })?;
    lift(stream.into(), floor)
}

/// uid/gid maps, rlimits and oom_score_adj, which the parent writes for the child.
fn parent_setup<'a>(spec: &Spec, cgroup: &'a Cgroup) -> Result<ParentSetup<'a>, Error> {
    let linux = spec.linux().as_ref();
    let map = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.as_ref().filter(|m| !m.is_empty()).map(|m| {
            m.iter()
                .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
                .collect::<String>()
        })
    };
    let process = spec.process().as_ref();
    Ok(ParentSetup {
        cgroup,
        uid_map: linux.and_then(|l| map(l.uid_mappings())),
        gid_map: linux.and_then(|l| map(l.gid_mappings())),
        time_offsets: time_offsets(spec),
        rlimits: rlimits(process)?,
        oom_score_adj: process.and_then(|p| p.oom_score_adj()),
    })
}

/// process.rlimits, checked by name.
pub(super) fn rlimits(
    process: Option<&oci_spec::runtime::Process>,
) -> Result<Vec<RlimitSpec>, Error> {
    let mut rlimits = Vec::new();
    for r in process
        .and_then(|p| p.rlimits().as_ref())
        .into_iter()
        .flatten()
    {
        let name = r.typ().to_string();
        let resource =
            rlimit_resource(&name).ok_or_else(|| crate::process::plan::PlanError::Invalid {
                field: "process.rlimits".into(),
                problem: format!("unknown rlimit type {name}"),
                rule: "config.md#posix-process",
            })?;
        rlimits.push(RlimitSpec {
            name,
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(rlimits)
}

fn time_offsets(spec: &Spec) -> Vec<(String, i64, u32)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .map(|t| {
            t.iter()
                .map(|(clock, o)| {
                    (
                        clock.clone(),
                        o.secs().unwrap_or(0),
                        o.nanosecs().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rlimit_resource(name: &str) -> Option<Resource> {
    Some(match name {
        "RLIMIT_CPU" => Resource::Cpu,
        "RLIMIT_FSIZE" => Resource::Fsize,
        "RLIMIT_DATA" => Resource::Data,
        "RLIMIT_STACK" => Resource::Stack,
        "RLIMIT_CORE" => Resource::Core,
        "RLIMIT_RSS" => Resource::Rss,
        "RLIMIT_NPROC" => Resource::Nproc,
        "RLIMIT_NOFILE" => Resource::Nofile,
        "RLIMIT_MEMLOCK" => Resource::Memlock,
        "RLIMIT_AS" => Resource::As,
        "RLIMIT_LOCKS" => Resource::Locks,
        "RLIMIT_SIGPENDING" => Resource::Sigpending,
        "RLIMIT_MSGQUEUE" => Resource::Msgqueue,
        "RLIMIT_NICE" => Resource::Nice,
        "RLIMIT_RTPRIO" => Resource::Rtprio,
        "RLIMIT_RTTIME" => Resource::Rttime,
        _ => return None,
    })
}

pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    // Written beside the target and renamed, so a reader never sees a partial pid.
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| Error::Io {
            what: "writing --pid-file",
            path: path.to_path_buf(),
            source,
        })
}

/// Blocks every signal and reads them from a signalfd instead, *before* the clone: a
/// SIGCHLD can then never slip between checking on the child and waiting for it.
pub(super) fn block_signals(floor: i32) -> Result<OwnedFd, Error> {
    let io = |e: berth_sys::Errno| Error::Io {
        what: "blocking signals for",
        path: "run".into(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    };
    let all = berth_sys::signal::SigSet::all();
    berth_sys::signal::set_mask(&all).map_err(io)?;
    lift(berth_sys::signal::signalfd(&all).map_err(io)?, floor)
}

/// Forwards every signal to `pid` until it exits; returns its exit code.
pub(super) fn forward_until_exit(pid: rustix::process::Pid, sigfd: &OwnedFd) -> Result<i32, Error> {
    loop {
        if let Ok(Some((_, status))) = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
            return Ok(spawn::exit_code(status));
        }
        let sig = match berth_sys::signal::read_signal(sigfd) {
            Ok(s) => s,
            Err(berth_sys::Errno::INTR) => continue,
            Err(e) => {
                return Err(Error::Io {
                    what: "reading signals for",
                    path: "run".into(),
                    source: std::io::Error::from_raw_os_error(e.raw_os_error()),
                })
            }
        };
        if sig != libc::SIGCHLD {
            let _ = berth_sys::process::kill(pid.as_raw_nonzero().get(), sig);
        }
    }
}

/// Undoes a half-made container: kills the init, removes its cgroup and state
/// directory. Disarmed by `commit` once the container exists in full.
struct Rollback {
    dir: PathBuf,
    cgroup: Option<Cgroup>,
    pid: Option<i32>,
    /// Once the state exists: a failed create goes on to the delete step, which runs
    /// the poststop hooks (runtime.md#lifecycle, steps 4-6 → 12).
    poststop: Option<ContainerState>,
    armed: bool,
}

impl Rollback {
    /// Claims the id: creating its directory is the atomic "id in use" check.
    fn reserve(root: &Path, id: &str) -> Result<Self, Error> {
        std::fs::create_dir_all(root).map_err(|source| Error::Io {
            what: "creating --root",
            path: root.into(),
            source,
        })?;
        let dir = state::dir(root, id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(Rollback {
                dir,
                cgroup: None,
                pid: None,
                poststop: None,
                armed: true,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists { id: id.into() })
            }
            Err(source) => Err(Error::Io {
                what: "creating the state directory",
                path: dir,
                source,
            }),
        }
    }

    fn commit(&mut self) {
        self.armed = false;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut errors = Vec::new();
        if let Some(pid) = self.pid {
            let _ = berth_sys::process::kill(pid, libc::SIGKILL);
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(p), WaitOptions::empty());
            }
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                errors.push(e.to_string());
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            errors.push(format!("removing {}: {e}", self.dir.display()));
        }
        for e in errors {
            tracing::warn!("rollback after a failed create: {e}");
        }
        if let Some(st) = &self.poststop {
            hooks::run_warn(
                Kind::Poststop,
                st.hooks.as_ref(),
                &document(st, 0, Status::Stopped),
            );
        }
    }
}
