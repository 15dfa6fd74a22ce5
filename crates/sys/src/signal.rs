//! Signals for the foreground `run`: signals are blocked before the fork and read from
//! a signalfd, so a SIGCHLD can never arrive between "is the child alive?" and "wait"
//! (the race that makes youki hang now and then).

use crate::{cvt, last_errno, Errno};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// Every signal the kernel lets a process block.
    pub fn all() -> Self {
        // SAFETY: sigfillset initialises the zeroed set in place.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sigfillset(&mut set) };
        SigSet(set)
    }

    pub fn empty() -> Self {
        // SAFETY: as above.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::sigemptyset(&mut set) };
        SigSet(set)
    }

    /// Adds one signal (an invalid number is ignored: sigaddset only rejects those).
    pub fn add(&mut self, sig: i32) {
        // SAFETY: the set is initialised; sigaddset validates the number.
        unsafe { libc::sigaddset(&mut self.0, sig) };
    }
}

/// Sets the blocked-signal mask, returning the previous one.
pub fn set_mask(set: &SigSet) -> Result<SigSet, Errno> {
    let mut old = SigSet::empty();
    // SAFETY: both sets are valid sigset_t values.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set.0, &mut old.0) };
    if ret != 0 {
        return Err(Errno::from_raw_os_error(ret));
    }
    Ok(old)
}

/// Restores every signal's disposition to the default, as a freshly exec'd process
/// expects; Rust's runtime ignores SIGPIPE, and ignored signals survive exec.
pub fn reset_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: signal(2) with SIG_DFL is async-signal-safe; failures (for signals
        // glibc reserves) are harmless and ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// A signalfd reading the signals in `set` (which the caller has blocked).
pub fn signalfd(set: &SigSet) -> Result<OwnedFd, Errno> {
    // SAFETY: creates a new fd from a valid sigset.
    let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal number from a signalfd (blocking).
pub fn read_signal(fd: &OwnedFd) -> Result<i32, Errno> {
    // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            &mut info as *mut _ as *mut libc::c_void,
            size,
        )
    };
    cvt(n as libc::c_long)?;
    Ok(info.ssi_signo as i32)
}
