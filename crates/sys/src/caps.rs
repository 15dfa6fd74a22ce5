//! Capabilities by number. rustix's typed Capability enum stops at the capabilities it
//! knows; the kernel's list grows, and the spec names them by string, so berth maps
//! names to numbers itself and sets them here by number.

use crate::{cvt, Errno};

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the calling thread's effective, permitted and inheritable sets (bit N = cap N).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and a two-element data array, the layout capset(2) v3 expects.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    cvt(ret).map(drop)
}

/// Drops capability `cap` from the bounding set.
pub fn bounding_drop(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    cvt(ret as libc::c_long).map(drop)
}

/// Whether `cap` is in the bounding set (EINVAL means the kernel does not know it).
pub fn bounding_has(cap: u32) -> Result<bool, Errno> {
    // SAFETY: prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
    cvt(ret as libc::c_long).map(|r| r == 1)
}

/// Raises `cap` in the ambient set (it must already be permitted and inheritable).
pub fn ambient_raise(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        )
    };
    cvt(ret as libc::c_long).map(drop)
}

/// Keeps permitted capabilities across the switch to a non-zero uid.
pub fn set_keepcaps(on: bool) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) };
    cvt(ret as libc::c_long).map(drop)
}
