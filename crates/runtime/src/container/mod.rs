//! The container lifecycle of runtime.md: creating → created → running → stopped, one
//! verb per file, each a separate invocation that meets the others through the state
//! directory (see [`crate::state`]).
//!
//! Words: the *init* is the container's first process (pid 1 in its pid namespace);
//! *create* builds everything and leaves the init waiting on the *exec fifo*; *start*
//! releases it to exec the user's program; *delete* removes what create made.

mod create;
mod delete;
mod exec;
mod kill;
mod pause;
mod start;
mod update;

pub use create::{create, CreateOptions, Launch, Outcome};
pub use delete::delete;
pub use exec::{base_process, exec, ExecOptions};
pub use kill::kill;
pub use pause::{pause, resume};
pub use start::start;
pub use update::{oom_kills, pids, stats, update};

use crate::state::Status;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container id {id:?}: {problem}")]
    InvalidId { id: String, problem: &'static str },
    #[error("container with id exists: {id}")]
    Exists { id: String },
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::PlanError),
    #[error(transparent)]
    Process(#[from] crate::process::plan::PlanError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Spawn(#[from] crate::process::spawn::SpawnError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Exe(#[from] crate::exe::ExeError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{message}")]
    WrongStatus {
        id: String,
        status: Status,
        message: String,
    },
    #[error("container not running")]
    NotRunning { id: String },
}

impl Error {
    /// See [`SpawnError::exec_errno`](crate::process::spawn::SpawnError::exec_errno).
    pub fn exec_errno(&self) -> Option<i32> {
        match self {
            Error::Spawn(e) => e.exec_errno(),
            _ => None,
        }
    }
}

/// Container ids name a directory under the root: they must be a single, plain path
/// component (runc allows letters, digits and `_ + - .`).
pub fn validate_id(id: &str) -> Result<(), Error> {
    let bad = |problem| {
        Err(Error::InvalidId {
            id: id.to_string(),
            problem,
        })
    };
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id == "." || id == ".." || id.contains("..") {
        return bad("must not be or contain \"..\"");
    }
    if id.contains('/') {
        return bad("must not contain '/'");
    }
    if id == crate::seccomp::CACHE_DIR {
        return bad("is the name of the runtime's seccomp cache");
    }
    if id.len() > 1024 {
        return bad("is longer than 1024 bytes");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        return bad("may contain only letters, digits, '_', '+', '-' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", "a/b", "..", "a..b", ".", "a b", "a\0b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
