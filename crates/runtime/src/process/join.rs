//! Entering a live container's namespaces from outside it: for the hooks the spec runs
//! "in the container namespace" (createContainer, startContainer), and for `exec`.
//!
//! The fds are opened in the parent from /proc/<pid>/ns; the child only calls setns on
//! them ([`Joined::enter`], async-signal-safe). The pid namespace cannot be entered by
//! the child itself (setns only changes where its *children* go), so the parent
//! switches its own `pid_for_children` around the clone ([`Joined::around_clone`]).

use berth_sys::Errno;
use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;
use std::os::fd::{AsFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("opening /proc/{pid}/ns/{name} of the container's init: {source}")]
    Open {
        pid: i32,
        name: &'static str,
        source: std::io::Error,
    },
    #[error("entering the container's pid namespace: {0}")]
    PidNamespace(std::io::Error),
}

/// setns order: the user namespace first, so the others (owned by it) can be joined
/// with the capabilities it grants; the mount namespace last but for time.
const KINDS: [(&str, LinkNameSpaceType); 7] = [
    ("user", LinkNameSpaceType::User),
    ("ipc", LinkNameSpaceType::InterProcessCommunication),
    ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
    ("net", LinkNameSpaceType::Network),
    ("cgroup", LinkNameSpaceType::ControlGroup),
    ("mnt", LinkNameSpaceType::Mount),
    ("time", LinkNameSpaceType::Time),
];

/// The namespaces of a container's init that differ from the caller's.
#[derive(Debug)]
pub struct Joined {
    /// In setns order; names for error messages.
    ns: Vec<(&'static str, OwnedFd, LinkNameSpaceType)>,
    /// (the init's, ours) when they differ.
    pid: Option<(OwnedFd, OwnedFd)>,
    /// The init's root directory, to chroot into after joining (for processes that
    /// must see the container's filesystem, not the mount namespace's root).
    root: Option<OwnedFd>,
}

fn open_ns(pid: i32, name: &'static str, whose: &str) -> Result<Option<OwnedFd>, JoinError> {
    let path = format!("/proc/{whose}/ns/{name}");
    match rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        // A kernel without this namespace kind (e.g. no time namespaces).
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(JoinError::Open {
            pid,
            name,
            source: std::io::Error::from_raw_os_error(e.raw_os_error()),
        }),
    }
}

fn same(a: &OwnedFd, b: &OwnedFd) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_ino == y.st_ino && x.st_dev == y.st_dev,
        _ => false,
    }
}

impl Joined {
    /// Opens the namespaces of `pid` that differ from ours. With `chroot`, also its
    /// root directory (`/proc/<pid>/root`).
    pub fn open(pid: i32, chroot: bool) -> Result<Self, JoinError> {
        let whose = pid.to_string();
        let mut ns = Vec::new();
        for (name, kind) in KINDS {
            let (Some(theirs), Some(ours)) =
                (open_ns(pid, name, &whose)?, open_ns(pid, name, "self")?)
            else {
                continue;
            };
            if !same(&theirs, &ours) {
                ns.push((name, theirs, kind));
            }
        }
        let pid_ns = match (
            open_ns(pid, "pid", &whose)?,
            open_ns(pid, "pid_for_children", "self")?,
        ) {
            (Some(theirs), Some(ours)) if !same(&theirs, &ours) => Some((theirs, ours)),
            _ => None,
        };
        let root = if chroot {
            let path = format!("/proc/{pid}/root");
            Some(
                rustix::fs::open(
                    &path,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| JoinError::Open {
                    pid,
                    name: "root",
                    source: std::io::Error::from_raw_os_error(e.raw_os_error()),
                })?,
            )
        } else {
            None
        };
        Ok(Joined {
            ns,
            pid: pid_ns,
            root,
        })
    }

    /// Whether the process joins a user namespace other than ours (then its gid map
    /// was written by a runtime, and setgroups is only for explicit additionalGids).
    pub fn joins_user(&self) -> bool {
        self.ns.iter().any(|(n, _, _)| *n == "user")
    }

    /// The namespace [`Joined::enter`] failed on, from its index (see `index_of`).
    pub fn name(&self, index: usize) -> &'static str {
        self.ns.get(index).map_or("root directory", |(n, _, _)| n)
    }

    /// The index for a name `enter` returned, to send in a fixed-size failure frame.
    pub fn index_of(&self, name: &str) -> usize {
        self.ns
            .iter()
            .position(|(n, _, _)| *n == name)
            .unwrap_or(self.ns.len())
    }

    /// Runs `clone` with our `pid_for_children` set to the container's pid namespace,
    /// and restores it afterwards. `clone` must not return in the child: the restoring
    /// setns fails there (its pid namespace is now a descendant of the target).
    pub fn around_clone<T>(&self, clone: impl FnOnce() -> T) -> Result<T, JoinError> {
        let err =
            |e: Errno| JoinError::PidNamespace(std::io::Error::from_raw_os_error(e.raw_os_error()));
        let Some((theirs, ours)) = &self.pid else {
            return Ok(clone());
        };
        rustix::thread::move_into_link_name_space(
            theirs.as_fd(),
            Some(LinkNameSpaceType::ProcessID),
        )
        .map_err(err)?;
        let out = clone();
        // Our own active pid namespace is always a valid target: this cannot fail
        // short of fd exhaustion, and staying switched would misplace later children.
        rustix::thread::move_into_link_name_space(ours.as_fd(), Some(LinkNameSpaceType::ProcessID))
            .map_err(err)?;
        Ok(out)
    }

    /// Whether the parent can switch its own pid_for_children (root can; an
    /// unprivileged runtime lacks CAP_SYS_ADMIN in its own user namespace).
    pub fn parent_can_join_pid(&self) -> bool {
        self.pid.is_none() || rustix::process::geteuid().is_root()
    }

    /// For an unprivileged runtime: the intermediate process joins the container's
    /// user namespace (gaining the capabilities it needs there) and then sets its
    /// pid_for_children, so the process it forks is born in the container's pid
    /// namespace. Async-signal-safe.
    pub fn enter_user_and_pid_for_children(&self) -> Result<(), (&'static str, Errno)> {
        if let Some((_, fd, kind)) = self.ns.iter().find(|(n, _, _)| *n == "user") {
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*kind))
                .map_err(|e| ("user", e))?;
        }
        if let Some((theirs, _)) = &self.pid {
            rustix::thread::move_into_link_name_space(
                theirs.as_fd(),
                Some(LinkNameSpaceType::ProcessID),
            )
            .map_err(|e| ("pid", e))?;
        }
        Ok(())
    }

    /// Child side: setns into each namespace, then chroot into the container's root.
    /// Async-signal-safe. On failure returns the namespace's name and the errno.
    /// `user_joined`: an intermediate already joined the user namespace (joining it
    /// again would fail with EINVAL).
    pub fn enter(&self, user_joined: bool) -> Result<(), (&'static str, Errno)> {
        for (name, fd, kind) in &self.ns {
            if user_joined && *name == "user" {
                continue;
            }
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*kind))
                .map_err(|e| (*name, e))?;
        }
        if let Some(root) = &self.root {
            rustix::process::fchdir(root).map_err(|e| ("root", e))?;
            rustix::process::chroot(c".").map_err(|e| ("root", e))?;
            rustix::process::chdir(c"/").map_err(|e| ("root", e))?;
        }
        Ok(())
    }
}
