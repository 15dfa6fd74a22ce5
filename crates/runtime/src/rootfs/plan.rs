//! Parent side: turns the spec's root, mounts, devices, masked and read-only paths
//! into a plan the child can execute without allocating or parsing.

use super::options::{classify, Opt};
use super::RootPath;
use berth_sys::mount::Attr;
use oci_spec::runtime::{LinuxDeviceType, Spec};
use std::ffi::CString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{field}: {problem} (runtime-spec {rule})")]
    Invalid {
        field: String,
        problem: String,
        rule: &'static str,
    },
    #[error("{field}: bind source {path}: {source}")]
    Source {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(field: String, problem: impl Into<String>, rule: &'static str) -> PlanError {
    PlanError::Invalid {
        field,
        problem: problem.into(),
        rule,
    }
}

/// How the container sees its cgroups at a `cgroup` mount.
#[derive(Debug, Clone)]
pub enum CgroupMount {
    /// cgroup v2: mount cgroup2 itself inside a cgroup namespace, else bind the
    /// container's own cgroup directory.
    Unified { host_dir: PathBuf, cgroupns: bool },
    /// v1 / hybrid: a tmpfs with one bind of the container's directory per hierarchy.
    Legacy { hierarchies: Vec<(String, PathBuf)> },
}

#[derive(Debug)]
pub enum MountKind {
    Bind {
        source: CString,
        recursive: bool,
    },
    Fs {
        fstype: CString,
        source: CString,
        flags: Vec<CString>,
        params: Vec<(CString, CString)>,
    },
    /// Only change the attributes of the mount already at the destination.
    SetAttr,
}

#[derive(Debug)]
pub struct MountPlan {
    /// "mounts[3] (devpts on /dev/pts)", for errors.
    pub label: String,
    pub dest: RootPath,
    /// The destination is a file (bind of a file), not a directory.
    pub file: bool,
    pub kind: MountKind,
    pub attr: Attr,
    pub recursive_attr: Attr,
}

#[derive(Debug)]
pub struct DevicePlan {
    pub label: String,
    pub path: RootPath,
    /// S_IFCHR / S_IFBLK / S_IFIFO plus permission bits.
    pub mode: u32,
    pub dev: u64,
    pub uid: u32,
    pub gid: u32,
    /// Host path to bind when mknod is not allowed (user namespaces).
    pub bind_from: Option<CString>,
}

#[derive(Debug)]
pub struct RootfsPlan {
    pub rootfs: CString,
    /// Propagation for "/" before anything is mounted (rslave unless the spec says).
    pub initial_propagation: u64,
    /// rootfsPropagation, applied to the new root after pivot_root.
    pub final_propagation: Option<u64>,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    pub dev_symlinks: Vec<(CString, RootPath)>,
    pub cwd: RootPath,
    pub masked: Vec<RootPath>,
    pub readonly: Vec<RootPath>,
    pub readonly_root: bool,
    pub no_pivot: bool,
    /// Where the pty master comes from and /dev/console goes, when process.terminal.
    pub console: Option<(RootPath, RootPath)>,
}

fn cstring(field: &str, s: &str) -> Result<CString, PlanError> {
    CString::new(s).map_err(|_| invalid(field.to_string(), "contains a NUL byte", "config.md"))
}

fn root_path(field: &str, s: &str) -> Result<RootPath, PlanError> {
    RootPath::new(s).ok_or_else(|| invalid(field.to_string(), "contains a NUL byte", "config.md"))
}

const DEFAULT_DEVICES: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Builds the plan. `userns`: the init runs in a new user namespace (no mknod).
pub fn build(
    spec: &Spec,
    bundle: &Path,
    cgroup: &CgroupMount,
    userns: bool,
    no_pivot: bool,
) -> Result<RootfsPlan, PlanError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root".into(), "missing", "config.md#root"))?;
    let rootfs = bundle.join(root.path());
    let rootfs = rootfs.canonicalize().map_err(|source| PlanError::Source {
        field: "root.path".into(),
        path: rootfs.clone(),
        source,
    })?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux".into(), "missing", "config-linux.md"))?;

    let propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => None,
        Some(p) => match classify(p) {
            Opt::Propagation(flags) => Some(flags),
            _ => {
                return Err(invalid(
                    "linux.rootfsPropagation".into(),
                    format!("{p:?} is not one of shared, slave, private, unbindable (optionally r-prefixed)"),
                    "config-linux.md#rootfs-mount-propagation",
                ))
            }
        },
    };
    // Shared would propagate the container's mounts back to the host's namespace.
    // Only private can replace the default rslave up front: shared would propagate the
    // container's mounts back to the host, and an unbindable rootfs cannot be bind-mounted
    // onto itself. Both are applied after pivot_root instead.
    let initial_propagation = match propagation {
        Some(f) if f & libc::MS_PRIVATE != 0 => libc::MS_PRIVATE | libc::MS_REC,
        _ => libc::MS_SLAVE | libc::MS_REC,
    };

    let mut mounts = Vec::new();
    let mut dev_is_bind = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let dest_str = m.destination().to_string_lossy().into_owned();
        let dest = root_path(&field, &dest_str)?;
        let typ = m.typ().as_deref().unwrap_or("");
        let mut attr = Attr {
            userns_fd: -1,
            ..Default::default()
        };
        let mut recursive_attr = Attr {
            userns_fd: -1,
            ..Default::default()
        };
        let mut bind = None;
        let mut flags = Vec::new();
        let mut params = Vec::new();
        for o in m.options().iter().flatten() {
            match classify(o) {
                Opt::Attr {
                    set,
                    clear,
                    recursive: false,
                } => {
                    attr.set = (attr.set & !clear) | set;
                    attr.clear |= clear;
                }
                Opt::Attr {
                    set,
                    clear,
                    recursive: true,
                } => {
                    recursive_attr.set = (recursive_attr.set & !clear) | set;
                    recursive_attr.clear |= clear;
                }
                Opt::Propagation(p) => attr.propagation = p,
                Opt::Bind { recursive } => bind = Some(recursive),
                Opt::SbFlag => flags.push(cstring(&field, o)?),
                Opt::Ignore => {}
                Opt::Data => match o.split_once('=') {
                    Some((k, v)) => params.push((cstring(&field, k)?, cstring(&field, v)?)),
                    None => flags.push(cstring(&field, o)?),
                },
            }
        }
        // The attribute mask must name every bit it sets (for atime it is a 3-value field).
        attr.clear |= attr.set;
        recursive_attr.clear |= recursive_attr.set;
        if typ == "bind" && bind.is_none() {
            bind = Some(false);
        }
        if let Some(recursive) = bind {
            let src = m.source().as_ref().map(|s| bundle.join(s)).ok_or_else(|| {
                invalid(
                    format!("{field}.source"),
                    "a bind mount needs a source",
                    "config.md#mounts",
                )
            })?;
            let meta = std::fs::metadata(&src).map_err(|source| PlanError::Source {
                field: format!("{field}.source"),
                path: src.clone(),
                source,
            })?;
            if dest_str == "/dev" {
                dev_is_bind = true;
            }
            let src_s = src.to_string_lossy().into_owned();
            mounts.push(MountPlan {
                label: format!("{field} (bind {} on {dest_str})", src.display()),
                dest,
                file: !meta.is_dir(),
                kind: MountKind::Bind {
                    source: cstring(&field, &src_s)?,
                    recursive,
                },
                attr,
                recursive_attr,
            });
            continue;
        }
        if typ == "cgroup" || typ == "cgroup2" {
            cgroup_mounts(&field, &dest_str, cgroup, attr, &mut mounts)?;
            continue;
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.to_string());
        mounts.push(MountPlan {
            label: format!("{field} ({typ} on {dest_str})"),
            dest,
            file: false,
            kind: MountKind::Fs {
                fstype: cstring(&field, typ)?,
                source: cstring(&field, &source)?,
                flags,
                params,
            },
            attr,
            recursive_attr,
        });
    }

    let mut devices = Vec::new();
    let mut dev_symlinks = Vec::new();
    if !dev_is_bind {
        for (path, major, minor) in DEFAULT_DEVICES {
            devices.push(DevicePlan {
                label: format!("default device {path}"),
                path: root_path("linux.devices", path)?,
                mode: libc::S_IFCHR | 0o666,
                dev: libc::makedev(*major, *minor),
                uid: 0,
                gid: 0,
                bind_from: userns.then(|| CString::new(*path).expect("static path has no NUL")),
            });
        }
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
            ("pts/ptmx", "/dev/ptmx"),
        ] {
            dev_symlinks.push((cstring("dev", target)?, root_path("dev", link)?));
        }
        if Path::new("/proc/kcore").exists() {
            dev_symlinks.push((
                cstring("dev", "/proc/kcore")?,
                root_path("dev", "/dev/core")?,
            ));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(invalid(
                    format!("{field}.type"),
                    "\"a\" is not a device node type",
                    "config-linux.md#devices",
                ))
            }
        };
        let path_s = d.path().to_string_lossy().into_owned();
        let dev = libc::makedev(d.major() as u32, d.minor() as u32);
        if kind != libc::S_IFIFO && (d.major() < 0 || d.minor() < 0) {
            return Err(invalid(
                field,
                "major and minor are required for c, u and b devices",
                "config-linux.md#devices",
            ));
        }
        let perm = d.file_mode().unwrap_or(0o666) & 0o7777;
        let bind_from = if userns {
            let host = std::fs::metadata(&path_s).ok().filter(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.file_type().is_char_device() || m.file_type().is_block_device())
                    && m.rdev() == dev
            });
            if host.is_none() {
                return Err(invalid(
                    field,
                    format!("in a user namespace devices are bind-mounted from the host, and the host has no {path_s} with that major:minor"),
                    "config-linux.md#devices",
                ));
            }
            Some(cstring("linux.devices", &path_s)?)
        } else {
            None
        };
        devices.retain(|x: &DevicePlan| x.path.display != path_s);
        devices.push(DevicePlan {
            label: format!("{field} ({path_s})"),
            path: root_path(&field, &path_s)?,
            mode: kind | perm,
            dev,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            bind_from,
        });
    }

    let paths = |field: &str, list: &Option<Vec<String>>| -> Result<Vec<RootPath>, PlanError> {
        list.iter().flatten().map(|p| root_path(field, p)).collect()
    };
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process".into(), "missing", "config.md#process"))?;
    let terminal = process.terminal().unwrap_or(false);
    Ok(RootfsPlan {
        rootfs: cstring("root.path", &rootfs.to_string_lossy())?,
        initial_propagation,
        final_propagation: propagation,
        mounts,
        devices,
        dev_symlinks,
        cwd: root_path("process.cwd", &process.cwd().to_string_lossy())?,
        masked: paths("linux.maskedPaths", linux.masked_paths())?,
        readonly: paths("linux.readonlyPaths", linux.readonly_paths())?,
        readonly_root: root.readonly().unwrap_or(false),
        no_pivot,
        console: terminal.then(|| {
            (
                RootPath::new("/dev/pts/ptmx").expect("static"),
                RootPath::new("/dev/console").expect("static"),
            )
        }),
    })
}

fn cgroup_mounts(
    field: &str,
    dest: &str,
    cgroup: &CgroupMount,
    attr: Attr,
    mounts: &mut Vec<MountPlan>,
) -> Result<(), PlanError> {
    let noattr = Attr {
        userns_fd: -1,
        ..Default::default()
    };
    match cgroup {
        CgroupMount::Unified { cgroupns: true, .. } => mounts.push(MountPlan {
            label: format!("{field} (cgroup2 on {dest})"),
            dest: root_path(field, dest)?,
            file: false,
            kind: MountKind::Fs {
                fstype: c"cgroup2".into(),
                source: c"cgroup".into(),
                flags: vec![],
                params: vec![],
            },
            attr,
            recursive_attr: noattr,
        }),
        CgroupMount::Unified {
            host_dir,
            cgroupns: false,
        } => mounts.push(MountPlan {
            label: format!("{field} (cgroup bind {} on {dest})", host_dir.display()),
            dest: root_path(field, dest)?,
            file: false,
            kind: MountKind::Bind {
                source: cstring(field, &host_dir.to_string_lossy())?,
                recursive: false,
            },
            attr,
            recursive_attr: noattr,
        }),
        CgroupMount::Legacy { hierarchies } => {
            // The tmpfs stays writable until every hierarchy directory exists in it.
            let tmpfs_attr = Attr {
                set: attr.set & !berth_sys::mount::MOUNT_ATTR_RDONLY,
                clear: attr.clear,
                ..noattr
            };
            mounts.push(MountPlan {
                label: format!("{field} (cgroup tmpfs on {dest})"),
                dest: root_path(field, dest)?,
                file: false,
                kind: MountKind::Fs {
                    fstype: c"tmpfs".into(),
                    source: c"cgroup".into(),
                    flags: vec![],
                    params: vec![(c"mode".into(), c"755".into())],
                },
                attr: tmpfs_attr,
                recursive_attr: noattr,
            });
            for (name, dir) in hierarchies {
                let sub = format!("{}/{name}", dest.trim_end_matches('/'));
                mounts.push(MountPlan {
                    label: format!("{field} (cgroup {name} on {sub})"),
                    dest: root_path(field, &sub)?,
                    file: false,
                    kind: MountKind::Bind {
                        source: cstring(field, &dir.to_string_lossy())?,
                        recursive: false,
                    },
                    attr,
                    recursive_attr: noattr,
                });
            }
            if attr.set & berth_sys::mount::MOUNT_ATTR_RDONLY != 0 {
                mounts.push(MountPlan {
                    label: format!("{field} (cgroup tmpfs on {dest}, read-only)"),
                    dest: root_path(field, dest)?,
                    file: false,
                    kind: MountKind::SetAttr,
                    attr: Attr {
                        set: berth_sys::mount::MOUNT_ATTR_RDONLY,
                        clear: berth_sys::mount::MOUNT_ATTR_RDONLY,
                        ..noattr
                    },
                    recursive_attr: noattr,
                });
            }
        }
    }
    Ok(())
}
