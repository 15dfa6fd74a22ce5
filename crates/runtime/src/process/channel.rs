//! The one channel between the runtime and the container's init: a SOCK_SEQPACKET
//! socketpair carrying fixed-size frames, so the child can send and receive without
//! allocating. Handshake, in order:
//!
//! 1. parent → child `Go`: the child is in its cgroups, its uid/gid maps, rlimits and
//!    oom_score_adj are written.
//! 2. child → parent `Ready`: namespaces, rootfs, credentials are set up; the
//!    executable was found. (The child then waits on the exec fifo for `start`, or execs.)
//!    Between 1 and 2, only when the config has create hooks: child → parent `Pause`
//!    once its mounts are made (before pivot_root); the parent runs the prestart,
//!    createRuntime and createContainer hooks and answers `Go`.
//! 3. child → parent `Failed` at any step instead; or, after `Ready`, if exec fails.
//!    A clean exec closes the child's end (close-on-exec): the parent reads EOF.

use berth_sys::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::os::fd::{AsFd, OwnedFd};

/// The init's setup steps, for naming the one that failed.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    WaitParent = 1,
    JoinNamespace,
    UnshareCgroupNs,
    BecomeRoot,
    Hostname,
    Domainname,
    RootPropagation,
    RootfsBind,
    MountTarget,
    MountSource,
    MountCreate,
    MountAttach,
    MountAttr,
    Device,
    DevSymlink,
    Cwd,
    Sysctl,
    Console,
    ConsoleSend,
    MaskPath,
    ReadonlyPath,
    PivotRoot,
    ReadonlyRoot,
    FinalPropagation,
    Setsid,
    Stdio,
    BoundingSet,
    Setgroups,
    Setgid,
    Setuid,
    Capset,
    Ambient,
    Chdir,
    NoNewPrivs,
    Fds,
    ExecLookup,
    ExecFifo,
    Exec,
    Seccomp,
    Personality,
    IoPriority,
    Scheduler,
    Lsm,
    CpuAffinity,
    MemoryPolicy,
}

impl Step {
    const ALL: [Step; 45] = [
        Step::WaitParent,
        Step::JoinNamespace,
        Step::UnshareCgroupNs,
        Step::BecomeRoot,
        Step::Hostname,
        Step::Domainname,
        Step::RootPropagation,
        Step::RootfsBind,
        Step::MountTarget,
        Step::MountSource,
        Step::MountCreate,
        Step::MountAttach,
        Step::MountAttr,
        Step::Device,
        Step::DevSymlink,
        Step::Cwd,
        Step::Sysctl,
        Step::Console,
        Step::ConsoleSend,
        Step::MaskPath,
        Step::ReadonlyPath,
        Step::PivotRoot,
        Step::ReadonlyRoot,
        Step::FinalPropagation,
        Step::Setsid,
        Step::Stdio,
        Step::BoundingSet,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::Capset,
        Step::Ambient,
        Step::Chdir,
        Step::NoNewPrivs,
        Step::Fds,
        Step::ExecLookup,
        Step::ExecFifo,
        Step::Exec,
        Step::Seccomp,
        Step::Personality,
        Step::IoPriority,
        Step::Scheduler,
        Step::Lsm,
        Step::CpuAffinity,
        Step::MemoryPolicy,
    ];

    fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

pub const DETAIL_LEN: usize = 192;

/// A failed step: which, on which item (mount, device, … index), and why.
#[derive(Clone, Copy)]
pub struct Failure {
    pub step: Step,
    pub index: u32,
    pub errno: i32,
    detail: [u8; DETAIL_LEN],
    detail_len: usize,
}

impl Failure {
    pub fn new(step: Step, index: u32, errno: Errno) -> Self {
        Failure {
            step,
            index,
            errno: errno.raw_os_error(),
            detail: [0; DETAIL_LEN],
            detail_len: 0,
        }
    }

    /// Attaches a message (e.g. the kernel's fsconfig log) without allocating.
    pub fn with_detail(mut self, bytes: &[u8]) -> Self {
        let n = bytes.len().min(DETAIL_LEN);
        self.detail[..n].copy_from_slice(&bytes[..n]);
        self.detail_len = n;
        self
    }

    pub fn detail(&self) -> String {
        String::from_utf8_lossy(&self.detail[..self.detail_len])
            .trim()
            .to_string()
    }

    pub fn errno(&self) -> Errno {
        Errno::from_raw_os_error(self.errno)
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}[{}]: {} {}",
            self.step,
            self.index,
            self.errno(),
            self.detail()
        )
    }
}

// Frames are fixed-size by design (the child sends them without allocating).
#[allow(clippy::large_enum_variant)]
pub enum Msg {
    Go,
    Ready,
    Pause,
    Failed(Failure),
    /// child → parent: the seccomp notify fd (SCM_RIGHTS), for the listenerPath.
    SeccompFd(OwnedFd),
    /// intermediate → parent: the pid of the process it forked (rootless exec).
    Pid(i32),
}

const FRAME: usize = 16 + DETAIL_LEN;
const GO: u32 = 1;
const READY: u32 = 2;
const FAILED: u32 = 3;
const PAUSE: u32 = 4;
const SECCOMP_FD: u32 = 5;
const PID: u32 = 6;

/// One end of the channel.
pub struct Channel(OwnedFd);

/// Creates the channel: (parent's end, child's end), both close-on-exec and numbered
/// at or above `floor`, so they can never sit in the range `--preserve-fds` passes on.
pub fn pair(floor: i32) -> Result<(Channel, Channel), Errno> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let lift = |fd: OwnedFd| rustix::io::fcntl_dupfd_cloexec(&fd, floor);
    Ok((Channel(lift(a)?), Channel(lift(b)?)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<(), Errno> {
        let mut frame = [0u8; FRAME];
        let (kind, f) = match msg {
            Msg::Go => (GO, None),
            Msg::Ready => (READY, None),
            Msg::Pause => (PAUSE, None),
            Msg::SeccompFd(fd) => return self.send_fd(fd),
            Msg::Pid(pid) => {
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&PID.to_ne_bytes());
                b[4..].copy_from_slice(&pid.to_ne_bytes());
                return rustix::net::send(&self.0, &b, SendFlags::NOSIGNAL).map(drop);
            }
            Msg::Failed(f) => (FAILED, Some(f)),
        };
        frame[0..4].copy_from_slice(&kind.to_ne_bytes());
        if let Some(f) = f {
            frame[4..8].copy_from_slice(&(f.step as u32).to_ne_bytes());
            frame[8..12].copy_from_slice(&f.index.to_ne_bytes());
            frame[12..16].copy_from_slice(&f.errno.to_ne_bytes());
            frame[16..16 + f.detail_len].copy_from_slice(&f.detail[..f.detail_len]);
        }
        let len = if f.is_some() {
            16 + f.map_or(0, |f| f.detail_len)
        } else {
            4
        };
        // NOSIGNAL: a parent that already exited must not kill the init with SIGPIPE.
        rustix::net::send(&self.0, &frame[..len], SendFlags::NOSIGNAL).map(drop)
    }

    /// One frame carrying an fd. Stack buffers only: the child sends it.
    fn send_fd(&self, fd: &OwnedFd) -> Result<(), Errno> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = SendAncillaryBuffer::new(&mut space);
        let fds = [fd.as_fd()];
        cmsg.push(SendAncillaryMessage::ScmRights(&fds));
        let kind = SECCOMP_FD.to_ne_bytes();
        let iov = [std::io::IoSlice::new(&kind)];
        rustix::net::sendmsg(&self.0, &iov, &mut cmsg, SendFlags::NOSIGNAL).map(drop)
    }

    /// Receives one frame; Ok(None) on EOF (the peer closed or exec'd).
    pub fn recv(&self) -> Result<Option<Msg>, Errno> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage};
        let mut frame = [0u8; FRAME];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let n = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut frame)];
            match rustix::net::recvmsg(&self.0, &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC) {
                Err(Errno::INTR) => continue,
                r => break r?.bytes,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let mut passed = None;
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                passed = fds.next();
            }
        }
        let word =
            |i: usize| u32::from_ne_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
        match word(0) {
            GO => Ok(Some(Msg::Go)),
            READY => Ok(Some(Msg::Ready)),
            PAUSE => Ok(Some(Msg::Pause)),
            SECCOMP_FD => passed
                .map(|fd| Some(Msg::SeccompFd(fd)))
                .ok_or(Errno::PROTO),
            PID if n >= 8 => Ok(Some(Msg::Pid(word(4) as i32))),
            FAILED if n >= 16 => {
                let step = Step::from_u32(word(4)).ok_or(Errno::PROTO)?;
                let f = Failure::new(step, word(8), Errno::from_raw_os_error(word(12) as i32));
                Ok(Some(Msg::Failed(f.with_detail(&frame[16..n]))))
            }
            _ => Err(Errno::PROTO),
        }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let (a, b) = pair(3).expect("socketpair");
        a.send(&Msg::Go).expect("send");
        assert!(matches!(b.recv(), Ok(Some(Msg::Go))));
        let f = Failure::new(Step::MountAttach, 3, Errno::PERM).with_detail(b"e tmpfs: Bad value");
        b.send(&Msg::Failed(f)).expect("send");
        match a.recv() {
            Ok(Some(Msg::Failed(g))) => {
                assert_eq!(g.step, Step::MountAttach);
                assert_eq!(g.index, 3);
                assert_eq!(g.errno(), Errno::PERM);
                assert_eq!(g.detail(), "e tmpfs: Bad value");
            }
            _ => panic!("expected a failure frame"),
        }
        drop(b);
        assert!(matches!(a.recv(), Ok(None)));
    }
}
