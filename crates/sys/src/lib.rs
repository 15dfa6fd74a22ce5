//! The only crate in berth with `unsafe`: raw syscalls that rustix does not wrap
//! (clone, mount_setattr, close_range, capset by number, signalfd, bpf, loop devices) and the
//! argv/envp arrays execve needs. Every function here is async-signal-safe unless its
//! doc says otherwise, because the runtime calls them between clone and exec.
#![allow(unsafe_code)]

pub mod bpf;
pub mod caps;
pub mod exec;
pub mod fd;
pub mod loopdev;
pub mod mount;
pub mod net;
pub mod process;
pub mod signal;

pub use rustix::io::Errno;

fn cvt(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

fn last_errno() -> Errno {
    // SAFETY: __errno_location returns a valid thread-local pointer; reading it is
    // async-signal-safe, unlike std::io::Error::last_os_error which may allocate on display.
    Errno::from_raw_os_error(unsafe { *libc::__errno_location() })
}
