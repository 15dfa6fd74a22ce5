//! Keeping the runtime's own binary out of a container's reach (the CVE-2019-5736
//! class). A process in the container that can open `/proc/<pid>/exe` of a berth-oci
//! process, or make one exec `#!/proc/self/exe`, holds the host's binary and can
//! rewrite it once berth-oci exits. Two defences:
//!
//! 1. Every berth-oci process is non-dumpable from its first instruction in `main`
//!    ([`not_dumpable`]), and so are the children it clones (the flag is inherited):
//!    without CAP_SYS_PTRACE nothing can open their `/proc/<pid>/exe`.
//! 2. Where processes of the container already run while berth-oci works in its
//!    namespaces (`exec`, and `create` joining an existing pid namespace), berth-oci
//!    first re-executes itself from a sealed memfd copy ([`run_from_sealed_copy`]).
//!    Its `/proc/self/exe` is then that copy, which cannot be written, so even
//!    `#!/proc/self/exe` inside the container only ever reaches the copy. A binary
//!    on a read-only mount is already unwritable that way and skips the copy.
//!
//! A fresh pid namespace needs only (1): until the init execs, it is the namespace's
//! only process, and after an exec of `#!/proc/self/exe` the binary it runs makes
//! itself non-dumpable before any other process can exist there. `create`/`run` thus
//! pay no copy, which keeps the common path fast.

use berth_sys::exec::CStrArray;
use berth_sys::Errno;
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, thiserror::Error)]
pub enum ExeError {
    #[error("protecting the runtime binary (CVE-2019-5736): {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

fn io(what: &'static str) -> impl Fn(Errno) -> ExeError {
    move |e| ExeError::Io {
        what,
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    }
}

/// Makes this process non-dumpable (see the module docs). Cheap: one prctl. Only as
/// root: an unprivileged runtime must still write its child's /proc files (uid_map),
/// which non-dumpable makes root's, and its binary is not the user's to write anyway.
pub fn not_dumpable() {
    if rustix::process::geteuid().is_root() {
        // Cannot fail with these arguments; if it did, the copy still protects exec.
        let _ = berth_sys::process::set_not_dumpable();
    }
}

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Whether `exe` (this process's binary) cannot be written through
/// `/proc/<pid>/exe`: it is a sealed copy, or it lives on a read-only mount (an install
/// on a read-only /usr, or a read-only bind of the binary), where a reopen for writing
/// fails with EROFS.
fn unwritable(exe: &std::os::fd::OwnedFd) -> bool {
    rustix::fs::fcntl_get_seals(exe).is_ok_and(|s| s.contains(SealFlags::WRITE))
        || rustix::fs::fstatvfs(exe)
            .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Re-executes this process from a sealed memfd copy of its binary, with the same
/// arguments and environment, unless its binary is already unwritable (see
/// [`unwritable`]). Returns Ok only in that case; on success the re-executed process
/// starts over from `main`.
pub fn run_from_sealed_copy() -> Result<(), ExeError> {
    let exe = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("opening /proc/self/exe"))?;
    if unwritable(&exe) {
        return Ok(());
    }
    let size = rustix::fs::fstat(&exe)
        .map_err(io("stat of /proc/self/exe"))?
        .st_size as usize;
    let copy = rustix::fs::memfd_create(
        c"berth-oci",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(io("memfd_create"))?;
    let mut done = 0;
    while done < size {
        match rustix::fs::sendfile(&copy, &exe, None, size - done) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io("copying the binary to a memfd")(e)),
        }
    }
    rustix::fs::fcntl_add_seals(&copy, SEALS).map_err(io("sealing the copy"))?;
    let cstr = |b: &[u8]| CString::new(b).ok();
    let argv: Vec<CString> = std::env::args_os()
        .filter_map(|a| cstr(a.as_bytes()))
        .collect();
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect();
    let e = berth_sys::exec::execveat_fd(
        std::os::fd::AsFd::as_fd(&copy),
        &CStrArray::new(argv),
        &CStrArray::new(envp),
    );
    Err(io("executing the sealed copy")(e))
}
