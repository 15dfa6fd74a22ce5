//! POSIX-platform hooks (config.md#posix-platform-hooks): programs the runtime runs at
//! fixed points of the lifecycle, each given the container's state on stdin.
//!
//! | hook            | when                                   | namespaces   | on failure |
//! |-----------------|----------------------------------------|--------------|------------|
//! | prestart        | create, init set up, before pivot_root | runtime's    | create fails |
//! | createRuntime   | right after prestart                   | runtime's    | create fails |
//! | createContainer | after createRuntime                    | container's  | create fails |
//! | startContainer  | start, before the user's program       | container's  | start fails, container stopped |
//! | poststart       | start, after the program is released   | runtime's    | warning |
//! | poststop        | delete, after the container is removed | runtime's    | warning |
//!
//! A hook runs as a child of the runtime: env exactly as given (nothing inherited),
//! `args` as argv (or the path alone), stdin the state JSON, stdout and stderr captured
//! for the error message. "In the container's namespaces" means the child joins the
//! init's namespaces with setns before exec ([`Joined`]); startContainer also enters
//! its root, since the init has pivoted by then.

use crate::process::child::Child;
use crate::process::join::{JoinError, Joined};
use crate::state::StateDocument;
use berth_sys::exec::CStrArray;
use berth_sys::process::{clone_process, Forked};
use berth_sys::Errno;
use oci_spec::runtime::{Hook, Hooks};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::OFlags;
use rustix::process::Pid;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Most of a failing hook's output that goes into the error message.
const OUTPUT_LIMIT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn field(self) -> &'static str {
        match self {
            Kind::Prestart => "hooks.prestart",
            Kind::CreateRuntime => "hooks.createRuntime",
            Kind::CreateContainer => "hooks.createContainer",
            Kind::StartContainer => "hooks.startContainer",
            Kind::Poststart => "hooks.poststart",
            Kind::Poststop => "hooks.poststop",
        }
    }

    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)]
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }

    /// Where the hook runs: in the runtime's namespaces, or joined to the init's.
    fn in_container(self) -> bool {
        matches!(self, Kind::CreateContainer | Kind::StartContainer)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{field}[{index}] ({path}): {problem}")]
    Failed {
        field: &'static str,
        index: usize,
        path: String,
        problem: String,
    },
    #[error("{field}: {source}")]
    Join {
        field: &'static str,
        source: JoinError,
    },
}

/// Runs the hooks of `kind` in order; stops at the first that fails. `pid` is the
/// init's (needed for the hooks that run in the container's namespaces).
pub fn run(
    kind: Kind,
    hooks: Option<&Hooks>,
    state: &StateDocument,
    pid: i32,
) -> Result<(), HookError> {
    let list = hooks.map(|h| kind.of(h)).unwrap_or(&[]);
    if list.is_empty() {
        return Ok(());
    }
    let joined = if kind.in_container() {
        let chroot = kind == Kind::StartContainer;
        Some(Joined::open(pid, chroot).map_err(|source| HookError::Join {
            field: kind.field(),
            source,
        })?)
    } else {
        None
    };
    let input = serde_json::to_vec(state).expect("a state document always serializes");
    for (index, hook) in list.iter().enumerate() {
        let failed = |problem: String| HookError::Failed {
            field: kind.field(),
            index,
            path: hook.path().display().to_string(),
            problem,
        };
        run_one(hook, &input, joined.as_ref()).map_err(failed)?;
    }
    Ok(())
}

/// Runs every hook of `kind`, logging failures as warnings and going on with the
/// next: for poststart and poststop, where "the remaining hooks and lifecycle continue
/// as if the hook had succeeded".
pub fn run_warn(kind: Kind, hooks: Option<&Hooks>, state: &StateDocument) {
    let list = hooks.map(|h| kind.of(h)).unwrap_or(&[]);
    if list.is_empty() {
        return;
    }
    let input = serde_json::to_vec(state).expect("a state document always serializes");
    for (index, hook) in list.iter().enumerate() {
        if let Err(problem) = run_one(hook, &input, None) {
            let e = HookError::Failed {
                field: kind.field(),
                index,
                path: hook.path().display().to_string(),
                problem,
            };
            tracing::warn!("{e}");
        }
    }
}

/// What the child needs, built before the fork.
struct Prepared {
    path: CString,
    argv: CStrArray,
    envp: CStrArray,
}

fn prepare(hook: &Hook) -> Result<Prepared, String> {
    let cstr = |s: &str, what: &str| {
        CString::new(s).map_err(|_| format!("{what} {s:?} contains a NUL byte"))
    };
    let path = hook.path().to_str().ok_or("path is not UTF-8")?;
    let path = cstr(path, "path")?;
    let args = match hook.args() {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|a| cstr(a, "argument"))
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![path.clone()],
    };
    let env = hook
        .env()
        .iter()
        .flatten()
        .map(|e| cstr(e, "env entry"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared {
        path,
        argv: CStrArray::new(args),
        envp: CStrArray::new(env),
    })
}

fn errno_text(e: Errno) -> String {
    std::io::Error::from_raw_os_error(e.raw_os_error()).to_string()
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("creating a pipe: {}", errno_text(e)))
}

fn run_one(hook: &Hook, input: &[u8], joined: Option<&Joined>) -> Result<(), String> {
    let p = prepare(hook)?;
    let (stdin_r, stdin_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    // The child reports a failure before exec here; exec closes it (EOF = exec'd).
    let (report_r, report_w) = pipe()?;
    // The child never returns from here: around_clone's restoring setns must only
    // run in the parent.
    let fork = || match clone_process(0) {
        Ok(Forked::Child) => child(&p, joined, &stdin_r, &out_w, &report_w),
        Ok(Forked::Parent(pid)) => Ok(pid),
        Err(e) => Err(e),
    };
    let forked = match joined {
        Some(j) => j.around_clone(fork).map_err(|e| e.to_string())?,
        None => fork(),
    };
    let pid = forked.map_err(|e| format!("fork: {}", errno_text(e)))?;
    drop((stdin_r, out_w, report_w));
    let guard = Child::new(pid);
    let mut report = [0u8; 8];
    let n = read_full(&report_r, &mut report);
    if n == report.len() {
        let what = i32::from_ne_bytes(report[..4].try_into().unwrap_or_default());
        let e = Errno::from_raw_os_error(i32::from_ne_bytes(
            report[4..].try_into().unwrap_or_default(),
        ));
        let _ = guard.reap();
        return Err(match what {
            0 => format!("exec: {}", errno_text(e)),
            i => format!(
                "joining the container's {} namespace: {}",
                ["", "user", "ipc", "uts", "net", "cgroup", "mnt", "time", "root"]
                    .get(i as usize)
                    .unwrap_or(&"?"),
                errno_text(e)
            ),
        });
    }
    let timeout = hook.timeout().map(|t| Duration::from_secs(t.max(1) as u64));
    let (status, output) = supervise(pid, stdin_w, out_r, input, timeout, guard)?;
    match status {
        Some(s) if s.exit_status() == Some(0) => {
            if !output.is_empty() {
                tracing::debug!("hook {}: {}", hook.path().display(), output.trim_end());
            }
            Ok(())
        }
        Some(s) => Err(with_output(
            crate::process::spawn::describe_status(s),
            &output,
        )),
        None => Err(with_output(
            format!(
                "timed out after {} s and was killed (timeout is config.md's hook timeout)",
                timeout.map_or(0, |t| t.as_secs())
            ),
            &output,
        )),
    }
}

fn with_output(problem: String, output: &str) -> String {
    let out = output.trim_end();
    if out.is_empty() {
        problem
    } else {
        format!("{problem}; output: {out}")
    }
}

/// The hook's child side: join, wire stdio, exec. Async-signal-safe only.
fn child(
    p: &Prepared,
    joined: Option<&Joined>,
    stdin: &OwnedFd,
    out: &OwnedFd,
    report: &OwnedFd,
) -> ! {
    let fail = |what: i32, e: Errno| -> ! {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&what.to_ne_bytes());
        b[4..].copy_from_slice(&e.raw_os_error().to_ne_bytes());
        let _ = rustix::io::write(report, &b);
        berth_sys::process::exit_immediately(127)
    };
    if let Some(j) = joined {
        if let Err((name, e)) = j.enter(false) {
            let i = ["user", "ipc", "uts", "net", "cgroup", "mnt", "time", "root"]
                .iter()
                .position(|n| *n == name)
                .map_or(0, |i| i as i32 + 1);
            fail(i, e);
        }
    }
    let (i, o) = (stdin.as_raw_fd(), out.as_raw_fd());
    for (fd, target) in [(i, 0), (o, 1), (o, 2)] {
        if let Err(e) = berth_sys::fd::dup_onto(fd, target) {
            fail(0, e);
        }
    }
    berth_sys::signal::reset_dispositions();
    let _ = berth_sys::signal::set_mask(&berth_sys::signal::SigSet::empty());
    let e = berth_sys::exec::execve(&p.path, &p.argv, &p.envp);
    fail(0, e)
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    n
}

/// Feeds stdin, collects output, and waits for the exit or the timeout. Returns the
/// status (None on timeout, the hook then killed) and the output.
fn supervise(
    pid: Pid,
    stdin: OwnedFd,
    out: OwnedFd,
    input: &[u8],
    timeout: Option<Duration>,
    guard: Child,
) -> Result<(Option<rustix::process::WaitStatus>, String), String> {
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| format!("pidfd_open: {}", errno_text(e)))?;
    for fd in [&stdin, &out] {
        let fl = rustix::fs::fcntl_getfl(fd).map_err(errno_text)?;
        rustix::fs::fcntl_setfl(fd, fl | OFlags::NONBLOCK).map_err(errno_text)?;
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut stdin = Some(stdin);
    let mut sent = 0;
    let mut output = Vec::new();
    let mut out_open = true;
    loop {
        if sent == input.len() {
            // EOF on stdin once the whole state is written.
            stdin = None;
        }
        let remaining = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(r) => Some(r),
                None => {
                    drop(guard);
                    return Ok((None, String::from_utf8_lossy(&output).into_owned()));
                }
            },
            None => None,
        };
        let ts = remaining.map(|r| rustix::time::Timespec {
            tv_sec: r.as_secs() as i64,
            tv_nsec: r.subsec_nanos() as i64,
        });
        let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
        if out_open {
            fds.push(PollFd::new(&out, PollFlags::IN));
        }
        if let Some(s) = &stdin {
            fds.push(PollFd::new(s, PollFlags::OUT));
        }
        match poll(&mut fds, ts.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(format!("poll: {}", errno_text(e))),
        }
        let exited = !fds[0].revents().is_empty();
        drop(fds);
        if out_open {
            out_open = drain(&out, &mut output);
        }
        if let Some(s) = &stdin {
            match rustix::io::write(s, &input[sent..]) {
                Ok(k) => sent += k,
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                // The hook closed its stdin without reading it all: its business.
                Err(_) => sent = input.len(),
            }
        }
        if exited {
            // Whatever is buffered now; a daemon the hook left behind may hold the
            // pipe open forever, so no waiting for EOF.
            if out_open {
                drain(&out, &mut output);
            }
            let status = guard.reap();
            return Ok((status, String::from_utf8_lossy(&output).into_owned()));
        }
    }
}

/// Reads what is available; false once the pipe is at EOF.
fn drain(fd: &OwnedFd, output: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return false,
            Ok(k) => {
                let room = OUTPUT_LIMIT.saturating_sub(output.len());
                output.extend_from_slice(&buf[..k.min(room)]);
            }
            Err(Errno::INTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Checks of config.md#posix-platform-hooks that need no side effects.
pub fn validate(hooks: &Hooks) -> Result<(), crate::spec::SpecError> {
    for kind in [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ] {
        for (i, h) in kind.of(hooks).iter().enumerate() {
            let field = format!("{}[{i}]", kind.field());
            if !h.path().is_absolute() {
                return Err(crate::spec::SpecError::invalid(
                    format!("{field}.path"),
                    format!("{} is not absolute", h.path().display()),
                    "config.md#posix-platform-hooks",
                ));
            }
            if let Some(t) = h.timeout() {
                if t <= 0 {
                    return Err(crate::spec::SpecError::invalid(
                        format!("{field}.timeout"),
                        format!("{t} is not greater than zero"),
                        "config.md#posix-platform-hooks",
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Status;

    fn state() -> StateDocument {
        StateDocument {
            oci_version: "1.2.0".into(),
            id: "t".into(),
            pid: 1,
            status: Status::Created,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: Default::default(),
        }
    }

    fn hooks(json: &str) -> Hooks {
        serde_json::from_str(json).expect("hooks json")
    }

    #[test]
    fn stdin_env_and_args_reach_the_hook() {
        let dir = std::env::temp_dir().join(format!("berth-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test setup");
        let out = dir.join("out");
        let h = hooks(&format!(
            r#"{{"poststart":[{{"path":"/bin/sh","args":["sh","-c","cat > {0}; echo \"$FOO $0\" >> {0}"],"env":["FOO=bar"]}}]}}"#,
            out.display()
        ));
        run(Kind::Poststart, Some(&h), &state(), 0).expect("hook runs");
        let text = std::fs::read_to_string(&out).expect("test setup");
        let (json, tail) = text.split_once('}').expect("test setup");
        let doc: StateDocument = serde_json::from_str(&format!("{json}}}")).expect("test setup");
        assert_eq!(doc, state());
        assert_eq!(tail.trim(), "bar sh");
        std::fs::remove_dir_all(&dir).expect("test setup");
    }

    #[test]
    fn failure_names_the_hook_and_its_output() {
        let h = hooks(
            r#"{"prestart":[{"path":"/bin/true"},{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}]}"#,
        );
        let e = run(Kind::Prestart, Some(&h), &state(), 0)
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("hooks.prestart[1] (/bin/sh)"), "{e}");
        assert!(e.contains("exit status 3"), "{e}");
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn poststop_failures_warn_and_the_rest_still_run() {
        let dir = std::env::temp_dir().join(format!("berth-hook-warn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test setup");
        let out = dir.join("ran");
        let h = hooks(&format!(
            r#"{{"poststop":[{{"path":"/bin/false"}},{{"path":"/bin/sh","args":["sh","-c","touch {}"]}}]}}"#,
            out.display()
        ));
        run_warn(Kind::Poststop, Some(&h), &state());
        assert!(out.exists(), "the hook after a failing one must still run");
        std::fs::remove_dir_all(&dir).expect("test setup");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let h = hooks(r#"{"poststop":[{"path":"/bin/sleep","args":["sleep","30"],"timeout":1}]}"#);
        let t = Instant::now();
        let e = run(Kind::Poststop, Some(&h), &state(), 0)
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("timed out after 1 s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_program_is_an_exec_error() {
        let h = hooks(r#"{"poststop":[{"path":"/nonexistent/hook"}]}"#);
        let e = run(Kind::Poststop, Some(&h), &state(), 0)
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("exec: No such file"), "{e}");
    }

    #[test]
    fn relative_path_and_zero_timeout_are_rejected() {
        let e = validate(&hooks(r#"{"prestart":[{"path":"hook"}]}"#)).expect_err("must fail");
        assert!(e.to_string().contains("hooks.prestart[0].path"), "{e}");
        let e =
            validate(&hooks(r#"{"poststop":[{"path":"/h","timeout":0}]}"#)).expect_err("must fail");
        assert!(e.to_string().contains("hooks.poststop[0].timeout"), "{e}");
    }
}
