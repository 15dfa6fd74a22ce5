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

/// Opens `path` inside the tree at `root` as a process chrooted there would see it:
/// `..` and absolute symlinks stop at `root`, /proc's magic links (which point anywhere)
/// are refused, and the fd is close-on-exec. How berth opens anything in a container's
/// rootfs (hostile content) from outside it. Async-signal-safe when `path` is a `&CStr`.
pub fn open_in_root<P: rustix::path::Arg + Copy>(
    root: impl rustix::fd::AsFd,
    path: P,
    flags: rustix::fs::OFlags,
) -> Result<rustix::fd::OwnedFd, rustix::io::Errno> {
    openat2(
        root,
        path,
        flags | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
}

/// openat2(2), asked again while it says EAGAIN. With RESOLVE_IN_ROOT or RESOLVE_BENEATH
/// a lookup through `..` fails that way whenever a rename or a mount happened anywhere on
/// the host meanwhile (the kernel cannot then prove the walk stayed inside), which a busy
/// host does all the time. Bounded, so a host that never lets it finish gets the error.
/// A loop around one syscall: async-signal-safe when `path` is a `&CStr`.
pub fn openat2<P: rustix::path::Arg + Copy>(
    dir: impl rustix::fd::AsFd,
    path: P,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    resolve: rustix::fs::ResolveFlags,
) -> Result<rustix::fd::OwnedFd, rustix::io::Errno> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir.as_fd(), path, flags, mode, resolve) {
            Err(rustix::io::Errno::AGAIN) if tries < 1000 => tries += 1,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Under a storm of renames elsewhere, a `..` lookup in RESOLVE_IN_ROOT gets EAGAIN
    /// now and then from the kernel; the wrapper never lets it through.
    #[test]
    fn openat2_outlasts_renames_elsewhere() {
        let dir = std::env::temp_dir().join(format!("berth-openat2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/a/b")).expect("mkdir");
        std::fs::create_dir_all(dir.join("spin")).expect("mkdir");
        std::fs::write(dir.join("spin/x"), b"").expect("file");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spin = dir.join("spin");
        let renamer = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let _ = std::fs::rename(spin.join("x"), spin.join("y"));
                let _ = std::fs::rename(spin.join("y"), spin.join("x"));
            }
        });
        let root = rustix::fs::open(
            dir.join("root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("root");
        let (flags, resolve) = (
            OFlags::PATH | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        );
        let (mut raw_again, mut failures) = (0, vec![]);
        for _ in 0..20_000 {
            if matches!(
                rustix::fs::openat2(&root, "a/b/../../a/b/..", flags, Mode::empty(), resolve),
                Err(rustix::io::Errno::AGAIN)
            ) {
                raw_again += 1;
            }
            if let Err(e) = super::openat2(&root, "a/b/../../a/b/..", flags, Mode::empty(), resolve)
            {
                failures.push(e);
            }
        }
        stop.store(true, Ordering::Relaxed);
        renamer.join().expect("renamer");
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("raw openat2 said EAGAIN {raw_again} times in 20000");
        assert_eq!(failures, vec![], "the wrapper let errors through");
    }
}
