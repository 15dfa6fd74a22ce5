//! One network interface call: bringing `lo` up in a fresh network namespace, so
//! `--network none` containers have a working loopback as with docker and podman.
//! An ioctl rather than netlink: one flag on one interface needs no more.

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
