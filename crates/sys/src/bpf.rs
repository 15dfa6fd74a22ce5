//! The bpf(2) calls for the cgroup v2 device controller: v2 has no devices.allow file,
//! access is decided by a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup.
//! The program itself is assembled (safely) in berth-runtime.

use crate::{cvt, Errno};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// One eBPF instruction, as the kernel lays it out.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    // The kernel accepts a larger, zero-filled attr; pad so later fields read as 0.
    _pad: [u64; 12],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _pad: [u32; 11],
}

/// Loads a device-cgroup program; on failure returns the errno and the verifier log.
pub fn load_device_program(insns: &[Insn]) -> Result<OwnedFd, (Errno, String)> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: attr points at live buffers (insns, license, log) for the whole call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    match cvt(ret) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new fd we own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            Err((e, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

/// Attaches a loaded device program to the cgroup directory `cgroup`.
pub fn attach_device_program<C: AsFd, P: AsFd>(cgroup: C, prog: P) -> Result<(), Errno> {
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_bpf_fd: prog.as_fd().as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: attr is a valid, fully initialised BPF_PROG_ATTACH argument.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    cvt(ret).map(drop)
}
