//! mount_setattr(2), which rustix lacks: changes flags and propagation of a mount
//! (optionally a whole tree) through an fd, so no path is re-resolved.

use crate::{cvt, Errno};
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd};

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x100000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

pub const AT_RECURSIVE: u32 = 0x8000;
pub const AT_EMPTY_PATH: u32 = 0x1000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Flags and propagation to set on a mount.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub set: u64,
    pub clear: u64,
    /// MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE; 0 leaves it.
    pub propagation: u64,
    /// A user namespace fd for MOUNT_ATTR_IDMAP, or -1.
    pub userns_fd: i32,
}

/// Applies `attr` to the mount at `path` relative to `dirfd` (use an empty path with
/// AT_EMPTY_PATH to act on the fd itself). `flags` takes AT_RECURSIVE, AT_EMPTY_PATH.
pub fn mount_setattr<Fd: AsFd>(
    dirfd: Fd,
    path: &CStr,
    flags: u32,
    attr: Attr,
) -> Result<(), Errno> {
    let mut a = MountAttr {
        attr_set: attr.set,
        attr_clr: attr.clear,
        propagation: attr.propagation,
        userns_fd: if attr.userns_fd >= 0 {
            attr.userns_fd as u64
        } else {
            0
        },
    };
    // SAFETY: `a` lives for the call and its size is passed; `path` is NUL-terminated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_fd().as_raw_fd(),
            path.as_ptr(),
            flags as libc::c_uint,
            &mut a as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    cvt(ret).map(drop)
}
