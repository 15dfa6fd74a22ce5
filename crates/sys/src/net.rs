//! Sockets: bringing `lo` up in a fresh network namespace, so `--network none`
//! containers have a working loopback as with docker and podman (an ioctl rather than
//! netlink: one flag on one interface needs no more); and receiving the one fd a
//! runtime sends over a console socket.

use crate::{cvt, Errno};

/// Sets IFF_UP on the interface `name` of the calling thread's network namespace.
pub fn interface_up(name: &str) -> Result<(), Errno> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(Errno::INVAL);
    }
    // SAFETY: a plain socket(2) call; the fd is closed below on every path.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    cvt(sock as libc::c_long)?;
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own; the name is
    // NUL-terminated (zeroed, shorter than IFNAMSIZ).
    let res = (|| unsafe {
        cvt(libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) as libc::c_long)?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        cvt(libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) as libc::c_long)?;
        Ok(())
    })();
    // SAFETY: closing the socket made above.
    unsafe { libc::close(sock) };
    res
}

/// Receives one message carrying one fd by SCM_RIGHTS (close-on-exec), as a runtime
/// sends a pty master over `--console-socket`; EPROTO when the message had none.
pub fn recv_fd(sock: impl rustix::fd::AsFd) -> Result<rustix::fd::OwnedFd, Errno> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match rustix::net::recvmsg(sock.as_fd(), &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC) {
            Err(Errno::INTR) => continue,
            r => {
                r?;
                break;
            }
        }
    }
    cmsg.drain()
        .find_map(|m| match m {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .ok_or(Errno::PROTO)
}
