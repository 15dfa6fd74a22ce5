//! Parent side: everything the init will need, resolved and allocated before the fork.

use crate::capabilities::{self, CapSets};
use crate::rootfs::{RootPath, RootfsPlan};
use berth_sys::exec::CStrArray;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use rustix::thread::LinkNameSpaceType;
use std::ffi::CString;
use std::os::fd::OwnedFd;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{field}: {problem} (runtime-spec {rule})")]
    Invalid {
        field: String,
        problem: String,
        rule: &'static str,
    },
    #[error("{field}: cannot open namespace {path}: {source}")]
    Namespace {
        field: String,
        path: String,
        source: std::io::Error,
    },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>, rule: &'static str) -> PlanError {
    PlanError::Invalid {
        field: field.into(),
        problem: problem.into(),
        rule,
    }
}

fn cstring(field: &str, s: &str) -> Result<CString, PlanError> {
    CString::new(s).map_err(|_| invalid(field, "contains a NUL byte", "config.md"))
}

/// A namespace joined by path.
#[derive(Debug)]
pub struct JoinNs {
    pub fd: OwnedFd,
    pub kind: LinkNameSpaceType,
    pub label: String,
}

/// Namespaces: what the clone creates, what the parent joins before cloning (pid and
/// time apply to children only), and what the child joins or unshares itself.
#[derive(Debug, Default)]
pub struct Namespaces {
    pub clone_flags: u64,
    pub parent_join: Vec<JoinNs>,
    pub child_join: Vec<JoinNs>,
    pub new_user: bool,
    pub new_cgroup: bool,
    pub new_time: bool,
    /// The config lists a mount namespace (new or joined). Without one the container
    /// inherits the runtime's (config-linux.md#namespaces): berth then mounts nothing
    /// (that would change the host's view) and only chroots into root.path.
    pub mount: bool,
}

impl Namespaces {
    pub fn from_spec(spec: &Spec) -> Result<Self, PlanError> {
        let mut ns = Namespaces::default();
        let list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for (i, n) in list.iter().enumerate() {
            let (flag, kind) = match n.typ() {
                LinuxNamespaceType::Mount => (libc::CLONE_NEWNS, LinkNameSpaceType::Mount),
                LinuxNamespaceType::Cgroup => {
                    (libc::CLONE_NEWCGROUP, LinkNameSpaceType::ControlGroup)
                }
                LinuxNamespaceType::Uts => (
                    libc::CLONE_NEWUTS,
                    LinkNameSpaceType::HostNameAndNISDomainName,
                ),
                LinuxNamespaceType::Ipc => (
                    libc::CLONE_NEWIPC,
                    LinkNameSpaceType::InterProcessCommunication,
                ),
                LinuxNamespaceType::User => (libc::CLONE_NEWUSER, LinkNameSpaceType::User),
                LinuxNamespaceType::Pid => (libc::CLONE_NEWPID, LinkNameSpaceType::ProcessID),
                LinuxNamespaceType::Network => (libc::CLONE_NEWNET, LinkNameSpaceType::Network),
                LinuxNamespaceType::Time => (libc::CLONE_NEWTIME, LinkNameSpaceType::Time),
            };
            let field = format!("linux.namespaces[{i}]");
            if n.typ() == LinuxNamespaceType::Mount {
                ns.mount = true;
            }
            match n.path() {
                None => match n.typ() {
                    // The cgroup namespace must be created once the init is in its cgroup.
                    LinuxNamespaceType::Cgroup => ns.new_cgroup = true,
                    // CLONE_NEWTIME shares clone(2)'s exit-signal bits; the parent unshares it.
                    LinuxNamespaceType::Time => ns.new_time = true,
                    LinuxNamespaceType::User => {
                        ns.new_user = true;
                        ns.clone_flags |= flag as u64;
                    }
                    _ => ns.clone_flags |= flag as u64,
                },
                Some(path) => {
                    let fd = std::fs::File::open(path).map_err(|source| PlanError::Namespace {
                        field: field.clone(),
                        path: path.display().to_string(),
                        source,
                    })?;
                    let join = JoinNs {
                        fd: fd.into(),
                        kind,
                        label: format!("{field} ({} {})", n.typ(), path.display()),
                    };
                    match n.typ() {
                        LinuxNamespaceType::Pid | LinuxNamespaceType::Time => {
                            ns.parent_join.push(join)
                        }
                        LinuxNamespaceType::User => ns.child_join.insert(0, join),
                        _ => ns.child_join.push(join),
                    }
                }
            }
        }
        if ns.new_user && !ns.child_join.is_empty() {
            return Err(invalid(
                "linux.namespaces",
                "joining namespaces by path together with a new user namespace is not supported by this berth-oci build",
                "config-linux.md#namespaces",
            ));
        }
        Ok(ns)
    }
}

#[derive(Debug)]
pub struct InitPlan {
    pub ns: Namespaces,
    pub hostname: Option<Vec<u8>>,
    pub domainname: Option<Vec<u8>>,
    pub rootfs: RootfsPlan,
    pub sysctls: Vec<(RootPath, CString, String)>,
    pub console_socket: Option<OwnedFd>,
    pub exec_fifo: Option<OwnedFd>,
    pub process: ProcessPlan,
    /// Stop before pivot_root for the create hooks (see [`super::channel`]).
    pub pause_for_hooks: bool,
}

/// The process to exec and its credentials: the init's (from config.json's `process`)
/// or one started by `exec` (the same shape, from `--process` or the flags).
#[derive(Debug)]
pub struct ProcessPlan {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<rustix::fs::Gid>,
    pub umask: u32,
    pub caps: CapSets,
    pub last_cap: u32,
    pub no_new_privs: bool,
    pub cwd: CString,
    pub candidates: Vec<CString>,
    pub argv: CStrArray,
    pub envp: CStrArray,
    pub preserve_fds: u32,
    pub seccomp: Option<crate::seccomp::Program>,
    /// The process is in a user namespace whose gid map the runtime wrote, where
    /// setgroups is only needed (and only allowed) for explicit additionalGids.
    pub in_new_userns: bool,
    pub attrs: super::attrs::ProcessAttrs,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ProcessPlan {
    pub fn build(
        process: &Process,
        preserve_fds: u32,
        in_new_userns: bool,
    ) -> Result<Self, PlanError> {
        let args = process.args().clone().unwrap_or_default();
        let env = process.env().clone().unwrap_or_default();
        let argv = args
            .iter()
            .map(|a| cstring("process.args", a))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .iter()
            .map(|e| cstring("process.env", e))
            .collect::<Result<Vec<_>, _>>()?;
        let path = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let arg0 = args
            .first()
            .ok_or_else(|| invalid("process.args", "empty", "config.md#process"))?;
        let candidates = if arg0.contains('/') {
            vec![cstring("process.args[0]", arg0)?]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| {
                    cstring(
                        "process.args[0]",
                        &format!("{}/{arg0}", d.trim_end_matches('/')),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let user = process.user();
        let mut caps = process
            .capabilities()
            .as_ref()
            .map(CapSets::from_spec)
            .unwrap_or_default();
        // The kernel raises an ambient capability only if it is permitted and inheritable;
        // runc drops the others with a warning (its own default spec relies on that).
        let dropped = caps.ambient & !(caps.permitted & caps.inheritable);
        if dropped != 0 {
            let names: Vec<&str> = (0..64)
                .filter(|b| dropped & (1u64 << b) != 0)
                .filter_map(|b| capabilities::NAMES.get(b))
                .copied()
                .collect();
            tracing::warn!("process.capabilities.ambient: ignoring {names:?}: not in both permitted and inheritable");
            caps.ambient &= caps.permitted & caps.inheritable;
        }
        Ok(ProcessPlan {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user
                .additional_gids()
                .iter()
                .flatten()
                .map(|g| rustix::fs::Gid::from_raw(*g))
                .collect(),
            umask: user.umask().unwrap_or(0o022),
            caps,
            last_cap: capabilities::last_cap(),
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            cwd: cstring("process.cwd", &process.cwd().to_string_lossy())?,
            candidates,
            argv: CStrArray::new(argv),
            envp: CStrArray::new(envp),
            preserve_fds,
            seccomp: None,
            in_new_userns,
            attrs: Default::default(),
        })
    }

    /// What a failed step of the process's setup was doing, with the errno.
    pub fn describe(&self, f: &super::channel::Failure) -> String {
        use super::channel::Step::*;
        let i = f.index as usize;
        let what = match f.step {
            Setsid => "starting a new session".into(),
            Stdio => "making the console the process's stdio".into(),
            BoundingSet => format!(
                "dropping capability {} from the bounding set",
                crate::capabilities::NAMES.get(i).copied().unwrap_or("?")
            ),
            Setgroups => "setting process.user.additionalGids".into(),
            Setgid => format!("setting process.user.gid {}", self.gid),
            Setuid => format!("setting process.user.uid {}", self.uid),
            Capset => "setting process.capabilities (effective, permitted, inheritable)".into(),
            Ambient => format!(
                "raising ambient capability {}",
                crate::capabilities::NAMES.get(i).copied().unwrap_or("?")
            ),
            Chdir => format!("changing to process.cwd {:?}", self.cwd),
            NoNewPrivs => "setting noNewPrivileges".into(),
            Fds => "closing inherited file descriptors".into(),
            ExecLookup => format!(
                "exec: {:?}: executable file not found in $PATH or not executable",
                self.program()
            ),
            ExecFifo => "waiting on the exec fifo for start".into(),
            Seccomp => "installing the seccomp filter (linux.seccomp)".into(),
            Exec => format!("exec {:?}", self.program()),
            JoinNamespace => "joining the container's namespaces".into(),
            Personality => "setting linux.personality".into(),
            IoPriority => "setting process.ioPriority".into(),
            Scheduler => "setting process.scheduler (sched_setattr)".into(),
            Lsm => "setting the LSM label for exec (process.apparmorProfile / selinuxLabel)".into(),
            CpuAffinity => "setting process.execCPUAffinity.final".into(),
            MemoryPolicy => "setting linux.memoryPolicy (set_mempolicy)".into(),
            Console => "opening a pty in the container's devpts".into(),
            ConsoleSend => "sending the pty master to --console-socket".into(),
            s => format!("{s:?}"),
        };
        with_errno(what, f)
    }

    /// The program's name, for messages.
    pub fn program(&self) -> String {
        self.argv
            .strings()
            .first()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl InitPlan {
    pub fn build(
        spec: &Spec,
        ns: Namespaces,
        rootfs: RootfsPlan,
        preserve_fds: u32,
    ) -> Result<Self, PlanError> {
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| invalid("process", "missing", "config.md#process"))?;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| invalid("linux", "missing", "config-linux.md"))?;
        let mut sysctls = Vec::new();
        for (k, v) in linux.sysctl().iter().flatten() {
            let field = format!("linux.sysctl[{k:?}]");
            let p =
                RootPath::new(&format!("/proc/sys/{}", k.replace('.', "/"))).ok_or_else(|| {
                    invalid(
                        field.clone(),
                        "contains a NUL byte",
                        "config-linux.md#sysctl",
                    )
                })?;
            sysctls.push((p, cstring(&field, v)?, field));
        }
        let hostname = spec
            .hostname()
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.as_bytes().to_vec());
        let domainname = spec
            .domainname()
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.as_bytes().to_vec());
        let mut process = ProcessPlan::build(process, preserve_fds, ns.new_user)?;
        process.attrs = super::attrs::ProcessAttrs::build(
            spec.process().as_ref().expect("checked above"),
            linux.personality().as_ref(),
            false,
        )?;
        process.attrs.memory_policy = linux
            .memory_policy()
            .as_ref()
            .map(super::attrs::memory_policy)
            .transpose()?;
        Ok(InitPlan {
            ns,
            hostname,
            domainname,
            rootfs,
            sysctls,
            console_socket: None,
            exec_fifo: None,
            process,
            pause_for_hooks: false,
        })
    }

    /// The label of the item a failure's index refers to, for the parent's message.
    pub fn describe(&self, f: &super::channel::Failure) -> String {
        use super::channel::Step::*;
        let i = f.index as usize;
        let item = |label: Option<&String>| label.cloned().unwrap_or_else(|| format!("item {i}"));
        let what = match f.step {
            WaitParent => "waiting for the runtime".to_string(),
            JoinNamespace => format!(
                "joining {}",
                item(self.ns.child_join.get(i).map(|j| &j.label))
            ),
            UnshareCgroupNs => "creating the cgroup namespace".into(),
            BecomeRoot => "becoming root in the new user namespace".into(),
            Hostname => "setting the hostname".into(),
            Domainname => "setting the domainname".into(),
            RootPropagation => "making / a downstream mount (rootfsPropagation)".into(),
            RootfsBind => format!(
                "bind-mounting the rootfs {:?} onto itself",
                self.rootfs.rootfs
            ),
            MountTarget => format!(
                "{}: resolving the destination inside the rootfs",
                item(self.rootfs.mounts.get(i).map(|m| &m.label))
            ),
            MountSource => format!(
                "{}: opening the source",
                item(self.rootfs.mounts.get(i).map(|m| &m.label))
            ),
            MountCreate => format!(
                "{}: creating the filesystem",
                item(self.rootfs.mounts.get(i).map(|m| &m.label))
            ),
            MountAttach => format!(
                "{}: attaching the mount",
                item(self.rootfs.mounts.get(i).map(|m| &m.label))
            ),
            MountAttr => format!(
                "{}: setting mount flags or propagation",
                item(self.rootfs.mounts.get(i).map(|m| &m.label))
            ),
            Device => format!(
                "creating {}",
                item(self.rootfs.devices.get(i).map(|d| &d.label))
            ),
            DevSymlink => format!(
                "creating /dev symlink {}",
                item(self.rootfs.dev_symlinks.get(i).map(|d| &d.1.display))
            ),
            Cwd => format!("creating process.cwd {:?}", self.rootfs.cwd.display),
            Sysctl => format!(
                "writing {} (must be a file on the container's procfs)",
                item(self.sysctls.get(i).map(|s| &s.2))
            ),
            Console => {
                "setting up the console (/dev/pts/ptmx of the container's devpts, /dev/console)"
                    .into()
            }
            ConsoleSend => "sending the pty master to --console-socket".into(),
            MaskPath => format!(
                "masking linux.maskedPaths[{i}] {}",
                item(self.rootfs.masked.get(i).map(|p| &p.display))
            ),
            ReadonlyPath => format!(
                "making linux.readonlyPaths[{i}] {} read-only",
                item(self.rootfs.readonly.get(i).map(|p| &p.display))
            ),
            PivotRoot => {
                if self.rootfs.no_pivot {
                    "moving the rootfs to / and chroot (--no-pivot)".into()
                } else {
                    "pivot_root into the rootfs".into()
                }
            }
            ReadonlyRoot => "making the root read-only (root.readonly)".into(),
            FinalPropagation => "applying linux.rootfsPropagation".into(),
            _ => return self.process.describe(f),
        };
        with_errno(what, f)
    }
}

fn with_errno(what: String, f: &super::channel::Failure) -> String {
    let errno = std::io::Error::from_raw_os_error(f.errno);
    let detail = f.detail();
    if detail.is_empty() {
        format!("{what}: {errno}")
    } else {
        format!("{what}: {errno}: {detail}")
    }
}
