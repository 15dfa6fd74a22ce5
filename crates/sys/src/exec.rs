//! execve with argv/envp prepared before the fork, so the child allocates nothing.

use crate::{last_errno, Errno};
use std::ffi::{CStr, CString};
use std::os::raw::c_char;

/// A NULL-terminated array of C strings, built in the parent and used by the child.
#[derive(Debug)]
pub struct CStrArray {
    strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrArray {
    pub fn new(strings: Vec<CString>) -> Self {
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStrArray { strings, ptrs }
    }

    pub fn strings(&self) -> &[CString] {
        &self.strings
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

// The raw pointers point into `strings`, which CStrArray owns and never mutates, so
// moving the array between threads (e.g. in tests) is sound.
// SAFETY: see above; the pointers are only read, and only by execve.
unsafe impl Send for CStrArray {}

/// Replaces the process image. Returns only on failure, with the errno.
pub fn execve(path: &CStr, argv: &CStrArray, envp: &CStrArray) -> Errno {
    // SAFETY: all three arguments are NUL-terminated strings / NULL-terminated arrays
    // owned by the caller and alive for the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    last_errno()
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): runs the program the fd refers to
/// (a sealed memfd copy of the runtime). Returns only on failure, with the errno.
pub fn execveat_fd(fd: std::os::fd::BorrowedFd<'_>, argv: &CStrArray, envp: &CStrArray) -> Errno {
    use std::os::fd::AsRawFd;
    // SAFETY: the path is a static empty C string, argv/envp are NULL-terminated arrays
    // owned by the caller and alive for the call, and the fd is borrowed, hence open.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    last_errno()
}
