//! File-descriptor hygiene for the container's init: nothing of the host's may
//! survive exec except stdio and the fds the caller asked to preserve.

use crate::{cvt, Errno};

const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

/// Marks every fd from `first` upwards close-on-exec. Marking instead of closing keeps
/// the fds the init still needs (sync socket, exec fifo) usable until exec.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes plain integers; CLOEXEC mode closes nothing now.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    cvt(ret).map(drop)
}

/// Clears close-on-exec on one fd so it reaches the container (`--preserve-fds`).
pub fn clear_cloexec(fd: i32) -> Result<(), Errno> {
    // SAFETY: fcntl on an integer fd; an invalid fd yields EBADF.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    cvt(ret as libc::c_long).map(drop)
}

/// dup2: makes `target` a copy of `fd` (without close-on-exec), for a child's stdio.
pub fn dup_onto(fd: i32, target: i32) -> Result<(), Errno> {
    if fd == target {
        return clear_cloexec(fd);
    }
    // SAFETY: dup2 on integers; errors come back as -1.
    let ret = unsafe { libc::dup2(fd, target) };
    cvt(ret as libc::c_long).map(drop)
}

/// dup2 for the console: makes `fd` the process's stdin, stdout and stderr.
pub fn dup_to_stdio(fd: i32) -> Result<(), Errno> {
    for target in 0..3 {
        // SAFETY: dup2 on integers; errors come back as -1.
        let ret = unsafe { libc::dup2(fd, target) };
        cvt(ret as libc::c_long)?;
    }
    Ok(())
}

/// Whether the working directory is reachable from the process's root: getcwd(2)
/// fails with ENOENT or starts with "(unreachable)" for a cwd outside it (a directory
/// fd of the runtime entered through /proc/self/fd). Stack buffer: async-signal-safe.
pub fn cwd_inside_root() -> Result<bool, Errno> {
    let mut buf = [0u8; 4096];
    // SAFETY: the kernel writes at most buf.len() bytes into our stack buffer.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    match cvt(ret) {
        Ok(_) => Ok(buf[0] == b'/'),
        Err(Errno::NOENT) => Ok(false),
        // A path longer than our buffer is still a path inside the root.
        Err(Errno::RANGE) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Takes ownership of an fd this process inherited by number (`--ready-fd 5`), after
/// checking it is open, and marks it close-on-exec so it goes no further.
pub fn take_inherited(fd: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl on an integer fd; an unknown fd yields EBADF.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    cvt(ret as libc::c_long)?;
    // SAFETY: the fd is open (checked above) and was handed to this process by its
    // parent for this one owner; nothing else in the process refers to it by number.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}
