//! Directory resolution beneath the layer root. Every path a tar names is resolved by the
//! kernel with openat2 `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` from a directory fd of the
//! destination, so a symlink (made earlier in this layer, or by a parent layer in Apply mode)
//! can never carry a write outside it. Only parent directories are resolved this way; the
//! final component is always operated on with a `*at` call that does not follow it.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::CStr;

/// Why a directory could not be resolved.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A symlink on the way leaves the root (or is a magic link, or loops).
    Escape,
    /// A component exists and is not a directory.
    NotDir,
    /// A component does not exist (only when not creating).
    Missing,
    Io(Errno),
}

impl From<Errno> for ResolveError {
    fn from(e: Errno) -> ResolveError {
        match e {
            Errno::XDEV | Errno::LOOP => ResolveError::Escape,
            Errno::NOTDIR => ResolveError::NotDir,
            Errno::NOENT => ResolveError::Missing,
            e => ResolveError::Io(e),
        }
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// The layer root and the last parent directory resolved beneath it. Tars list a
/// directory's entries together, so one cached fd saves most of the path walks.
pub(crate) struct Root {
    fd: OwnedFd,
    cached_path: Vec<u8>,
    cached_fd: Option<OwnedFd>,
}

impl Root {
    pub(crate) fn new(fd: OwnedFd) -> Root {
        Root {
            fd,
            cached_path: Vec::new(),
            cached_fd: None,
        }
    }

    /// The directory `path` (cleaned; empty is the root), creating missing directories
    /// (mode 0755, the caller's owner, as containerd does) when `create` is set.
    pub(crate) fn dir(
        &mut self,
        path: &[u8],
        create: bool,
    ) -> Result<BorrowedFd<'_>, ResolveError> {
        if path.is_empty() {
            return Ok(self.fd.as_fd());
        }
        if self.cached_fd.is_none() || self.cached_path != path {
            let fd = match open_beneath(&self.fd, path) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => create_dirs(&self.fd, path)?,
                Err(e) => return Err(e.into()),
            };
            self.cached_path.clear();
            self.cached_path.extend_from_slice(path);
            self.cached_fd = Some(fd);
        }
        Ok(self
            .cached_fd
            .as_ref()
            .expect("cached_fd was just set")
            .as_fd())
    }

    /// An fd of its own for the directory `path`, for when two directories are needed
    /// at once (hardlinks) or the directory outlives the next resolution.
    pub(crate) fn open_dir(&self, path: &[u8]) -> Result<OwnedFd, ResolveError> {
        let p: &[u8] = if path.is_empty() { b"." } else { path };
        Ok(open_beneath(&self.fd, p)?)
    }

    /// Opens `path` itself as a directory without following a final symlink. Errors mean
    /// it is gone or no longer a directory.
    pub(crate) fn open_dir_nofollow(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        let p: &[u8] = if path.is_empty() { b"." } else { path };
        berth_sys::fd::openat2(
            &self.fd,
            p,
            DIR_FLAGS | OFlags::NOFOLLOW,
            Mode::empty(),
            RESOLVE,
        )
    }

    /// Forgets the cached directory: something was removed, and the cached path may have
    /// run through it, or through a symlink to it. (Checking prefixes is not enough for
    /// the symlink case; removals are rare enough that the next walk costs nothing.)
    pub(crate) fn forget(&mut self) {
        self.cached_fd = None;
    }
}

fn open_beneath(root: &OwnedFd, path: &[u8]) -> Result<OwnedFd, Errno> {
    // Asked again on EAGAIN (a rename elsewhere raced a `..`).
    berth_sys::fd::openat2(root, path, DIR_FLAGS, Mode::empty(), RESOLVE)
}

/// Slow path of `Root::dir`: walks `path` component by component, each prefix resolved
/// from the root again (so relative symlinks that climb are judged against the root, not
/// against the intermediate directory), creating what is missing.
fn create_dirs(root: &OwnedFd, path: &[u8]) -> Result<OwnedFd, ResolveError> {
    let mut cur: Option<OwnedFd> = None;
    let mut end = 0;
    for comp in path.split(|&b| b == b'/') {
        let start = end;
        end = if start == 0 {
            comp.len()
        } else {
            start + 1 + comp.len()
        };
        let fd = match open_beneath(root, &path[..end]) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let parent = cur.as_ref().map_or(root.as_fd(), |f| f.as_fd());
                match fs::mkdirat(parent, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                // NOFOLLOW: if a dangling symlink was in the way, mkdirat failed with
                // EEXIST and this open refuses it.
                fs::openat(parent, comp, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()).map_err(
                    |e| match e {
                        Errno::LOOP | Errno::NOTDIR => ResolveError::NotDir,
                        e => e.into(),
                    },
                )?
            }
            Err(e) => return Err(e.into()),
        };
        cur = Some(fd);
    }
    cur.ok_or(ResolveError::Missing)
}

/// Removes `name` in `dir` whatever it is, a directory with all its content included,
/// never following symlinks. Missing is fine.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => remove_dir_tree(dir, name),
        Err(e) => Err(e),
    }
}

fn remove_dir_tree(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let fd = match fs::openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    empty_dir(fd.as_fd(), |_| false)?;
    match fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes every child of `dir` for which `keep(name)` is false. Names are collected
/// before removing, since getdents over a directory that is changing may skip entries.
pub(crate) fn empty_dir(
    dir: BorrowedFd<'_>,
    mut keep: impl FnMut(&CStr) -> bool,
) -> Result<(), Errno> {
    let names = list_dir(dir)?;
    for name in &names {
        if !keep(name) {
            remove_all(dir, name.to_bytes())?;
        }
    }
    Ok(())
}

/// The names in `dir`, without "." and "..".
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<std::ffi::CString>, Errno> {
    let mut d = fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    Ok(names)
}
