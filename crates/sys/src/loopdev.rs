//! Loop devices (loop(4)), which rustix does not wrap: attach a backing file to a free
//! device with one LOOP_CONFIGURE, so the filesystem image of a size-limited volume can
//! be mounted with mount(2). Not async-signal-safe (opens files, formats a path).

use crate::{cvt, Errno};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
/// The device detaches itself when its last user (the mount) goes away, so an unmount
/// frees it and nothing needs to remember the device number.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` from linux/loop.h.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` from linux/loop.h (Linux 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device: its path and an open fd. The device stays attached while
/// the fd is open or a mount uses it, and detaches itself after both are gone.
pub struct Loop {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// Attaches `backing` (opened read-write) to a free loop device with autoclear set.
/// Retries when another process takes the free device first.
pub fn attach<Fd: AsFd>(backing: Fd) -> Result<Loop, Errno> {
    use rustix::fs::{open, Mode, OFlags};
    let ctl = open(
        "/dev/loop-control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for _ in 0..64 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = cvt(unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) } as libc::c_long)?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
            Ok(d) => d,
            // udev may not have made the node yet, or another process raced us.
            Err(Errno::NOENT) | Err(Errno::BUSY) => continue,
            Err(e) => return Err(e),
        };
        let mut cfg = LoopConfig {
            fd: backing.as_fd().as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                device: 0,
                inode: 0,
                rdevice: 0,
                offset: 0,
                sizelimit: 0,
                number: 0,
                encrypt_type: 0,
                encrypt_key_size: 0,
                flags: LO_FLAGS_AUTOCLEAR,
                file_name: [0; 64],
                crypt_name: [0; 64],
                encrypt_key: [0; 32],
                init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: `cfg` is a correctly laid out loop_config that lives for the call.
        let r =
            unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &mut cfg as *mut LoopConfig) };
        match cvt(r as libc::c_long) {
            Ok(_) => return Ok(Loop { path, fd: dev }),
            // Taken between GET_FREE and CONFIGURE: ask for another.
            Err(Errno::BUSY) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::BUSY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
