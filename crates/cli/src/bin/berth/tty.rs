//! `exec -t`: the process gets a pty from the container's devpts; the runtime sends its
//! master over a unix socket (runc's `--console-socket`), and this process, without
//! threads, proxies between its own stdio and the master with one poll loop:
//!
//! - stdin → master (with `-i`; at EOF one VEOF, ^D, so a reader in the container ends);
//! - master → stdout, until the last holder of the pty's other end closes it (EIO);
//! - signals, read from a signalfd blocked *before* the process exists: SIGWINCH
//!   copies our terminal's size to the pty, SIGCHLD reaps the process, and the rest
//!   (INT, TERM, HUP, QUIT, USR1, USR2) are forwarded to it.
//!
//! With stdin a terminal and `-i`, it is put in raw mode (restored on every exit path)
//! so keys, Ctrl-C included, reach the container's line discipline unchanged.

use anyhow::{Context, Result};
use berth_engine::lifecycle::Forwarded;
use berth_engine::{Engine, ExecOptions, ExecOutcome};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// The socket file, removed however we leave.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Our terminal's settings before raw mode, put back on drop.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'_>) -> Result<RawMode> {
        use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
        let saved = tcgetattr(fd).context("reading the terminal's settings")?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(fd, OptionalActions::Now, &raw).context("raw mode for the terminal")?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use rustix::termios::{tcsetattr, OptionalActions};
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// ^D: what the line discipline turns into end-of-file for the reader.
const VEOF: u8 = 0x04;

/// A console socket to receive a pty master on.
fn console_socket(engine: &Engine, what: &str) -> Result<(UnixListener, SocketFile)> {
    // A unix socket path has 108 bytes at most: beside the run root's top, or in the
    // temporary directory when even that is too deep.
    std::fs::create_dir_all(&engine.runroot)
        .with_context(|| format!("creating {}", engine.runroot.display()))?;
    let name = format!("berth-{what}-{}.sock", std::process::id());
    let mut path = engine.runroot.join(&name);
    if path.as_os_str().len() >= 100 {
        path = std::env::temp_dir().join(&name);
    }
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    Ok((listener, SocketFile(path)))
}

/// `run -t` in the foreground: the container's init gets the pty (the monitor passes
/// our socket on), and this process carries the terminal; the exit code comes from
/// the monitor once the pty is closed.
pub fn run(engine: &Engine, o: &berth_engine::RunOptions, interactive: bool) -> Result<i32> {
    let (listener, file) = console_socket(engine, "run")?;
    let signals = Forwarded::block_with(&[libc::SIGCHLD, libc::SIGWINCH])?;
    let attach = berth_engine::Attach {
        stdin: false,
        console_socket: Some(file.0.clone()),
    };
    let (c, mut m) = engine.run_started(o, Some(attach))?;
    let (stream, _) = listener.accept().context("accepting the console socket")?;
    let master = receive_fd(&stream)?;
    drop(stream);
    copy_size(&master);
    let stdin = std::io::stdin();
    let raw = match interactive && rustix::termios::isatty(&stdin) {
        true => Some(RawMode::enter(stdin.as_fd())?),
        false => None,
    };
    proxy(
        &master,
        Target::Container(engine, &c.id),
        &signals,
        interactive,
    )?;
    drop(raw);
    Ok(m.exited(engine)?)
}

pub fn exec(engine: &Engine, key: &str, mut o: ExecOptions, interactive: bool) -> Result<i32> {
    let (listener, file) = console_socket(engine, "exec")?;
    o.console_socket = Some(file.0.clone());
    let _file = file;
    o.tty = true;
    let signals = Forwarded::block_with(&[libc::SIGCHLD, libc::SIGWINCH])?;
    let pid = match engine.exec(key, &o)? {
        ExecOutcome::Started { pid } => pid,
        ExecOutcome::Exited { code } => return Ok(code),
    };
    let pid = Pid::from_raw(pid).context("the runtime gave pid 0")?;
    // The runtime connected and the process sent its master before it exec'd, so
    // both are queued by now.
    let (stream, _) = listener.accept().context("accepting the console socket")?;
    let master = receive_fd(&stream)?;
    drop(stream);
    copy_size(&master);
    let stdin = std::io::stdin();
    let _raw = match interactive && rustix::termios::isatty(&stdin) {
        true => Some(RawMode::enter(stdin.as_fd())?),
        false => None,
    };
    proxy(&master, Target::Child(pid), &signals, interactive)
}

/// Whose terminal it is: an exec'd process (our child) or a container's init (the
/// monitor's child; signals go through the runtime).
enum Target<'a> {
    Child(Pid),
    Container(&'a Engine, &'a str),
}

/// Receives the pty master the runtime sends with SCM_RIGHTS.
fn receive_fd(stream: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
    berth_sys::net::recv_fd(stream).context("receiving the pty master")
}

/// Our terminal's size (stdin's, else stdout's) onto the pty; nothing when neither is
/// a terminal.
fn copy_size(master: &OwnedFd) {
    let size = rustix::termios::tcgetwinsize(std::io::stdin())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdout()));
    if let Ok(ws) = size {
        let _ = rustix::termios::tcsetwinsize(master, ws);
    }
}

/// Carries the terminal until the pty closes; the exit code of a child (for a
/// container, 0: the monitor has the real one).
fn proxy(
    master: &OwnedFd,
    target: Target<'_>,
    signals: &Forwarded,
    interactive: bool,
) -> Result<i32> {
    let stdin = std::io::stdin();
    let mut stdin_open = interactive;
    let mut master_open = true;
    let mut status = None;
    let pid = match target {
        Target::Child(pid) => Some(pid),
        Target::Container(..) => None,
    };
    // The process may have exited before the signals were read: look once.
    if let Some(pid) = pid {
        if let Ok(Some((_, s))) = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
            status = Some(berth_runtime::process::spawn::exit_code(s));
        }
    }
    let mut buf = [0u8; 8192];
    while master_open {
        let mut fds = vec![
            PollFd::new(master, PollFlags::IN),
            PollFd::new(signals.fd(), PollFlags::IN),
        ];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        // Once the process is gone, what it wrote is already in the pty: a short wait
        // drains it without hanging on a background process that kept the pty open.
        let timeout = status.map(|_| rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)).context("poll"),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if ready[0] {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => master_open = false,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(std::io::Error::from(e)).context("reading the pty"),
            }
        }
        if ready[1] {
            if let Ok(sig) = berth_sys::signal::read_signal(signals.fd()) {
                match sig {
                    libc::SIGCHLD => {
                        if let Some(pid) = pid {
                            if let Ok(Some((_, s))) =
                                rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)
                            {
                                status = Some(berth_runtime::process::spawn::exit_code(s));
                            }
                        }
                    }
                    libc::SIGWINCH => copy_size(master),
                    sig => match target {
                        Target::Child(pid) => {
                            let _ = berth_sys::process::kill(pid.as_raw_nonzero().get(), sig);
                        }
                        Target::Container(engine, id) => {
                            let _ = engine.kill(id, sig);
                        }
                    },
                }
            }
        }
        if ready.get(2).copied().unwrap_or(false) {
            match rustix::io::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    let _ = rustix::io::write(master, &[VEOF]);
                }
                Ok(n) => write_all(master, &buf[..n])?,
            }
        }
    }
    let Some(pid) = pid else { return Ok(0) };
    match status {
        Some(code) => Ok(code),
        None => {
            let s = loop {
                match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
                    Ok(Some((_, s))) => break s,
                    Ok(None) | Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        return Err(std::io::Error::from(e)).context("waiting for the process")
                    }
                }
            };
            Ok(berth_runtime::process::spawn::exit_code(s))
        }
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(std::io::Error::from(e)).context("writing to the pty"),
        }
    }
    Ok(())
}
