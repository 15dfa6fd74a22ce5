//! The monitor process (see the crate doc for the sequence).

use crate::crilog::{LogWriter, Rotation, Stream};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::OwnedFd;
use rustix::process::{Pid, WaitOptions};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What the container's stdin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinMode {
    /// /dev/null (`run -d`).
    Null,
    /// The monitor's own stdin, handed on (`run -i` in the foreground).
    Inherit,
    /// A pipe the monitor holds open and never writes (`run -d -i`: the program sees
    /// an open stdin, as with docker).
    Pipe,
}

#[derive(Debug)]
pub struct Config {
    pub id: String,
    pub log: PathBuf,
    pub rotation: Rotation,
    pub exit_file: PathBuf,
    pub pid_file: PathBuf,
    /// A socket to the starting CLI: the monitor says "started PID" / "error CODE MSG" /
    /// "exited N"; the CLI answers "recorded" once the start is in its record (and, with
    /// `peer_cleanup`, "done" / "restart MS" once it has cleaned up after the exit).
    pub ready_fd: Option<i32>,
    /// The CLI waits for the exit and cleans up itself (a foreground run), saving the
    /// cleanup helper; if it goes away first, the helper runs as usual.
    pub peer_cleanup: bool,
    /// Copy the container's output to our stdout/stderr too (a foreground run).
    pub tee: bool,
    pub stdin: StdinMode,
    /// The first start only creates the container (its init waits for `berth start`).
    pub create_only: bool,
    /// `berth` and its global flags, for `internal start` and `internal cleanup`.
    pub helper: Vec<OsString>,
    /// `run -t` in the foreground: the first start's pty master goes to this socket
    /// (the CLI's), which then carries the container's terminal itself.
    pub console_socket: Option<PathBuf>,
    /// The container has a terminal (`-t`). Each start's pty master that does not go to
    /// `console_socket` (all of a `run -d -t`'s, a foreground run's restarts) comes to the
    /// monitor, which logs what comes out of it (as stdout, the one stream a terminal
    /// has). It holds the master open and writes nothing: the program sees a terminal
    /// that nobody types on, as with docker.
    pub terminal: bool,
}

const USAGE: &str = "usage: berth-monitor --id ID --log PATH --exit-file PATH --pid-file PATH \
[--max-size BYTES] [--max-files N] [--ready-fd FD] [--peer-cleanup] [--tee] \
[--stdin null|inherit|pipe] [--create-only] [--console-socket PATH] [--terminal] -- BERTH [FLAGS...]";

impl Config {
    pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Config, String> {
        let mut c = Config {
            id: String::new(),
            log: PathBuf::new(),
            rotation: Rotation::default(),
            exit_file: PathBuf::new(),
            pid_file: PathBuf::new(),
            ready_fd: None,
            peer_cleanup: false,
            tee: false,
            stdin: StdinMode::Null,
            create_only: false,
            helper: vec![],
            console_socket: None,
            terminal: false,
        };
        let value = |args: &mut dyn Iterator<Item = OsString>, flag: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
        };
        while let Some(a) = args.next() {
            let s = a.to_string_lossy().into_owned();
            let num = |v: OsString| {
                v.to_string_lossy()
                    .parse::<u64>()
                    .map_err(|_| format!("{s}: not a number"))
            };
            match s.as_str() {
                "--id" => c.id = value(&mut args, &s)?.to_string_lossy().into_owned(),
                "--log" => c.log = value(&mut args, &s)?.into(),
                "--exit-file" => c.exit_file = value(&mut args, &s)?.into(),
                "--pid-file" => c.pid_file = value(&mut args, &s)?.into(),
                "--max-size" => c.rotation.max_size = num(value(&mut args, &s)?)?,
                "--max-files" => c.rotation.max_files = num(value(&mut args, &s)?)? as u32,
                "--ready-fd" => c.ready_fd = Some(num(value(&mut args, &s)?)? as i32),
                "--peer-cleanup" => c.peer_cleanup = true,
                "--tee" => c.tee = true,
                "--console-socket" => c.console_socket = Some(value(&mut args, &s)?.into()),
                "--create-only" => c.create_only = true,
                "--terminal" => c.terminal = true,
                "--stdin" => {
                    c.stdin = match value(&mut args, &s)?.to_string_lossy().as_ref() {
                        "null" => StdinMode::Null,
                        "inherit" => StdinMode::Inherit,
                        "pipe" => StdinMode::Pipe,
                        v => return Err(format!("--stdin {v}: null, inherit or pipe")),
                    }
                }
                "--" => {
                    c.helper = args.by_ref().collect();
                    break;
                }
                _ => return Err(format!("unknown argument {s:?}; {USAGE}")),
            }
        }
        if c.id.is_empty() || c.log.as_os_str().is_empty() || c.helper.is_empty() {
            return Err(USAGE.into());
        }
        Ok(c)
    }
}

/// One line from a pipe of the monitor protocol (helper → monitor → CLI), newline
/// included; empty at EOF. A byte at a time: the lines are few and short, and nothing
/// may stay in a buffer, since the rest of the pipe (or a poll on it) belongs to others.
pub fn read_line(r: &mut impl Read) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => break,
            Ok(_) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// What a helper reported on its report pipe.
fn run_helper(
    cfg: &Config,
    verb: &str,
    extra: &[String],
    stdio: Option<(&OwnedFd, &OwnedFd, Stdio)>,
) -> std::io::Result<(String, std::process::ExitStatus)> {
    let (report_r, report_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // The helper finds the report pipe by number: it must survive exec (and only this
    // one spawn: the monitor has no threads).
    berth_sys::fd::clear_cloexec(report_w.as_raw_fd())
        .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))?;
    let mut cmd = Command::new(&cfg.helper[0]);
    cmd.args(&cfg.helper[1..])
        .args(["internal", verb, &cfg.id, "--report-fd"])
        .arg(report_w.as_raw_fd().to_string())
        .args(extra);
    match stdio {
        Some((out, err, stdin)) => {
            cmd.stdout(Stdio::from(out.try_clone()?))
                .stderr(Stdio::from(err.try_clone()?))
                .stdin(stdin);
        }
        None => {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .stdin(Stdio::null());
        }
    }
    let mut child = cmd.spawn()?;
    drop(report_w);
    // One line, not to EOF: a created init holds a copy of the pipe until it execs.
    let report = read_line(&mut std::fs::File::from(report_r))?;
    let status = child.wait()?;
    Ok((report, status))
}

/// The socket to the CLI that started the monitor, until it goes away.
struct Ready(Option<std::fs::File>);

impl Ready {
    fn say(&mut self, line: &str) {
        if let Some(f) = self.0.as_mut() {
            if f.write_all(line.as_bytes()).is_err() {
                self.0 = None;
            }
        }
    }

    /// The CLI's next line; None (and no more talk) once it has gone.
    fn hear(&mut self) -> Option<String> {
        let f = self.0.as_mut()?;
        match read_line(f) {
            Ok(l) if !l.is_empty() => Some(l),
            _ => {
                self.0 = None;
                None
            }
        }
    }
}

fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    if let Some(c) = status.exit_status() {
        c
    } else {
        128 + status.terminating_signal().unwrap_or(0)
    }
}

/// Runs the monitor; returns the process exit code. Call from `main` with nothing else
/// running in the process.
pub fn run(cfg: Config) -> i32 {
    // Detach from whoever started us (a CLI that exits at once, or a long-lived server
    // that should not collect zombies): fork once, the parent exits.
    match berth_sys::process::clone_process(0) {
        Ok(berth_sys::process::Forked::Parent { .. }) => return 0,
        Ok(berth_sys::process::Forked::Child) => {}
        Err(e) => {
            eprintln!("berth-monitor: fork: {e}");
            return 1;
        }
    }
    let _ = rustix::process::setsid();
    let mut ready = Ready(
        cfg.ready_fd
            .and_then(|fd| berth_sys::fd::take_inherited(fd).ok())
            .map(std::fs::File::from),
    );
    match monitor(&cfg, &mut ready) {
        Ok(()) => 0,
        Err(e) => {
            ready.say(&format!("error 125 berth-monitor: {e}\n"));
            1
        }
    }
}

fn monitor(cfg: &Config, ready: &mut Ready) -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    let _ = std::fs::write(
        &cfg.pid_file,
        rustix::process::getpid().as_raw_nonzero().to_string(),
    );
    let errno = |e: berth_sys::Errno| std::io::Error::from_raw_os_error(e.raw_os_error());
    // Terminal and stop signals are for the container, which the CLI forwards them to;
    // the monitor keeps going until the container is gone.
    let mut set = berth_sys::signal::SigSet::empty();
    for s in [
        libc::SIGCHLD,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
    ] {
        set.add(s);
    }
    berth_sys::signal::set_mask(&set).map_err(errno)?;
    let sigfd = berth_sys::signal::signalfd(&set).map_err(errno)?;

    let flags = rustix::pipe::PipeFlags::CLOEXEC;
    let (out_r, out_w) = rustix::pipe::pipe_with(flags)?;
    let (err_r, err_w) = rustix::pipe::pipe_with(flags)?;
    for r in [&out_r, &err_r] {
        rustix::fs::fcntl_setfl(r, rustix::fs::OFlags::NONBLOCK)?;
    }
    let stdin_pipe = match cfg.stdin {
        StdinMode::Pipe => Some(rustix::pipe::pipe_with(flags)?),
        _ => None,
    };
    let mut log = LogWriter::open(&cfg.log, cfg.rotation)?;
    let mut tee = cfg.tee;
    let mut first = true;
    loop {
        let stdin = match (&stdin_pipe, cfg.stdin) {
            (Some((r, _)), _) => Stdio::from(r.try_clone()?),
            (None, StdinMode::Inherit) => Stdio::inherit(),
            _ => Stdio::null(),
        };
        let mut extra = vec![];
        if first && cfg.create_only {
            extra.push("--create-only".to_string());
        }
        if let (true, Some(p)) = (first, &cfg.console_socket) {
            extra.push("--console-socket".to_string());
            extra.push(p.to_string_lossy().into_owned());
        }
        // Every start makes a new pty, so a new socket to receive its master on.
        let console = match cfg.terminal && !(first && cfg.console_socket.is_some()) {
            true => Some(Console::bind(cfg)?),
            false => None,
        };
        if let Some(c) = &console {
            extra.push("--console-socket".to_string());
            extra.push(c.path.to_string_lossy().into_owned());
        }
        if !first {
            extra.push("--restart".to_string());
        }
        let (report, _) = run_helper(cfg, "start", &extra, Some((&out_w, &err_w, stdin)))?;
        let pid = match report.trim_end().strip_prefix("started ") {
            Some(p) => p.parse::<i32>().ok().and_then(Pid::from_raw),
            None => None,
        };
        let Some(pid) = pid else {
            // Not started (refused, failed, or a restart the user cancelled): the
            // helper has put the record right; pass its words on.
            ready.say(if report.is_empty() {
                "error 125 the start helper died without a word\n"
            } else {
                &report
            });
            return Ok(());
        };
        if first {
            ready.say(&report);
        }
        let master = match console.map(Console::receive) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                // The container runs, but its terminal is lost: say so where its
                // output would have been.
                let _ = log.write(
                    Stream::Stderr,
                    format!("berth-monitor: no terminal from the runtime: {e}\n").as_bytes(),
                );
                None
            }
            None => None,
        };
        let code = pump(&mut log, &mut tee, [&out_r, &err_r], master, &sigfd, pid)?;
        let _ = std::fs::write(
            &cfg.exit_file,
            format!("{code} {}\n", crate::time::now_nanos()),
        );
        if first {
            // The CLI records the first start; the exit's record must come after it.
            // A CLI that went away without a word leaves the record to the cleanup.
            let _ = ready.hear();
        }
        first = false;
        let mut next = None;
        if cfg.peer_cleanup && ready.0.is_some() {
            ready.say(&format!("exited {code}\n"));
            // Directories the CLI's cleanup moved aside, for us to delete once it has
            // gone (see the engine's trash.rs), then its verdict.
            let mut trash = vec![];
            next = loop {
                match ready.hear() {
                    Some(l) if l.starts_with("trash ") => {
                        trash.push(PathBuf::from(l["trash ".len()..].trim_end_matches('\n')))
                    }
                    l => break l.filter(|l| l == "done\n" || l.starts_with("restart ")),
                }
            };
            ready.0 = None;
            for p in trash {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        let next = match next {
            Some(n) => n,
            None => {
                let (next, _) = run_helper(
                    cfg,
                    "cleanup",
                    &["--exit-code".into(), code.to_string()],
                    None,
                )?;
                ready.say(&format!("exited {code}\n"));
                if !tee {
                    // The foreground CLI has what it waited for.
                    ready.0 = None;
                }
                next
            }
        };
        match next.trim_end().strip_prefix("restart ") {
            Some(ms) => {
                ready.0 = None;
                let ms: u64 = ms.parse().unwrap_or(100);
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            None => return Ok(()),
        }
    }
}

/// A listening console socket for one start (`--terminal`), unlinked on drop.
struct Console {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
}

impl Console {
    fn bind(cfg: &Config) -> std::io::Result<Console> {
        // A socket path has at most 107 bytes: beside the pid file (the container's run
        // directory) when it fits, else in the temporary directory under a unique name.
        let mut path = cfg
            .pid_file
            .parent()
            .map(|d| d.join("console.sock"))
            .unwrap_or_default();
        if path.as_os_str().is_empty() || path.as_os_str().len() > 107 {
            let pid = rustix::process::getpid().as_raw_nonzero();
            path = std::env::temp_dir().join(format!("berth-console-{pid}.sock"));
        }
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        Ok(Console { listener, path })
    }

    /// The master the runtime sent before it reported the start (so it is queued).
    fn receive(self) -> std::io::Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        let (stream, _) = self.listener.accept()?;
        stream.set_nonblocking(false)?;
        let master = berth_sys::net::recv_fd(&stream)?;
        rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK)?;
        // A pty starts at 0×0, which full-screen programs take as "no screen"; docker
        // and podman give a detached terminal 80×24 until someone attaches.
        if let Ok(ws) = rustix::termios::tcgetwinsize(&master) {
            if ws.ws_row == 0 && ws.ws_col == 0 {
                let ws = rustix::termios::Winsize {
                    ws_row: 24,
                    ws_col: 80,
                    ..ws
                };
                let _ = rustix::termios::tcsetwinsize(&master, ws);
            }
        }
        Ok(master)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Moves output into the log until the init exits; returns its exit code. `master` is
/// the container's terminal (`--terminal`), read until its last other end closes.
fn pump(
    log: &mut LogWriter,
    tee: &mut bool,
    pipes: [&OwnedFd; 2],
    mut master: Option<OwnedFd>,
    sigfd: &OwnedFd,
    init: Pid,
) -> std::io::Result<i32> {
    // Uninitialised capacity: only what a read fills is ever touched, so a quiet
    // container's monitor keeps no 64 KiB of zeroed heap resident.
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut code = None;
    loop {
        // Reap first: the init may have exited before it was ours to wait for.
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            if pid == init {
                code = Some(exit_code(status));
            }
        }
        if let Some(code) = code {
            // Everything else in its pid namespace died with it; what they wrote is
            // in the pipes.
            for (i, p) in pipes.iter().enumerate() {
                drain(log, tee, p, stream(i), &mut buf)?;
            }
            if let Some(m) = &master {
                drain(log, tee, m, Stream::Stdout, &mut buf)?;
            }
            log.flush_partial()?;
            return Ok(code);
        }
        let mut fds = vec![
            PollFd::new(sigfd, PollFlags::IN),
            PollFd::new(pipes[0], PollFlags::IN),
            PollFd::new(pipes[1], PollFlags::IN),
        ];
        if let Some(m) = &master {
            fds.push(PollFd::new(m, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if ready[0] {
            let _ = berth_sys::signal::read_signal(sigfd);
        }
        for (i, p) in pipes.iter().enumerate() {
            if ready[i + 1] {
                drain(log, tee, p, stream(i), &mut buf)?;
            }
        }
        if ready.get(3) == Some(&true) {
            let closed = match &master {
                Some(m) => drain(log, tee, m, Stream::Stdout, &mut buf)?,
                None => false,
            };
            // A terminal is for people: a prompt without a newline belongs in the log
            // now (as a partial record), not when the next line comes.
            log.flush_partial()?;
            if closed {
                // Every holder of the terminal's other end has gone (EIO), which
                // would keep poll waking; the init's exit still comes by SIGCHLD.
                master = None;
            }
        }
    }
}

fn stream(i: usize) -> Stream {
    if i == 0 {
        Stream::Stdout
    } else {
        Stream::Stderr
    }
}

/// Reads what is there; true when the other end is closed for good (EOF, or EIO from a
/// pty master whose terminal nobody holds any more).
fn drain(
    log: &mut LogWriter,
    tee: &mut bool,
    pipe: &OwnedFd,
    s: Stream,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        buf.clear();
        match rustix::io::read(pipe, rustix::buffer::spare_capacity(buf)) {
            Ok(0) | Err(rustix::io::Errno::IO) => return Ok(true),
            Err(rustix::io::Errno::AGAIN) => return Ok(false),
            Ok(n) => {
                log.write(s, &buf[..n])?;
                if *tee {
                    let r = if s == Stream::Stdout {
                        let mut o = std::io::stdout().lock();
                        o.write_all(&buf[..n]).and_then(|_| o.flush())
                    } else {
                        std::io::stderr().lock().write_all(&buf[..n])
                    };
                    if r.is_err() {
                        // The CLI went away: keep logging only.
                        *tee = false;
                    }
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
