//! Named, persistent network namespaces: `DIR/<name>` is a bind mount of a netns
//! (nsfs) inode, exactly what `ip netns add` makes under /run/netns, so `ip -n`,
//! `nsenter --net=PATH` and the runtime's `linux.namespaces[].path` all accept it.
//!
//! How the namespace is made: a dedicated, short-lived thread `unshare(CLONE_NEWNET)`s
//! (which changes only that thread's namespace) and bind-mounts
//! `/proc/thread-self/ns/net` onto the file, then exits. No fork, no exec of `ip` or
//! `unshare(1)`, and no thread of the caller ever changes namespace: the mount is
//! process-wide (threads share the mount namespace) and keeps the netns alive after
//! the thread is gone. The alternatives cost a process each (`ip netns add` cannot
//! be pointed at berth's own directory; `unshare --net=FILE` needs util-linux and a
//! fork+exec).
//!
//! Like `ip netns add`, the directory is made a shared mount point first, so that an
//! unmount here propagates to mount namespaces created meanwhile (a container's
//! copy of the host mounts would otherwise pin the namespace file). When the last
//! namespace goes, [`release_dir`] undoes that mount, so a host without containers
//! keeps no berth mounts.

use rustix::mount::{MountPropagationFlags, UnmountFlags};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// nsfs's magic number (linux/magic.h NSFS_MAGIC): a netns bind mount has it.
const NSFS_MAGIC: i64 = 0x6e73_6673;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("invalid network namespace name {name:?} (letters, digits, '_', '.', '-' only)")]
    InvalidName { name: String },
    #[error("cannot prepare the network namespace directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("network namespace {path} already exists")]
    Exists { path: PathBuf },
    #[error("cannot create network namespace {path}: {step}: {source}")]
    Create {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove network namespace {path}: {step}: {source}")]
    Remove {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Creates the persistent netns `dir/name` and returns its path.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf, NetnsError> {
    create_with(dir, name, false)
}

/// [`create`], with the namespace's loopback interface up (for `--network none`, where
/// no plugin runs).
pub fn create_with_loopback(dir: &Path, name: &str) -> Result<PathBuf, NetnsError> {
    create_with(dir, name, true)
}

fn create_with(dir: &Path, name: &str, loopback: bool) -> Result<PathBuf, NetnsError> {
    if !crate::valid_id(name) {
        return Err(NetnsError::InvalidName {
            name: name.to_string(),
        });
    }
    // Held until the namespace is mounted, so release_dir cannot unmount the directory
    // between our prepare and our mount.
    let _lock = prepare_dir(dir)?;
    let path = dir.join(name);
    match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(_) => {}
        // A file left by a crash between create and mount is reused; a mounted one is
        // a live namespace.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if is_netns(&path) {
                return Err(NetnsError::Exists { path });
            }
        }
        Err(source) => {
            return Err(NetnsError::Create {
                path,
                step: "create the mount point",
                source,
            })
        }
    }
    let target = path.clone();
    let made = std::thread::spawn(move || -> Result<(), (&'static str, io::Error)> {
        berth_sys::process::unshare_namespaces(libc::CLONE_NEWNET)
            .map_err(|e| ("unshare(CLONE_NEWNET)", e.into()))?;
        if loopback {
            berth_sys::net::interface_up("lo").map_err(|e| ("bring lo up", e.into()))?;
        }
        rustix::mount::mount_bind("/proc/thread-self/ns/net", &target)
            .map_err(|e| ("bind-mount /proc/thread-self/ns/net", e.into()))
        // The thread ends here; its namespace lives on through the mount.
    })
    .join()
    .unwrap_or_else(|_| Err(("namespace thread", io::Error::other("panicked"))));
    if let Err((step, source)) = made {
        let _ = std::fs::remove_file(&path);
        return Err(NetnsError::Create { path, step, source });
    }
    Ok(path)
}

/// Unmounts and deletes a netns file. Missing or already-unmounted files are fine.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match rustix::mount::unmount(path, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => {
            return Err(NetnsError::Remove {
                path: path.to_path_buf(),
                step: "unmount",
                source: e.into(),
            })
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Remove {
            path: path.to_path_buf(),
            step: "unlink",
            source,
        }),
    }
}

/// Whether `path` is a mounted namespace file.
pub fn is_netns(path: &Path) -> bool {
    // f_type is i64 on 64-bit targets but narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == NSFS_MAGIC)
}

/// Unmounts and removes the namespace directory once it holds no namespace; a no-op
/// while any remains. Serialised with [`create`] by the directory's lock file.
pub fn release_dir(dir: &Path) -> Result<(), NetnsError> {
    let err = |source| NetnsError::Dir {
        dir: dir.to_path_buf(),
        source,
    };
    let _lock = lock_dir(dir).map_err(err)?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Ok(());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e)),
    }
    match rustix::mount::unmount(dir, UnmountFlags::DETACH) {
        // EINVAL: not a mount point (never prepared, or already released).
        Ok(()) | Err(rustix::io::Errno::INVAL) => {}
        Err(e) => return Err(err(e.into())),
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// The lock beside the directory (`DIR.lock`), taken exclusively.
fn lock_dir(dir: &Path) -> io::Result<File> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let lock = File::create(dir.with_extension("lock"))?;
    lock.lock()?;
    Ok(lock)
}

/// mkdir -p, then make the directory a shared mount point, as `ip netns add` does.
/// Returns the directory's lock, held: two berth processes do not bind it twice, and
/// [`release_dir`] waits.
fn prepare_dir(dir: &Path) -> Result<File, NetnsError> {
    let err = |source| NetnsError::Dir {
        dir: dir.to_path_buf(),
        source,
    };
    let lock = lock_dir(dir).map_err(err)?;
    std::fs::create_dir_all(dir).map_err(err)?;
    let shared = MountPropagationFlags::SHARED | MountPropagationFlags::REC;
    match rustix::mount::mount_change(dir, shared) {
        Ok(()) => {}
        // EINVAL: not a mount point yet. Bind it onto itself and try again.
        Err(rustix::io::Errno::INVAL) => {
            rustix::mount::mount_bind(dir, dir).map_err(|e| err(e.into()))?;
            rustix::mount::mount_change(dir, shared).map_err(|e| err(e.into()))?;
        }
        Err(e) => return Err(err(e.into())),
    }
    Ok(lock)
}
