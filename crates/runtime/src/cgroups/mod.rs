//! cgroups v1, v2 and hybrid, detected at run time. A [`Cgroup`] is the set of
//! directories one container owns (one per v1 hierarchy, plus the unified one), created
//! by the runtime before the clone, written with the spec's resources, and removed on
//! delete. It is stored in the container's state so later invocations find it.
//!
//! Managers are chosen by [`Mode`], explicitly; there is no registration by side effect.

mod devices;
mod hierarchy;
pub mod stats;
mod v1;
mod v2;

pub use devices::{device_rules, DeviceRule};
pub use hierarchy::Mode;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroups: cannot create {dir}: {source}")]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{field}: writing {value:?} to {file}: {source}")]
    Write {
        field: String,
        file: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("{field}: {problem}")]
    Unsupported { field: String, problem: String },
    #[error("cgroups: adding pid {pid} to {file}: {source}")]
    AddPid {
        pid: i32,
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroups: removing {dir}: {source}")]
    Remove {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("linux.resources.devices: loading the cgroup v2 device program: {errno}: {log}")]
    DeviceProgram { errno: std::io::Error, log: String },
    #[error("cgroups: {0}")]
    Discover(String),
}

/// One directory of the container's cgroup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dir {
    /// The hierarchy's mount directory name under /sys/fs/cgroup ("memory", "unified",
    /// "" for a pure v2 mount).
    pub hierarchy: String,
    /// Controllers this hierarchy carries.
    pub controllers: Vec<String>,
    pub path: PathBuf,
    pub v2: bool,
    /// Whether berth created the leaf (only then does delete remove it).
    pub created: bool,
}

/// The container's cgroup across every mounted hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cgroup {
    pub mode: Mode,
    /// cgroupsPath as resolved (absolute within each hierarchy).
    pub path: String,
    pub dirs: Vec<Dir>,
}

impl Cgroup {
    /// Creates the directories for `path` (absolute, or relative to pid 1's cgroup as
    /// runc does) and applies `resources`. On error nothing it created is left behind.
    pub fn create(path: &str, resources: Option<&LinuxResources>) -> Result<Cgroup, CgroupError> {
        let hierarchies = hierarchy::discover()?;
        let mode = hierarchy::mode(&hierarchies);
        let mut cg = Cgroup {
            mode,
            path: path.to_string(),
            dirs: Vec::new(),
        };
        for h in &hierarchies {
            let rel = hierarchy::resolve_path(path, h)?;
            let dir = h.mount.join(rel.trim_start_matches('/'));
            let created = !dir.exists();
            if h.v2 {
                v2::enable_controllers(&h.mount, &dir)?;
            }
            if let Err(source) = std::fs::create_dir_all(&dir) {
                let _ = cg.destroy();
                return Err(CgroupError::Create { dir, source });
            }
            if !h.v2 && h.controllers.iter().any(|c| c == "cpuset") {
                v1::init_cpuset(&h.mount, &dir);
            }
            cg.dirs.push(Dir {
                hierarchy: h.name.clone(),
                controllers: h.controllers.clone(),
                path: dir,
                v2: h.v2,
                created,
            });
        }
        if let Some(r) = resources {
            if let Err(e) = cg.apply(r) {
                let _ = cg.destroy();
                return Err(e);
            }
        }
        Ok(cg)
    }

    /// No cgroup at all (rootless without delegation): every operation is a no-op.
    pub fn none(path: &str) -> Cgroup {
        Cgroup {
            mode: hierarchy::Mode::detect(),
            path: path.to_string(),
            dirs: Vec::new(),
        }
    }

    /// The directory that carries `controller`, and whether it is v2.
    pub fn dir_for(&self, controller: &str) -> Option<&Dir> {
        self.dirs
            .iter()
            .find(|d| !d.v2 && d.controllers.iter().any(|c| c == controller))
            .or_else(|| {
                self.dirs
                    .iter()
                    .find(|d| d.v2 && d.controllers.iter().any(|c| c == controller))
            })
    }

    pub fn unified(&self) -> Option<&Dir> {
        self.dirs.iter().find(|d| d.v2)
    }

    /// On a pure cgroup v2 host, the container's one directory, opened for a clone
    /// into it (CLONE_INTO_CGROUP). None elsewhere: v1 and hybrid hierarchies need
    /// their `cgroup.procs` writes in any case.
    pub fn clone_target(&self) -> Option<std::fs::File> {
        match (self.mode, self.dirs.as_slice()) {
            (Mode::Unified, [d]) if d.v2 => {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                    .open(&d.path)
                    .ok()
            }
            _ => None,
        }
    }

    /// Writes the spec's resources, each through the hierarchy that carries it.
    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        self.write_resources(r, true)
    }

    /// `update`: the resources given, live. Devices are left alone (runc's update
    /// never changes them, and a default rule set must not replace the container's).
    pub fn update(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        self.write_resources(r, false)
    }

    /// Freezes or thaws every process (v1 freezer, else v2 cgroup.freeze), waiting
    /// until the kernel reports the new state.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, v1) = self.freezer().ok_or_else(|| CgroupError::Unsupported {
            field: "pause".into(),
            problem: "no freezer: neither the v1 freezer controller nor cgroup v2 is mounted"
                .into(),
        })?;
        let (file, value, check_file) = match (v1, frozen) {
            (true, true) => ("freezer.state", "FROZEN", "freezer.state"),
            (true, false) => ("freezer.state", "THAWED", "freezer.state"),
            (false, true) => ("cgroup.freeze", "1", "cgroup.events"),
            (false, false) => ("cgroup.freeze", "0", "cgroup.events"),
        };
        let done = |s: &str| {
            if v1 {
                s.trim() == value
            } else {
                s.lines().any(|l| l.strip_prefix("frozen ") == Some(value))
            }
        };
        let field = if frozen { "pause" } else { "resume" };
        let mut delay = std::time::Duration::from_millis(1);
        for _ in 0..20 {
            // v1 may report FREEZING while a task resists; writing again retries it.
            write(&dir.path, file, value, field)?;
            if std::fs::read_to_string(dir.path.join(check_file)).is_ok_and(|s| done(&s)) {
                return Ok(());
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(std::time::Duration::from_millis(100));
        }
        Err(CgroupError::Unsupported {
            field: field.into(),
            problem: format!(
                "{} did not reach {value} in time",
                dir.path.join(check_file).display()
            ),
        })
    }

    /// The directory that freezes the container, and whether it is a v1 freezer (which
    /// wins on hybrid hosts) rather than v2's cgroup.freeze.
    fn freezer(&self) -> Option<(&Dir, bool)> {
        match self.dir_for("freezer").filter(|d| !d.v2) {
            Some(d) => Some((d, true)),
            None => self.unified().map(|d| (d, false)),
        }
    }

    /// Whether the container is frozen (paused).
    pub fn is_frozen(&self) -> bool {
        match self.freezer() {
            Some((d, true)) => std::fs::read_to_string(d.path.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN"),
            Some((d, false)) => {
                std::fs::read_to_string(d.path.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
            None => false,
        }
    }

    fn write_resources(&self, r: &LinuxResources, devices: bool) -> Result<(), CgroupError> {
        let need = |controller: &str, field: &str| {
            self.dir_for(controller)
                .ok_or_else(|| CgroupError::Unsupported {
                    field: field.to_string(),
                    problem: format!(
                        "the {controller} cgroup controller is not available on this host"
                    ),
                })
        };
        if let Some(m) = r.memory() {
            let d = need("memory", "linux.resources.memory")?;
            if d.v2 {
                v2::memory(&d.path, m)?
            } else {
                v1::memory(&d.path, m)?
            }
        }
        if let Some(c) = r.cpu() {
            if c.shares().is_some()
                || c.quota().is_some()
                || c.period().is_some()
                || c.idle().is_some()
                || c.realtime_runtime().is_some()
                || c.realtime_period().is_some()
                || c.burst().is_some()
            {
                let d = need("cpu", "linux.resources.cpu")?;
                if d.v2 {
                    v2::cpu(&d.path, c)?
                } else {
                    v1::cpu(&d.path, c)?
                }
            }
            if c.cpus().is_some() || c.mems().is_some() {
                let d = need("cpuset", "linux.resources.cpu.cpus")?;
                v1::cpuset(&d.path, c)?;
            }
        }
        if let Some(p) = r.pids() {
            let d = need("pids", "linux.resources.pids")?;
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".to_string()
            };
            write(&d.path, "pids.max", &v, "linux.resources.pids.limit")?;
        }
        if let Some(b) = r.block_io() {
            match self.dir_for("blkio").or_else(|| self.dir_for("io")) {
                Some(d) if d.v2 => v2::io(&d.path, b)?,
                Some(d) => v1::blkio(&d.path, b)?,
                None => {
                    return Err(CgroupError::Unsupported {
                        field: "linux.resources.blockIO".into(),
                        problem: "neither the blkio (v1) nor the io (v2) controller is available"
                            .into(),
                    })
                }
            }
        }
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let d = need("hugetlb", "linux.resources.hugepageLimits")?;
            let field = format!("linux.resources.hugepageLimits[{i}]");
            let (file, value) = if d.v2 {
                (
                    format!("hugetlb.{}.max", h.page_size()),
                    h.limit().to_string(),
                )
            } else {
                (
                    format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                    h.limit().to_string(),
                )
            };
            write(&d.path, &file, &value, &field)?;
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() {
                let d = need("net_cls", "linux.resources.network.classID")?;
                write(
                    &d.path,
                    "net_cls.classid",
                    &n.class_id().unwrap_or_default().to_string(),
                    "linux.resources.network.classID",
                )?;
            }
            for p in n.priorities().iter().flatten() {
                let d = need("net_prio", "linux.resources.network.priorities")?;
                write(
                    &d.path,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                    "linux.resources.network.priorities",
                )?;
            }
        }
        if devices {
            let rules = device_rules(r.devices().as_deref().unwrap_or_default());
            match self.dir_for("devices") {
                Some(d) if !d.v2 => v1::devices(&d.path, &rules)?,
                _ => {
                    if let (Mode::Unified, Some(d)) = (self.mode, self.unified()) {
                        devices::attach_program(&d.path, &rules)?;
                    }
                }
            }
        }
        if let Some(u) = r.unified() {
            if !u.is_empty() {
                let d = self.unified().ok_or_else(|| CgroupError::Unsupported {
                    field: "linux.resources.unified".into(),
                    problem: "needs cgroup v2, and this host mounts only v1 hierarchies".into(),
                })?;
                for (k, v) in u {
                    if k.contains('/') || k.starts_with('.') {
                        return Err(CgroupError::Unsupported {
                            field: format!("linux.resources.unified[{k:?}]"),
                            problem: "not a cgroup interface file name".into(),
                        });
                    }
                    write(&d.path, k, v, &format!("linux.resources.unified[{k:?}]"))?;
                }
            }
        }
        Ok(())
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            add_pid_to(&d.path, pid)?;
        }
        Ok(())
    }

    /// `exec --cgroup`: adds `pid` to existing sub-cgroups of the container's, given as
    /// runc does, `[CONTROLLER[,CONTROLLER]:]PATH` (without controllers: every
    /// hierarchy). Hierarchies no entry names get the container's own cgroup.
    pub fn add_pid_in(&self, pid: i32, subs: &[String]) -> Result<(), CgroupError> {
        if subs.is_empty() {
            return self.add_pid(pid);
        }
        let mut chosen: Vec<(&Dir, Option<&str>)> = self.dirs.iter().map(|d| (d, None)).collect();
        for s in subs {
            let (controllers, path) = match s.split_once(':') {
                Some((c, p)) => (Some(c.split(',').collect::<Vec<_>>()), p),
                None => (None, s.as_str()),
            };
            // Relative to the container's cgroup; "/" (as runc accepts) is that cgroup.
            let path = path.trim_start_matches('/');
            if std::path::Path::new(path)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(CgroupError::Unsupported {
                    field: format!("exec --cgroup {s}"),
                    problem: "the path must be inside the container's cgroup (no \"..\")".into(),
                });
            }
            let mut matched = false;
            for (d, sel) in chosen.iter_mut() {
                let hit = match &controllers {
                    None => true,
                    Some(cs) => cs.iter().any(|c| d.controllers.iter().any(|dc| dc == c)),
                };
                if hit {
                    *sel = Some(path);
                    matched = true;
                }
            }
            if !matched {
                return Err(CgroupError::Unsupported {
                    field: format!("exec --cgroup {s}"),
                    problem: "no cgroup hierarchy of the container has those controllers".into(),
                });
            }
        }
        for (d, sel) in chosen {
            let dir = match sel {
                Some(p) => d.path.join(p),
                None => d.path.clone(),
            };
            if !dir.is_dir() {
                return Err(CgroupError::Unsupported {
                    field: "exec --cgroup".into(),
                    problem: format!(
                        "{} does not exist (runc, too, runs only in existing sub-cgroups)",
                        dir.display()
                    ),
                });
            }
            add_pid_to(&dir, pid)?;
        }
        Ok(())
    }

    /// Every pid in the container's cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = self
            .dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == "pids"))
            .or(self.dirs.first());
        dir.and_then(|d| std::fs::read_to_string(d.path.join("cgroup.procs")).ok())
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Sends `signal` to every process in the cgroup.
    pub fn signal_all(&self, signal: i32) {
        for pid in self.pids() {
            let _ = berth_sys::process::kill(pid, signal);
        }
    }

    /// Kills what is left and removes the directories berth created. Best-effort:
    /// tries every directory and returns the first error.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first = None;
        self.signal_all(libc::SIGKILL);
        for d in self.dirs.iter().filter(|d| d.created) {
            if let Err(e) = remove_dir(&d.path) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

fn add_pid_to(dir: &Path, pid: i32) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.procs");
    std::fs::write(&file, pid.to_string()).map_err(|source| CgroupError::AddPid {
        pid,
        file,
        source,
    })
}

/// rmdir, retrying while the last processes finish exiting (EBUSY). Each retry kills
/// what the cgroup holds again: a process can join after the first kill (a create that
/// was still cloning when a `delete --force` came, or a fork of a dying process).
fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut delay = std::time::Duration::from_millis(1);
    for _ in 0..12 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = berth_sys::process::kill(pid, libc::SIGKILL);
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    dir: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    std::fs::remove_dir(dir).map_err(|source| CgroupError::Remove {
        dir: dir.to_path_buf(),
        source,
    })
}

pub(crate) fn write(dir: &Path, file: &str, value: &str, field: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|source| CgroupError::Write {
        field: field.to_string(),
        file: path,
        value: value.to_string(),
        source,
    })
}
