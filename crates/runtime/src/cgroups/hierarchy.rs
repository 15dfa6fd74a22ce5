//! Which cgroup hierarchies are mounted, and where a container's cgroup goes in each.

use super::CgroupError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 hierarchies plus a v2 one (usually at /sys/fs/cgroup/unified).
    Hybrid,
    /// One v2 hierarchy at /sys/fs/cgroup.
    Unified,
}

#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub name: String,
    pub mount: PathBuf,
    pub controllers: Vec<String>,
    pub v2: bool,
}

const ROOT: &str = "/sys/fs/cgroup";

/// Reads the cgroup mounts under /sys/fs/cgroup from mountinfo.
pub fn discover() -> Result<Vec<Hierarchy>, CgroupError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| CgroupError::Discover(format!("reading /proc/self/mountinfo: {e}")))?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = pre.split(' ').nth(4).unwrap_or_default();
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or_default();
        let super_opts = post.nth(1).unwrap_or_default();
        if !mount_point.starts_with(ROOT)
            || out
                .iter()
                .any(|h: &Hierarchy| h.mount.as_os_str() == mount_point)
        {
            continue;
        }
        let name = mount_point
            .strip_prefix(ROOT)
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        match fstype {
            "cgroup2" => {
                let controllers =
                    std::fs::read_to_string(format!("{mount_point}/cgroup.controllers"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                out.push(Hierarchy {
                    name,
                    mount: mount_point.into(),
                    controllers,
                    v2: true,
                });
            }
            "cgroup" => {
                let controllers = super_opts
                    .split(',')
                    .filter(|o| {
                        !matches!(
                            *o,
                            "rw" | "ro" | "relatime" | "noprefix" | "xattr" | "clone_children"
                        ) && !o.starts_with("release_agent=")
                    })
                    .map(str::to_string)
                    .collect();
                out.push(Hierarchy {
                    name,
                    mount: mount_point.into(),
                    controllers,
                    v2: false,
                });
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(CgroupError::Discover(format!(
            "no cgroup hierarchy is mounted under {ROOT}"
        )));
    }
    Ok(out)
}

pub fn mode(hierarchies: &[Hierarchy]) -> Mode {
    match (
        hierarchies.iter().any(|h| h.v2),
        hierarchies.iter().any(|h| !h.v2),
    ) {
        (true, false) => Mode::Unified,
        (true, true) => Mode::Hybrid,
        _ => Mode::Legacy,
    }
}

impl Mode {
    /// The mode of this host, from the cgroup mounts under /sys/fs/cgroup.
    pub fn detect() -> Mode {
        discover().map(|h| mode(&h)).unwrap_or(Mode::Unified)
    }
}

/// An absolute cgroupsPath stays as it is; a relative one is placed under pid 1's
/// cgroup in that hierarchy, as runc does.
pub fn resolve_path(path: &str, h: &Hierarchy) -> Result<String, CgroupError> {
    if path.split('/').any(|c| c == "..") {
        return Err(CgroupError::Unsupported {
            field: "linux.cgroupsPath".into(),
            problem: format!("{path:?} must not contain \"..\""),
        });
    }
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let init = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    let base = init
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, p) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = if h.v2 {
                ctrls.is_empty()
            } else {
                ctrls
                    .split(',')
                    .any(|c| h.controllers.iter().any(|hc| hc == c))
            };
            matches.then(|| p.to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into());
    Ok(format!("{}/{path}", base.trim_end_matches('/')))
}
