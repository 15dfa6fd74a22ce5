//! Whiteouts (layer.md#whiteouts): `.wh.NAME` deletes NAME from the layers below, and
//! `.wh..wh..opq` hides everything the layers below put in its directory. In Overlay mode
//! they become overlayfs's own markers; in Apply mode they delete.

use super::apply::{create_replacing, io_err, parent_dir, resolve_error, Unpacker};
use super::error::{Op, UnpackError};
use super::resolve::{self, ResolveError};
use super::Whiteouts;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{self, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;
use std::collections::HashSet;

/// overlayfs's opaque-directory xattr (Documentation/filesystems/overlayfs.rst).
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

impl Unpacker<'_> {
    /// `path` is the whiteout entry (`dir/.wh.victim`), `parent` its directory.
    pub(super) fn whiteout(
        &mut self,
        path: &[u8],
        parent: &[u8],
        victim: &[u8],
    ) -> Result<(), UnpackError> {
        match self.opts.whiteouts {
            Whiteouts::Overlay => {
                let dir = parent_dir(&mut self.root, self.opts, path, parent, true)?;
                // overlayfs: a 0:0 character device hides the name in lower layers.
                let removed = create_replacing(dir, victim, |d, n| {
                    fs::mknodat(
                        d,
                        n,
                        FileType::CharacterDevice,
                        Mode::empty(),
                        fs::makedev(0, 0),
                    )
                })
                .map_err(|e| io_err(self.opts, path, Op::Whiteout, e))?;
                if removed {
                    self.root.forget();
                }
                Ok(())
            }
            Whiteouts::Apply => {
                let opts = self.opts;
                let dir = match self.root.dir(parent, false) {
                    Ok(d) => d,
                    // Nothing below to delete.
                    Err(ResolveError::Missing | ResolveError::NotDir) => return Ok(()),
                    Err(e) => return Err(resolve_error(opts, path, e, Op::Whiteout)),
                };
                resolve::remove_all(dir, victim)
                    .map_err(|e| io_err(opts, path, Op::Whiteout, e))?;
                self.root.forget();
                Ok(())
            }
        }
    }

    /// `path` is the marker (`dir/.wh..wh..opq`), `dir_path` the directory it makes opaque.
    pub(super) fn opaque(&mut self, path: &[u8], dir_path: &[u8]) -> Result<(), UnpackError> {
        match self.opts.whiteouts {
            Whiteouts::Overlay => {
                let dir = parent_dir(&mut self.root, self.opts, path, dir_path, true)?;
                fs::fsetxattr(dir, OVERLAY_OPAQUE, b"y", XattrFlags::empty())
                    .map_err(|e| io_err(self.opts, path, Op::Opaque, e))
            }
            Whiteouts::Apply => {
                let opts = self.opts;
                let dir = match self.root.dir(dir_path, false) {
                    Ok(d) => d,
                    Err(ResolveError::Missing | ResolveError::NotDir) => return Ok(()),
                    Err(e) => return Err(resolve_error(opts, path, e, Op::Opaque)),
                };
                let empty = HashSet::new();
                let seen = self.seen.as_ref().unwrap_or(&empty);
                self.other.clear();
                self.other.extend_from_slice(dir_path);
                let pruned = prune(dir, &mut self.other, seen)
                    .map_err(|e| io_err(opts, path, Op::Opaque, e));
                self.root.forget();
                pruned
            }
        }
    }
}

/// Removes what is beneath `dir` (whose path is `path`) and not in `seen`: the parent
/// layers' content, where this layer's entries (and their ancestors) are kept.
fn prune(dir: BorrowedFd<'_>, path: &mut Vec<u8>, seen: &HashSet<Vec<u8>>) -> Result<(), Errno> {
    for name in resolve::list_dir(dir)? {
        let name = name.to_bytes();
        let len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        if !seen.contains(path.as_slice()) {
            resolve::remove_all(dir, name)?;
        } else {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match fs::openat(dir, name, flags, Mode::empty()) {
                Ok(sub) => prune(sub.as_fd(), path, seen)?,
                // Not a directory: this layer's own file.
                Err(Errno::NOTDIR | Errno::LOOP) => {}
                Err(e) => return Err(e),
            }
        }
        path.truncate(len);
    }
    Ok(())
}
