//! Extended attributes from the tar's PAX `SCHILY.xattr.*` records (the form GNU tar,
//! Go's archive/tar and the tar crate write), minus the ones overlayfs would obey.

use super::apply::{io_err, lossy, refused};
use super::error::{Op, Refusal, UnpackError};
use super::UnpackOptions;
use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::fs::{self, XattrFlags};
use rustix::io::Errno;
use std::io::Read;

const PAX_XATTR: &[u8] = b"SCHILY.xattr.";

/// Xattrs a tar may not set: overlayfs interprets them (whiteouts, opaque directories,
/// redirects, metacopy), so a layer could forge another layer's deletions with them.
const FORBIDDEN_XATTRS: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

#[derive(Clone, Copy)]
pub(super) enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    Name(BorrowedFd<'a>, &'a [u8]),
}

/// Sets the entry's `SCHILY.xattr.*` PAX records.
pub(super) fn xattrs<R: Read>(
    opts: &UnpackOptions,
    entry: &mut tar::Entry<'_, R>,
    path: &[u8],
    target: XattrTarget<'_>,
) -> Result<(), UnpackError> {
    let Ok(Some(pax)) = entry.pax_extensions() else {
        return Ok(());
    };
    for ext in pax {
        let Ok(ext) = ext else {
            return Err(refused(opts, path, Refusal::BadHeader { field: "pax" }));
        };
        let Some(name) = ext.key_bytes().strip_prefix(PAX_XATTR) else {
            continue;
        };
        if FORBIDDEN_XATTRS.iter().any(|p| name.starts_with(p)) {
            tracing::warn!(
                layer = %opts.layer,
                entry = %lossy(path),
                xattr = %String::from_utf8_lossy(name),
                "ignoring an overlayfs xattr in the layer: it could forge whiteouts"
            );
            continue;
        }
        if name.is_empty() || name.contains(&0) {
            return Err(refused(
                opts,
                path,
                Refusal::BadHeader {
                    field: "xattr name",
                },
            ));
        }
        let value = ext.value_bytes();
        let r = match target {
            XattrTarget::Fd(fd) => fs::fsetxattr(fd, name, value, XattrFlags::empty()),
            XattrTarget::Name(dir, n) => {
                // No fd-and-name form without setxattrat (Linux 6.13); go through
                // the parent's fd in /proc, not following the final name (lsetxattr).
                let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
                p.extend_from_slice(n);
                fs::lsetxattr(&p[..], name, value, XattrFlags::empty())
            }
        };
        match r {
            Ok(()) => {}
            Err(e @ (Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS))
                if e == Errno::OPNOTSUPP || !opts.same_owner =>
            {
                tracing::warn!(
                    layer = %opts.layer,
                    entry = %lossy(path),
                    xattr = %String::from_utf8_lossy(name),
                    error = %e,
                    "skipping an xattr this filesystem or caller cannot set"
                );
            }
            Err(e) => return Err(io_err(opts, path, Op::SetXattr, e)),
        }
    }
    Ok(())
}

/// Removes the xattrs of `fd` that the entry's PAX records do not list, except overlayfs's
/// own (set by this layer's opaque marker in Overlay mode) and the host's SELinux label.
pub(super) fn drop_unlisted_xattrs<R: Read>(
    opts: &UnpackOptions,
    entry: &mut tar::Entry<'_, R>,
    path: &[u8],
    fd: BorrowedFd<'_>,
) -> Result<(), UnpackError> {
    let err = |e| io_err(opts, path, Op::SetXattr, e);
    let len = match fs::flistxattr_query(fd) {
        Ok(0) | Err(Errno::OPNOTSUPP) => return Ok(()),
        Ok(n) => n,
        Err(e) => return Err(err(e)),
    };
    let mut names = vec![0u8; len];
    let n = fs::flistxattr(fd, &mut names[..]).map_err(err)?;
    let mut listed = |name: &[u8]| -> bool {
        let Ok(Some(pax)) = entry.pax_extensions() else {
            return false;
        };
        pax.flatten()
            .any(|ext| ext.key_bytes().strip_prefix(PAX_XATTR) == Some(name))
    };
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") || name == b"security.selinux" || listed(name) {
            continue;
        }
        match fs::fremovexattr(fd, name) {
            Ok(()) | Err(Errno::NODATA) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}
