//! Containers after create: started under a monitor, stopped, killed, waited for,
//! cleaned up after they exit and restarted by policy.
//!
//! ```text
//! start_monitor ─▶ berth-monitor ─▶ `berth internal start`  = start_init:  mount the rootfs
//!                        │                                    if a reboot took it, runtime
//!                        │                                    create, record Running + pid
//!                        │ (reaps the init, logs its output, writes the exit file)
//!                        └────────▶ `berth internal cleanup` = cleanup: runtime state, rootfs
//!                                                             mount, record Exited + code,
//!                                                             --rm, restart policy → delay
//! stop:   stopped_by_user, stop signal, wait (timeout), SIGKILL, wait for cleanup
//! ```
//!
//! The record is the truth for `ps`; where a monitor died or a reboot emptied the run
//! root, [`Engine::refresh`](crate::Engine) reads the runtime's state and the exit file.

use crate::container::{io, now, Container, ContainerError, Engine, Status};
use crate::restart::{self, RestartPolicy};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lifecycle part of a container record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Life {
    pub restart: RestartPolicy,
    pub restart_count: u32,
    /// `berth stop` suspends the restart policy until the next start.
    pub stopped_by_user: bool,
    /// Seconds since the epoch of the last start.
    pub started: Option<u64>,
    pub pid: Option<i32>,
    /// `--log-opt max-size` in bytes (0: unlimited) and `max-file`.
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// `--stop-signal` (else the image's StopSignal, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` seconds (default 10).
    pub stop_timeout: Option<u64>,
    /// `-i` with `-d`: an open, empty stdin.
    pub interactive: bool,
    /// `-t`: the process has a terminal; a start nobody attaches to gives its pty
    /// master to the monitor.
    pub tty: bool,
    /// Why the last start failed.
    pub error: Option<String>,
}

/// How this engine starts monitors: the monitor binary and the `berth` command (with
/// its global flags) the monitor runs for `internal start` and `internal cleanup`.
#[derive(Debug, Clone)]
pub struct Helpers {
    pub monitor: PathBuf,
    pub berth: Vec<OsString>,
}

/// A foreground start: the container's stdin is ours (`-i`), its output comes to our
/// stdout/stderr as well as the log.
#[derive(Debug, Clone, Default)]
pub struct Attach {
    pub stdin: bool,
    /// `-t`: where the CLI receives the pty master (it proxies the terminal itself).
    pub console_socket: Option<PathBuf>,
}

/// The signals a foreground CLI passes on to its container (or exec'd process).
pub const FORWARDED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Signals blocked for forwarding to a foreground container, read from a signalfd;
/// the old mask is back on drop.
pub struct Forwarded {
    fd: std::os::fd::OwnedFd,
    old: berth_sys::signal::SigSet,
}

impl Forwarded {
    /// [`FORWARDED`].
    pub fn block() -> Result<Forwarded, ContainerError> {
        Forwarded::block_with(&[])
    }

    /// [`FORWARDED`] and `also` (a terminal proxy wants SIGCHLD and SIGWINCH too).
    pub fn block_with(also: &[i32]) -> Result<Forwarded, ContainerError> {
        let errno = |e: berth_sys::Errno| {
            io("block signals", Path::new("run"))(std::io::Error::from_raw_os_error(
                e.raw_os_error(),
            ))
        };
        let mut set = berth_sys::signal::SigSet::empty();
        for s in FORWARDED.iter().chain(also) {
            set.add(*s);
        }
        let old = berth_sys::signal::set_mask(&set).map_err(errno)?;
        let fd = berth_sys::signal::signalfd(&set).map_err(errno)?;
        Ok(Forwarded { fd, old })
    }

    pub fn fd(&self) -> &std::os::fd::OwnedFd {
        &self.fd
    }
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        let _ = berth_sys::signal::set_mask(&self.old);
    }
}

/// The socket to a monitor this process started (the protocol is in
/// [`berth_monitor`]'s crate doc).
pub struct MonitorHandle {
    /// Polled and read a line at a time ([`berth_monitor::monitor::read_line`]).
    ready: std::os::unix::net::UnixStream,
    id: String,
    create_only: bool,
    /// This process cleans up after the exit (`--peer-cleanup`).
    peer: bool,
    /// Until the start is reported ([`crate::cgroup_warm`]).
    warm: Option<crate::cgroup_warm::Warmer>,
}

impl MonitorHandle {
    fn line(&mut self) -> Result<String, ContainerError> {
        berth_monitor::monitor::read_line(&mut self.ready).map_err(|source| ContainerError::Io {
            op: "read from the monitor of",
            path: PathBuf::from(&self.id),
            source,
        })
    }

    /// A monitor that has gone only makes this fail, and it needs nothing more from us.
    fn say(&mut self, line: &str) {
        use std::io::Write;
        let _ = self.ready.write_all(line.as_bytes());
    }

    /// [`exited`](Self::exited), forwarding the signals this process gets (Ctrl-C,
    /// SIGTERM, ...) to the container meanwhile, as `docker run` does. The signals were
    /// blocked (by `signals`) before the monitor started, so none is lost in between.
    pub fn exited_forwarding(
        &mut self,
        engine: &Engine,
        id: &str,
        signals: &Forwarded,
    ) -> Result<i32, ContainerError> {
        use rustix::event::{poll, PollFd, PollFlags};
        let sigfd = &signals.fd;
        let res = loop {
            let mut fds = [
                PollFd::new(&self.ready, PollFlags::IN),
                PollFd::new(&sigfd, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => break Err(io("poll for", Path::new(id))(e.into())),
            }
            if !fds[1].revents().is_empty() {
                if let Ok(sig) = berth_sys::signal::read_signal(sigfd) {
                    let _ = berth_runtime::container::kill(&engine.runtime_root(), id, sig, false);
                }
            }
            if !fds[0].revents().is_empty() {
                break self.exited(engine);
            }
        };
        res
    }

    /// Waits for the init to run and records the start (or the failure, which comes as
    /// "error CODE MESSAGE"); the init's pid. The helper that started it left the record
    /// to us: one writer fewer per run.
    pub fn started(&mut self, engine: &Engine) -> Result<i32, ContainerError> {
        let l = self.line();
        self.warm = None;
        let l = l?;
        let l = l.trim_end();
        if let Some(pid) = l.strip_prefix("started ").and_then(|p| p.parse().ok()) {
            let create_only = self.create_only;
            engine.update(&self.id, |c| {
                mark_started(c, pid, create_only);
                // A user's start resumes the restart policy.
                c.life.stopped_by_user = false;
                c.life.restart_count = 0;
            })?;
            self.say("recorded\n");
            return Ok(pid);
        }
        let (code, message) = l
            .strip_prefix("error ")
            .and_then(|r| r.split_once(' '))
            .and_then(|(c, m)| Some((c.parse().ok()?, m)))
            .unwrap_or((125, l));
        let message = if message.is_empty() {
            "the monitor exited without starting the container".to_string()
        } else {
            message.to_string()
        };
        engine.update(&self.id, |c| mark_failed(c, code, &message))?;
        Err(ContainerError::StartFailed { message, code })
    }

    /// Waits for the container's first exit, cleaned up (so `--rm` is done); its code.
    /// With `--peer-cleanup` the cleanup is ours; one that fails is left to the monitor's
    /// helper.
    pub fn exited(&mut self, engine: &Engine) -> Result<i32, ContainerError> {
        let l = self.line()?;
        let code: i32 = l
            .trim_end()
            .strip_prefix("exited ")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| failed(format!("monitor: {l:?}")))?;
        if self.peer {
            let cleaned = engine.cleanup(&self.id, code);
            // The monitor empties what the cleanup put in the trash after we are gone.
            for p in engine.take_trash() {
                match p.to_str().filter(|s| !s.contains('\n')) {
                    Some(s) => self.say(&format!("trash {s}\n")),
                    None => engine
                        .trash
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(p),
                }
            }
            match cleaned {
                Ok(Next::Done) => self.say("done\n"),
                Ok(Next::Restart(d)) => self.say(&format!("restart {}\n", d.as_millis())),
                Err(e) => {
                    tracing::warn!("cleaning up after {}: {e}; the monitor retries", self.id);
                    let _ = self.ready.shutdown(std::net::Shutdown::Both);
                }
            }
        }
        Ok(code)
    }
}

/// The exit code docker gives a container whose program could not be started: 127 not
/// found, 126 found but not executable, 125 anything else (from the step and errno the
/// runtime reports, not from its message).
pub fn start_failure_code(e: &ContainerError) -> i32 {
    match e {
        ContainerError::StartFailed { code, .. } => *code,
        ContainerError::Runtime(r) => match r.exec_errno() {
            Some(libc::ENOENT) => 127,
            Some(_) => 126,
            None => 125,
        },
        _ => 125,
    }
}

/// The record of an init that runs (or, `create_only`, waits for `start`).
fn mark_started(c: &mut Container, pid: i32, create_only: bool) {
    c.status = if create_only {
        Status::Created
    } else {
        Status::Running
    };
    c.life.pid = Some(pid);
    c.life.started = Some(now());
    c.life.error = None;
    c.exit_code = None;
    c.finished = None;
}

/// The record of a start that failed with docker's exit `code`.
fn mark_failed(c: &mut Container, code: i32, message: &str) {
    c.status = Status::Exited;
    c.exit_code = Some(code);
    c.finished = Some(now());
    c.life.error = Some(message.to_string());
    c.life.pid = None;
}

/// A start that failed for a reason of berth's own (125).
fn failed(message: String) -> ContainerError {
    ContainerError::StartFailed { message, code: 125 }
}

/// What cleanup decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    Restart(Duration),
}

impl Engine {
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id).join("ctr.log")
    }

    pub(crate) fn persistent_config(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id).join("config.json")
    }

    /// The exit file the monitor writes when it reaps the init: code and time (seconds).
    pub(crate) fn exit_file(&self, id: &str) -> Option<(i32, u64)> {
        let s = std::fs::read_to_string(self.dir(id).join("exit")).ok()?;
        let mut it = s.split_whitespace();
        let code = it.next()?.parse().ok()?;
        let nanos: i128 = it.next()?.parse().ok()?;
        Some((code, (nanos / 1_000_000_000) as u64))
    }

    /// SIGKILLs the container's monitor and its process group, and waits (briefly) for
    /// it to be gone.
    pub(crate) fn kill_monitor(&self, id: &str) {
        let Some(pid) = self.monitor_pid(id) else {
            return;
        };
        let _ = berth_sys::process::kill(-pid, libc::SIGKILL);
        let _ = berth_sys::process::kill(pid, libc::SIGKILL);
        let end = Instant::now() + Duration::from_secs(2);
        while self.monitor_pid(id).is_some() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn monitor_pid(&self, id: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.dir(id).join("monitor.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // Ours only if it still monitors this container (pids are reused).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let id_arg = cmdline.split(|&b| b == 0).any(|a| a == id.as_bytes());
        id_arg.then_some(pid)
    }

    /// Starts a monitor for `c`, which runs (or with `create_only`, creates) the
    /// container. Read [`MonitorHandle::started`] for the outcome.
    pub fn start_monitor(
        &self,
        c: &Container,
        create_only: bool,
        attach: Option<Attach>,
    ) -> Result<MonitorHandle, ContainerError> {
        let h = self
            .helpers
            .as_ref()
            .ok_or_else(|| failed("no monitor configured".into()))?;
        let dir = self.dir(&c.id);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let log = self.log_path(&c.id);
        if let Some(p) = log.parent() {
            std::fs::create_dir_all(p).map_err(io("create", p))?;
        }
        let _ = std::fs::remove_file(dir.join("exit"));
        let (ready_r, ready_w) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| io("socketpair for", &dir)(e.into()))?;
        // The monitor finds its end by number, so it must survive exec; this process
        // has no threads that could spawn anything else meanwhile.
        berth_sys::fd::clear_cloexec(std::os::fd::AsRawFd::as_raw_fd(&ready_w)).map_err(|e| {
            io("pipe for", &dir)(std::io::Error::from_raw_os_error(e.raw_os_error()))
        })?;
        let mut cmd = std::process::Command::new(&h.monitor);
        cmd.arg("--id")
            .arg(&c.id)
            .arg("--log")
            .arg(&log)
            .arg("--exit-file")
            .arg(dir.join("exit"))
            .arg("--pid-file")
            .arg(dir.join("monitor.pid"))
            .arg("--max-size")
            .arg(c.life.log_max_size.to_string())
            .arg("--max-files")
            .arg(c.life.log_max_files.max(1).to_string())
            .arg("--ready-fd")
            .arg(std::os::fd::AsRawFd::as_raw_fd(&ready_w).to_string());
        if create_only {
            cmd.arg("--create-only");
        }
        if attach.is_some() {
            cmd.arg("--peer-cleanup");
        }
        if c.life.tty {
            cmd.arg("--terminal");
        }
        use std::process::Stdio;
        let attach_given = attach.is_some();
        match attach {
            Some(a) => {
                if let Some(p) = &a.console_socket {
                    cmd.arg("--console-socket").arg(p);
                }
                cmd.arg("--tee");
                if a.stdin {
                    cmd.args(["--stdin", "inherit"]);
                } else {
                    cmd.stdin(Stdio::null());
                }
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if c.life.interactive {
                    cmd.args(["--stdin", "pipe"]);
                }
            }
        }
        cmd.arg("--").args(&h.berth);
        let warm = crate::cgroup_warm::Warmer::start();
        // The monitor forks once and its first process exits at once.
        let status = cmd.status().map_err(io("start the monitor", &h.monitor))?;
        drop(ready_w);
        if !status.success() {
            return Err(failed(format!(
                "the monitor {} failed: {status}",
                h.monitor.display()
            )));
        }
        Ok(MonitorHandle {
            ready: std::os::unix::net::UnixStream::from(ready_r),
            id: c.id.clone(),
            create_only,
            peer: attach_given,
            warm,
        })
    }

    /// `internal start`, in the helper the monitor runs with the container's stdio:
    /// creates the container in this process and returns the init's pid. On failure
    /// nothing of the attempt is left. The CLI waiting on the monitor records the first
    /// start ([`MonitorHandle::started`]); a restart has no CLI and records itself.
    pub fn start_init(
        &self,
        id: &str,
        create_only: bool,
        restart: bool,
        console_socket: Option<&std::path::Path>,
    ) -> Result<i32, ContainerError> {
        let c = self
            .raw(id)?
            .ok_or_else(|| ContainerError::NotFound(id.into()))?;
        if restart && c.life.stopped_by_user {
            self.update(id, |c| c.status = Status::Exited)?;
            return Err(failed(
                "restart cancelled: the container was stopped".into(),
            ));
        }
        match self.start_init_inner(&c, create_only, console_socket) {
            Ok(pid) if !restart => {
                let action = if create_only { "init" } else { "start" };
                self.container_event(action, &c, &[("pid", pid.to_string())]);
                Ok(pid)
            }
            Ok(pid) => {
                self.update(id, |c| mark_started(c, pid, create_only))?;
                let action = if create_only { "init" } else { "start" };
                self.container_event(action, &c, &[("pid", pid.to_string())]);
                Ok(pid)
            }
            Err(e) => {
                let msg = e.to_string();
                let code = start_failure_code(&e);
                let _ = self.release_run_resources(&c);
                if !restart {
                    return Err(e);
                }
                let _ = self.update(id, |c| mark_failed(c, code, &msg));
                Err(e)
            }
        }
    }

    fn start_init_inner(
        &self,
        c: &Container,
        create_only: bool,
        console_socket: Option<&std::path::Path>,
    ) -> Result<i32, ContainerError> {
        let rt = self.runtime_root();
        if berth_runtime::state::dir(&rt, &c.id).exists() {
            berth_runtime::container::delete(&rt, &c.id, true)?;
        }
        let bundle = self.dir(&c.id).join("config.json");
        if !bundle.exists() {
            let keep = self.persistent_config(&c.id);
            std::fs::copy(&keep, &bundle).map_err(io("restore the bundle from", &keep))?;
        }
        self.mount_rootfs(&c.id)?;
        self.ensure_mounted(c)?;
        crate::network::attach(&self.network, c, &self.dir(&c.id))?;
        let opts = berth_runtime::container::CreateOptions {
            root: rt,
            id: c.id.clone(),
            bundle: self.dir(&c.id),
            pid_file: None,
            console_socket: console_socket.map(|p| p.to_path_buf()),
            no_pivot: false,
            preserve_fds: 0,
            launch: if create_only {
                berth_runtime::container::Launch::Create
            } else {
                berth_runtime::container::Launch::RunDetached
            },
        };
        match berth_runtime::container::create(&opts)? {
            berth_runtime::container::Outcome::Started { pid } => Ok(pid),
            berth_runtime::container::Outcome::Exited { code } => Ok(-code),
        }
    }

    /// Mounts the writable snapshot at the bundle's rootfs unless it is there (a reboot
    /// empties the run root).
    pub(crate) fn mount_rootfs(&self, id: &str) -> Result<(), ContainerError> {
        let rootfs = self.dir(id).join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(io("create", &rootfs))?;
        if is_mountpoint(&rootfs) {
            return Ok(());
        }
        let m = self.images.snapshots.mounts(id)?;
        crate::container::mount_snapshot(&m, &rootfs)
    }

    /// What one run holds that the next start makes again: the runtime's state (and
    /// cgroup), the network attachment (veth, IP lease, port rules), the rootfs mount.
    fn release_run_resources(&self, c: &Container) -> Result<(), ContainerError> {
        let rt = self.runtime_root();
        let mut first = None;
        if berth_runtime::state::dir(&rt, &c.id).exists() {
            if let Err(e) = berth_runtime::container::delete(&rt, &c.id, true) {
                first.get_or_insert(ContainerError::from(e));
            }
        }
        if let Err(e) = crate::network::detach(&self.network, c) {
            first.get_or_insert(e.into());
        }
        let _ = rustix::mount::unmount(
            self.dir(&c.id).join("rootfs"),
            rustix::mount::UnmountFlags::DETACH,
        );
        first.map_or(Ok(()), Err)
    }

    /// `internal cleanup`, run by the monitor once the init is reaped: releases the
    /// run's resources, records the exit, removes an `--rm` container, and applies the
    /// restart policy.
    pub fn cleanup(&self, id: &str, code: i32) -> Result<Next, ContainerError> {
        self.finish(id, code, true)
    }

    fn finish(&self, id: &str, code: i32, apply_policy: bool) -> Result<Next, ContainerError> {
        let Some(c) = self.raw(id)? else {
            return Ok(Next::Done);
        };
        let released = self.release_run_resources(&c);
        self.container_event("die", &c, &[("exitCode", code.to_string())]);
        if c.auto_remove {
            let c = self.remove(id, true)?;
            self.remove_anonymous_volumes(&c)?;
            return released.map(|_| Next::Done);
        }
        let ran = c.life.started.map_or(0, |s| now().saturating_sub(s));
        let count = if ran >= restart::STABLE_RUN.as_secs() {
            0
        } else {
            c.life.restart_count
        };
        let again = apply_policy
            && restart::should_restart(c.life.restart, code, count, c.life.stopped_by_user);
        self.update(id, |c| {
            c.exit_code = Some(code);
            c.finished = Some(now());
            c.life.pid = None;
            if again {
                c.status = Status::Restarting;
                c.life.restart_count = count + 1;
            } else {
                c.status = Status::Exited;
            }
        })?;
        released?;
        Ok(if again {
            Next::Restart(restart::backoff(count))
        } else {
            Next::Done
        })
    }

    /// `start`: a created container's init is released; an exited one gets a new monitor.
    /// `restart`: stop (with `timeout` or the container's own), start, and a "restart"
    /// event after the stop and start ones, as docker logs it.
    pub fn restart(
        &self,
        key: &str,
        timeout: Option<Duration>,
    ) -> Result<Container, ContainerError> {
        self.stop(key, timeout)?;
        let (c, _) = self.start(key, None)?;
        self.container_event("restart", &c, &[]);
        Ok(c)
    }

    pub fn start(
        &self,
        key: &str,
        attach: Option<Attach>,
    ) -> Result<(Container, Option<MonitorHandle>), ContainerError> {
        let c = self.find(key)?;
        match c.status {
            Status::Running | Status::Restarting => Ok((c, None)),
            Status::Created if self.init_waiting(&c.id) => {
                berth_runtime::container::start(&self.runtime_root(), &c.id)?;
                self.container_event("start", &c, &[]);
                self.update(&c.id, |c| {
                    c.status = Status::Running;
                    c.life.started = Some(now());
                })?;
                let c = self.find(&c.id)?;
                Ok((c, None))
            }
            _ => {
                // (start_init clears stopped_by_user: a user's start resumes the policy.)
                let mut m = self.start_monitor(&c, false, attach)?;
                m.started(self)?;
                let c = self.find(&c.id)?;
                Ok((c, Some(m)))
            }
        }
    }

    fn init_waiting(&self, id: &str) -> bool {
        berth_runtime::state::ContainerState::load(&self.runtime_root(), id)
            .map(|s| s.status() == berth_runtime::state::Status::Created)
            .unwrap_or(false)
    }

    /// `kill -s SIGNAL`.
    pub fn kill(&self, key: &str, signal: i32) -> Result<Container, ContainerError> {
        let c = self.find(key)?;
        if !matches!(c.status, Status::Running | Status::Created) {
            return Err(ContainerError::NotRunning(c.name));
        }
        berth_runtime::container::kill(&self.runtime_root(), &c.id, signal, false)?;
        self.container_event("kill", &c, &[("signal", signal.to_string())]);
        Ok(c)
    }

    /// `stop`: the stop signal, up to `timeout` for the container to exit, then SIGKILL;
    /// returns once the monitor has cleaned up. Suspends the restart policy.
    pub fn stop(&self, key: &str, timeout: Option<Duration>) -> Result<Container, ContainerError> {
        let c = self.find(key)?;
        self.update(&c.id, |c| c.life.stopped_by_user = true)?;
        match c.status {
            Status::Running | Status::Created => {}
            Status::Restarting => {
                self.update(&c.id, |c| c.status = Status::Exited)?;
                return self.find(&c.id);
            }
            Status::Exited => return Ok(c),
        }
        let timeout = timeout
            .or(c.life.stop_timeout.map(Duration::from_secs))
            .unwrap_or(Duration::from_secs(10));
        let sig = c
            .life
            .stop_signal
            .as_deref()
            .and_then(berth_runtime::signal::parse)
            .unwrap_or(libc::SIGTERM);
        let rt = self.runtime_root();
        let _ = berth_runtime::container::kill(&rt, &c.id, sig, false);
        if !self.wait_init_gone(&c.id, timeout) {
            let _ = berth_runtime::container::kill(&rt, &c.id, libc::SIGKILL, true);
            self.wait_init_gone(&c.id, Duration::from_secs(10));
        }
        self.wait_cleaned(&c.id, Duration::from_secs(10))?;
        self.container_event("stop", &c, &[]);
        match self.raw(&c.id)? {
            Some(c) => Ok(self.refresh(c)),
            None => Ok(c),
        }
    }

    fn wait_init_gone(&self, id: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let alive = berth_runtime::state::ContainerState::load(&self.runtime_root(), id)
                .map(|s| s.init_alive())
                .unwrap_or(false);
            if !alive {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the record no longer says running (the monitor's cleanup ran). A
    /// monitor that is gone cannot clean up: do it here.
    pub(crate) fn wait_cleaned(&self, id: &str, timeout: Duration) -> Result<(), ContainerError> {
        let end = Instant::now() + timeout;
        loop {
            let Some(c) = self.raw(id)? else {
                return Ok(());
            };
            if !matches!(c.status, Status::Running | Status::Created) || self.init_waiting(id) {
                return Ok(());
            }
            if self.monitor_pid(id).is_none() || Instant::now() >= end {
                let code = self.exit_file(id).map_or(137, |(c, _)| c);
                self.cleanup(id, code)?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `wait`: blocks until the container is exited (not restarting); its exit code.
    pub fn wait(&self, key: &str) -> Result<i32, ContainerError> {
        let c = self.find(key)?;
        loop {
            let Some(rec) = self.raw(&c.id)? else {
                // Removed (`--rm`): the monitor's exit file went with it.
                return Ok(c.exit_code.unwrap_or(0));
            };
            if rec.status == Status::Exited {
                return Ok(rec.exit_code.unwrap_or(-1));
            }
            // Nobody is left to record the exit (a killed monitor): the runtime's word.
            if self.monitor_pid(&c.id).is_none() {
                let now = self.refresh(rec);
                if now.status == Status::Exited {
                    return Ok(now.exit_code.unwrap_or(-1));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Engine {
    /// `system recover` (at boot, or by hand): containers whose monitor is gone — a
    /// reboot, a killed monitor — are cleaned up and recorded as exited; those whose
    /// restart policy says so (`always`, and `unless-stopped` unless a user stopped
    /// them) are started again. Returns the names started.
    pub fn recover(&self) -> Result<Vec<String>, ContainerError> {
        let mut started = vec![];
        let mut first = None;
        for raw in self.records()? {
            let orphaned = matches!(
                raw.status,
                Status::Running | Status::Restarting | Status::Created
            ) && self.monitor_pid(&raw.id).is_none();
            if !orphaned {
                continue;
            }
            let code = self.exit_file(&raw.id).map_or(255, |(code, _)| code);
            if raw.status != Status::Created
                || berth_runtime::state::dir(&self.runtime_root(), &raw.id).exists()
            {
                let rt = self.runtime_root();
                let _ = berth_runtime::container::kill(&rt, &raw.id, libc::SIGKILL, true);
                self.wait_init_gone(&raw.id, Duration::from_secs(5));
                // The exit is recorded here; the boot policy (below) decides restarts.
                if let Err(e) = self.finish(&raw.id, code, false) {
                    first.get_or_insert(e);
                    continue;
                }
            }
            if restart::starts_on_boot(raw.life.restart, raw.life.stopped_by_user) {
                match self
                    .start_monitor(&raw, false, None)
                    .and_then(|mut m| m.started(self))
                {
                    Ok(_) => started.push(raw.name.clone()),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        match first {
            Some(e) if started.is_empty() => Err(e),
            _ => Ok(started),
        }
    }
}

fn is_mountpoint(p: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = p.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == p))
}
