//! Seccomp (config-linux.md#seccomp): the OCI profile is compiled to classic BPF with
//! libseccomp in the parent, where allocating is fine; the init only installs the
//! finished program with one seccomp(2) call, as late as the spec allows.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{field}: {problem} (runtime-spec config-linux.md#seccomp)")]
    Invalid { field: String, problem: String },
    #[error("{field}: libseccomp: {message}")]
    Compile { field: String, message: String },
}

/// A compiled filter: raw `struct sock_filter` bytes and seccomp(2) flags.
#[derive(Debug, Clone)]
pub struct Program {
    pub bpf: Vec<u8>,
    pub flags: u32,
    /// With SCMP_ACT_NOTIFY rules: where the notify fd goes.
    pub listener: Option<Listener>,
}

/// linux.seccomp.listenerPath and listenerMetadata.
#[derive(Debug, Clone)]
pub struct Listener {
    pub path: std::path::PathBuf,
    pub metadata: Option<String>,
}

const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;

const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 32;

fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: u32) -> ScmpAction {
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.unwrap_or(default_errno) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.unwrap_or(default_errno) as u16)
        }
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

/// One argument condition. For SCMP_CMP_MASKED_EQ the spec's `value` is the mask and
/// `valueTwo` what the masked argument must equal (as runc and libseccomp-golang read
/// it). Swapping them is not harmless: libseccomp masks the datum too, so a mask of 0
/// would make the rule match every call (docker's clone rule would then let any
/// namespace be made).
fn condition(a: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    let op = match a.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(
                a.index() as u32,
                ScmpCompareOp::MaskedEqual(a.value()),
                a.value_two().unwrap_or(0),
            )
        }
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
    };
    ScmpArgCompare::new(a.index() as u32, op, a.value())
}

fn lib(field: &str) -> impl Fn(libseccomp::error::SeccompError) -> SeccompError + '_ {
    move |e| SeccompError::Compile {
        field: field.to_string(),
        message: e.to_string(),
    }
}

/// Compiles the profile. Syscall names this kernel's libseccomp does not know are
/// skipped, as runc does, so one profile serves old and new kernels.
pub fn compile(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    compile_cached(s, None)
}

/// [`compile`], reusing the BPF of an earlier compile of the same profile from `cache`
/// (a directory only root can write): libseccomp takes ~10 ms for a docker-sized profile,
/// more than the rest of a container's creation. The key covers everything the output
/// depends on: the profile, libseccomp's version and API level (its kernel probe) and the
/// kernel release. A cache that cannot be read or written is only slower.
pub fn compile_cached(s: &LinuxSeccomp, cache: Option<&Path>) -> Result<Program, SeccompError> {
    let (flags, listener) = check(s)?;
    let cached = cache.and_then(|dir| Some((dir, cache_key(s)?)));
    if let Some(bpf) = cached.as_ref().and_then(|(dir, key)| read_cached(dir, key)) {
        return Ok(Program {
            bpf,
            flags,
            listener,
        });
    }
    let bpf = build(s)?;
    if let Some((dir, key)) = &cached {
        write_cached(dir, key, &bpf);
    }
    Ok(Program {
        bpf,
        flags,
        listener,
    })
}

/// The checks that need no libseccomp, and the seccomp(2) flags and listener.
fn check(s: &LinuxSeccomp) -> Result<(u32, Option<Listener>), SeccompError> {
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(s.default_action(), s.default_errno_ret(), default_errno);
    if default == ScmpAction::Notify {
        return Err(SeccompError::Invalid {
            field: "linux.seccomp.defaultAction".into(),
            problem: "SCMP_ACT_NOTIFY cannot be the default action (the runtime's own last syscalls would wait on a listener that has no fd yet)".into(),
        });
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    let mut notify = false;
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret(), default_errno);
        if act != ScmpAction::Notify || act == default {
            continue;
        }
        notify = true;
        if let Some(n) = sc.names().iter().find(|n| *n == "sendmsg") {
            return Err(SeccompError::Invalid {
                field: format!("linux.seccomp.syscalls[{i}].names"),
                problem: format!(
                    "{n} cannot use SCMP_ACT_NOTIFY: the runtime sends the notify fd with it"
                ),
            });
        }
    }
    if !notify {
        return Ok((flags, None));
    }
    let path = s
        .listener_path()
        .clone()
        .ok_or_else(|| SeccompError::Invalid {
            field: "linux.seccomp.listenerPath".into(),
            problem: "required when a rule uses SCMP_ACT_NOTIFY".into(),
        })?;
    // The kernel refuses TSYNC together with NEW_LISTENER; the process that
    // installs the filter is single-threaded, so TSYNC has nothing to sync anyway.
    flags = (flags & !SECCOMP_FILTER_FLAG_TSYNC) | SECCOMP_FILTER_FLAG_NEW_LISTENER;
    Ok((
        flags,
        Some(Listener {
            path,
            metadata: s.listener_metadata().clone(),
        }),
    ))
}

/// The BPF program, by libseccomp.
fn build(s: &LinuxSeccomp) -> Result<Vec<u8>, SeccompError> {
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(s.default_action(), s.default_errno_ret(), default_errno);
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("linux.seccomp.defaultAction"))?;
    for (i, arch) in s.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let a = ScmpArch::from_str(&name).map_err(|_| SeccompError::Invalid {
            field: field.clone(),
            problem: format!("unknown architecture {name:?}"),
        })?;
        ctx.add_arch(a).map_err(lib(&field))?;
    }
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(sc.action(), sc.errno_ret(), default_errno);
        if act == default {
            continue;
        }
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let args = sc.args().clone().unwrap_or_default();
            let cmps: Vec<ScmpArgCompare> = args.iter().map(condition).collect();
            // libseccomp cannot AND two conditions on the same argument: such rules are
            // split into one rule per condition (matching any), as runc does.
            let mut indexes: Vec<u32> = args.iter().map(|a| a.index() as u32).collect();
            indexes.sort_unstable();
            let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
            if cmps.is_empty() {
                ctx.add_rule(act, nr).map_err(lib(&field))?;
            } else if repeated {
                for c in cmps {
                    ctx.add_rule_conditional(act, nr, &[c])
                        .map_err(lib(&field))?;
                }
            } else {
                ctx.add_rule_conditional(act, nr, &cmps)
                    .map_err(lib(&field))?;
            }
        }
    }
    let memfd = rustix::fs::memfd_create(c"berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| SeccompError::Compile {
            field: "linux.seccomp".into(),
            message: e.to_string(),
        })?;
    ctx.export_bpf(&memfd).map_err(lib("linux.seccomp"))?;
    let mut file = std::fs::File::from(memfd);
    let mut bpf = Vec::new();
    use std::io::{Read, Seek};
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bpf))
        .map_err(|e| SeccompError::Compile {
            field: "linux.seccomp".into(),
            message: e.to_string(),
        })?;
    Ok(bpf)
}

/// The cache directory's name under a runtime's state root (container ids may not take it).
pub const CACHE_DIR: &str = ".seccomp-cache";

/// Entries kept; past this the cache starts over (a host uses a handful of profiles).
const CACHE_ENTRIES: usize = 64;

/// A sock_filter is 8 bytes; the kernel takes at most BPF_MAXINSNS (4096) of them.
const MAX_BPF: usize = 4096 * 8;

fn cache_key(s: &LinuxSeccomp) -> Option<String> {
    use sha2::{Digest, Sha256};
    let v = libseccomp::ScmpVersion::current().ok()?;
    let api = libseccomp::get_api();
    let uts = rustix::system::uname();
    let mut h = Sha256::new();
    h.update(b"berth seccomp bpf 1\0");
    h.update(format!("{}.{}.{} api {api}\0", v.major, v.minor, v.micro));
    h.update(uts.release().to_bytes());
    h.update(b"\0");
    h.update(std::env::consts::ARCH);
    h.update(b"\0");
    h.update(serde_json::to_vec(s).ok()?);
    Some(
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

fn read_cached(dir: &Path, key: &str) -> Option<Vec<u8>> {
    let bpf = std::fs::read(dir.join(key)).ok()?;
    (!bpf.is_empty() && bpf.len() % 8 == 0 && bpf.len() <= MAX_BPF).then_some(bpf)
}

fn write_cached(dir: &Path, key: &str, bpf: &[u8]) {
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .is_err()
    {
        return;
    }
    if std::fs::read_dir(dir).map_or(0, |d| d.count()) >= CACHE_ENTRIES {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // Whole or absent: written aside, then renamed into place.
    let tmp = dir.join(format!(".{key}.{}", std::process::id()));
    if std::fs::write(&tmp, bpf).is_ok() && std::fs::rename(&tmp, dir.join(key)).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&tmp);
}

/// Sends the notify fd to the listener with the container process state
/// (config-linux.md#the-container-process-state): one connection, one message.
pub fn send_to_listener(
    l: &Listener,
    state: &crate::state::StateDocument,
    pid: i32,
    fd: std::os::fd::OwnedFd,
) -> Result<(), SeccompError> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let err = |message: String| SeccompError::Compile {
        field: "linux.seccomp.listenerPath".into(),
        message,
    };
    let doc = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": l.metadata.clone().unwrap_or_default(),
        "state": state,
    });
    let bytes = doc.to_string();
    let stream = std::os::unix::net::UnixStream::connect(&l.path)
        .map_err(|e| err(format!("connecting to {}: {e}", l.path.display())))?;
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    let fds = [fd.as_fd()];
    cmsg.push(SendAncillaryMessage::ScmRights(&fds));
    let iov = [std::io::IoSlice::new(bytes.as_bytes())];
    let sent = rustix::net::sendmsg(&stream, &iov, &mut cmsg, SendFlags::NOSIGNAL)
        .map_err(|e| err(format!("sending to {}: {e}", l.path.display())))?;
    if sent < bytes.len() {
        // The fd went with the first part; the rest of the JSON follows as plain bytes.
        use std::io::Write;
        (&stream)
            .write_all(&bytes.as_bytes()[sent..])
            .map_err(|e| err(format!("sending to {}: {e}", l.path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(errno_for: &str) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": [errno_for], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        }))
        .expect("profile")
    }

    #[test]
    fn the_cache_returns_what_libseccomp_compiled_and_keys_by_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join(CACHE_DIR);
        let p = profile("mount");
        let fresh = compile(&p).expect("compile");
        let first = compile_cached(&p, Some(&cache)).expect("first");
        assert_eq!(first.bpf, fresh.bpf);
        let key = cache_key(&p).expect("key");
        assert_eq!(std::fs::read(cache.join(&key)).expect("cached"), fresh.bpf);
        // A planted entry is what the second compile returns: it was read, not rebuilt.
        let other = compile(&profile("umount2")).expect("other").bpf;
        assert_ne!(other, fresh.bpf);
        std::fs::write(cache.join(&key), &other).expect("plant");
        assert_eq!(compile_cached(&p, Some(&cache)).expect("hit").bpf, other);
        // Another profile has another key.
        assert_ne!(cache_key(&profile("umount2")).expect("key"), key);
    }

    #[test]
    fn a_damaged_cache_entry_is_compiled_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join(CACHE_DIR);
        let p = profile("mount");
        let key = cache_key(&p).expect("key");
        std::fs::create_dir_all(&cache).expect("mkdir");
        std::fs::write(cache.join(&key), b"not bpf").expect("damage");
        let got = compile_cached(&p, Some(&cache)).expect("compile");
        assert_eq!(got.bpf, compile(&p).expect("compile").bpf);
        assert_eq!(std::fs::read(cache.join(&key)).expect("rewritten"), got.bpf);
    }
}
