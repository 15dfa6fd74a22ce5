//! Shared helpers for berth-oci's integration tests: they run real containers, so they
//! need root; without it they print why and pass vacuously (CI runs as root).
#![allow(dead_code)]

pub mod host;

pub use berth_testutil::Bundle;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn berth_oci() -> &'static str {
    env!("CARGO_BIN_EXE_berth-oci")
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips the calling test (with a printed reason) when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("SKIP: needs root to create namespaces, mounts and cgroups");
            return;
        }
    };
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let code = o
            .status
            .code()
            .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0));
        Out {
            code,
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }
}

/// A state root for one test, removed (with anything left in it) on drop.
pub struct Runtime {
    pub root: tempfile::TempDir,
    pub binary: String,
}

impl Runtime {
    pub fn berth() -> Self {
        Runtime::with(berth_oci())
    }

    pub fn with(binary: &str) -> Self {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("berth-root-")
                .tempdir()
                .expect("tempdir"),
            binary: binary.to_string(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(self.root.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.cmd(args).output().expect("spawn runtime").into()
    }

    /// `run` in the foreground for a bundle; returns the container's output.
    pub fn run_bundle(&self, b: &Bundle, id: &str) -> Out {
        self.run(&["run", "--bundle", b.dir.to_str().expect("utf8"), id])
    }

    /// `create` with the container's stdio going to files (create returns while the
    /// init waits, and the init keeps its stdio).
    pub fn create(&self, b: &Bundle, id: &str, extra: &[&str]) -> Out {
        let mut args = vec!["create", "--bundle", b.dir.to_str().expect("utf8")];
        args.extend_from_slice(extra);
        args.push(id);
        self.detached(b, id, &args)
    }

    /// `run --detach` with the container's stdio going to a file.
    pub fn run_detached(&self, b: &Bundle, id: &str) -> Out {
        self.detached(
            b,
            id,
            &[
                "run",
                "--detach",
                "--bundle",
                b.dir.to_str().expect("utf8"),
                id,
            ],
        )
    }

    /// Runs a command that leaves the container's init behind: its stdio goes to a file
    /// (a pipe would stay open in the init and block the wait for EOF).
    pub fn detached(&self, b: &Bundle, id: &str, args: &[&str]) -> Out {
        let log = b.dir.join(format!("{}.out", id.replace('/', "_")));
        let f = std::fs::File::create(&log).expect("log file");
        let status = self
            .cmd(args)
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .status()
            .expect("spawn");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Out {
            code: status.code().unwrap_or(128),
            stdout: String::new(),
            stderr: text,
        }
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        let o = self.run(&["state", id]);
        assert_eq!(o.code, 0, "state {id}: {}", o.stderr);
        serde_json::from_str(&o.stdout).expect("state is JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls until the container reaches `status` (up to 5 s).
    pub fn wait_status(&self, id: &str, status: &str) {
        for _ in 0..500 {
            if self.status(id) == status {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never reached {status}: {}", self.status(id));
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in std::fs::read_dir(self.root.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = id.file_name().to_string_lossy().into_owned();
            let _ = self.cmd(&["delete", "--force", &id]).output();
        }
    }
}

/// Reads what the container printed (the `create` path writes it to a file).
/// The events of the last five minutes that match `filter` (`berth events --filter`), as
/// JSON, through `berth`: whichever way a test runs its berth (root, runroot).
pub fn recent_events(berth: impl Fn(&[&str]) -> Out, filter: &str) -> Vec<serde_json::Value> {
    let o = berth(&[
        "events", "--since", "5m", "--until", "0s", "--filter", filter, "--format", "json",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    o.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event {l:?}: {e}")))
        .collect()
}

/// A string field of an event (or any JSON), empty when absent.
pub fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub fn container_output(b: &Bundle, id: &str) -> String {
    std::fs::read_to_string(b.dir.join(format!("{id}.out"))).unwrap_or_default()
}

/// Every directory this cgroupsPath would have on the host, in every hierarchy.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path().join(path.trim_start_matches('/'));
        out.push(p);
    }
    out.push(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')));
    out
}

/// Asserts nothing of a container is left on the host: no state dir, no cgroup dir,
/// no mount that mentions the bundle, no process whose cmdline has `token`.
pub fn assert_no_leftovers(rt: &Runtime, id: &str, cgroups_path: &str, bundle: &Path, token: &str) {
    assert!(
        !rt.root.path().join(id).exists(),
        "state directory of {id} left behind"
    );
    for d in cgroup_dirs(cgroups_path) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let b = bundle.to_string_lossy();
    assert!(
        !mounts.lines().any(|l| l.contains(&*b)),
        "a mount under {b} leaked to the host"
    );
    if !token.is_empty() {
        for p in std::fs::read_dir("/proc").expect("proc").flatten() {
            if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                assert!(
                    !cmd.contains(token),
                    "process left behind: {} {cmd}",
                    p.path().display()
                );
            }
        }
    }
}

/// Gives the bundle a unique cgroupsPath, returned for leftover checks.
pub fn unique_cgroup(b: &mut Bundle, id: &str) -> String {
    let path = format!("/berth-test/{id}");
    let p = path.clone();
    b.edit(|c| c["linux"]["cgroupsPath"] = p.into())
        .expect("edit config");
    path
}

/// Receives one fd sent with SCM_RIGHTS (the pty master on a --console-socket), and
/// the bytes of that one message. The peer may keep the connection open.
pub fn receive_fd(stream: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    receive_one(stream).0
}

fn receive_one(stream: &std::os::unix::net::UnixStream) -> (std::os::fd::OwnedFd, Vec<u8>) {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut buf = vec![0u8; 65536];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let n = rustix::net::recvmsg(stream, &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC)
        .expect("recvmsg")
        .bytes;
    let mut fd = None;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            fd = fds.next();
        }
    }
    let fd = fd.expect("no fd received with SCM_RIGHTS");
    buf.truncate(n);
    (fd, buf)
}

/// Receives one fd sent with SCM_RIGHTS and every byte sent until the peer closes (a
/// seccomp listener's message).
pub fn receive_fd_and_data(
    stream: &std::os::unix::net::UnixStream,
) -> (std::os::fd::OwnedFd, Vec<u8>) {
    let (fd, mut buf) = receive_one(stream);
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut &*stream, &mut rest);
    buf.extend_from_slice(&rest);
    (fd, buf)
}

/// accept() that gives up after `secs`: a runtime that fails before connecting must
/// fail the test, not hang it.
pub fn accept_within(
    listener: &std::os::unix::net::UnixListener,
    secs: u64,
) -> std::os::unix::net::UnixStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "nothing connected to the socket within {secs} s"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Reads a pty master until `marker` appears or the last peer closes (EIO), and
/// returns what was read.
pub fn read_pty_until(master: std::os::fd::OwnedFd, marker: &str) -> String {
    use std::io::Read;
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains(marker) {
            break;
        }
    }
    text
}

/// Runs berth-oci with `args` and fd 3 open on `file` (the way a caller hands a
/// preserved fd over), then checks the program's output: the file's contents from fd
/// 3, then `ls /proc/self/fd` listing exactly 0-3 and ls's own directory fd 4.
pub fn assert_fd3_preserved(args: &[&str], file: &Path) {
    let o: Out = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"f=$1; shift; exec "$@" 3<"$f""#)
        .arg("sh")
        .arg(file)
        .arg(berth_oci())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run with fd 3")
        .into();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("preserved\n"), "{}", o.stdout);
    let fds: Vec<i32> = o
        .stdout
        .lines()
        .skip(1)
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert_eq!(fds, vec![0, 1, 2, 3, 4], "{}", o.stdout);
}
