//! What berth-oci remembers about a container between invocations: one directory per
//! container under the root (`/run/berth-oci/<id>`) with `state.json` and, until
//! `start`, the exec fifo. The status is never trusted from the file alone: it is
//! derived from the init's pid *and* its start time, so a recycled pid reads as stopped.

use crate::cgroups::Cgroup;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container does not exist")]
    NotFound { id: String },
    #[error("reading state of container {id} ({path}): {source}")]
    Read {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state of container {id} ({path}) is corrupt: {message}")]
    Corrupt {
        id: String,
        path: PathBuf,
        message: String,
    },
    #[error("writing state of container {id} ({path}): {source}")]
    Write {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The statuses of runtime.md#state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The lifecycle phase the runtime last recorded; the live status is derived from it
/// and the init process (see [`ContainerState::status`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Created,
    Started,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat when the init was created.
    pub start_time: u64,
    pub phase: Phase,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub owner_uid: u32,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cgroup: Option<Cgroup>,
    /// Kept from config.json at create: start and delete run them even if the bundle
    /// has changed or gone since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// config.json's process: `exec` starts from it, as runc's does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<oci_spec::runtime::Process>,
    /// linux.seccomp: `exec`'d processes get the container's filter too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// linux.personality: the container's execution domain, for `exec`'d processes too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    /// linux.memoryPolicy: `exec`'d processes get the container's NUMA policy too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
}

/// The spec's state document, shaped like runc's output (runtime.md#state).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateDocument {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

/// The container's directory under the root.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Start time of `pid` (field 22 of /proc/<pid>/stat), and whether it is a zombie.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, *state == "Z" || *state == "X"))
}

impl ContainerState {
    pub fn load(root: &Path, id: &str) -> Result<Self, StateError> {
        let path = dir(root, id).join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound { id: id.into() })
            }
            Err(source) => {
                return Err(StateError::Read {
                    id: id.into(),
                    path,
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            id: id.into(),
            path,
            message: e.to_string(),
        })
    }

    /// Writes state.json atomically (temp file + rename): a crash leaves the old or
    /// the new state, never half of one.
    pub fn save(&self, root: &Path) -> Result<(), StateError> {
        let d = dir(root, &self.id);
        let path = d.join(STATE_FILE);
        let tmp = d.join(".state.json.tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| StateError::Corrupt {
            id: self.id.clone(),
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| StateError::Write {
                id: self.id.clone(),
                path,
                source,
            })
    }

    /// Whether the recorded init is still alive (not a zombie, same start time).
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && matches!(proc_start_time(self.pid), Some((t, false)) if t == self.start_time)
    }

    pub fn status(&self) -> Status {
        match self.phase {
            Phase::Creating => Status::Creating,
            _ if !self.init_alive() => Status::Stopped,
            Phase::Created => Status::Created,
            Phase::Started => {
                if self.frozen() {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
        }
    }

    fn frozen(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|cg| cg.is_frozen())
    }

    pub fn document(&self) -> StateDocument {
        let status = self.status();
        StateDocument {
            oci_version: crate::spec::OCI_VERSION.to_string(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.display().to_string(),
            rootfs: self.rootfs.display().to_string(),
            created: self.created.clone(),
            owner: String::new(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Every container id under the root, sorted.
pub fn ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids
}

/// RFC 3339 UTC with nanoseconds, as runc prints `created`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
