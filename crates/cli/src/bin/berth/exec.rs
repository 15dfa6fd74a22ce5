//! `berth exec`: a new process in a running container, started in this process by the
//! runtime library (see berth_engine::exec). Without a terminal the process shares our
//! stdio and we exit with its status; with `-t` its pty is proxied by [`crate::tty`];
//! with `-d` it runs on alone, its stdio on /dev/null.

use crate::container::engine;
use crate::Cli;
use anyhow::{bail, Context, Result};
use berth_engine::{ExecOptions, ExecOutcome};
use clap::Args;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExecArgs {
    /// Keep stdin open (the process reads ours).
    #[arg(short, long)]
    interactive: bool,
    /// Give the process a terminal (ours is proxied to it, raw when stdin is one).
    #[arg(short, long)]
    tty: bool,
    /// Run in the background; print nothing.
    #[arg(short, long)]
    detach: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from here).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines).
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// USER[:GROUP], names or ids (names from the container's /etc/passwd and /etc/group).
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Working directory in the container (absolute).
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Every capability this host allows.
    #[arg(long)]
    privileged: bool,
    container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `-e` and `--env-file` as docker reads them: files first, then the flags; `KEY`
/// alone copies berth's own value (and is dropped when berth has none).
pub fn env_list(env: &[String], files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = vec![];
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    out.extend(env.iter().cloned());
    Ok(out
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect())
}

pub fn exec(cli: &Cli, a: &ExecArgs) -> Result<i32> {
    if a.detach && a.tty {
        bail!(crate::exit::Usage(
            "-d with -t: a detached process has no one to hold its terminal".into()
        ));
    }
    let opts = ExecOptions {
        command: a.command.clone(),
        env: env_list(&a.env, &a.env_file)?,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        tty: a.tty,
        console_socket: None,
        privileged: a.privileged,
        detach: a.detach,
    };
    // The runtime re-executes the process from a sealed copy of its binary before it
    // joins a live container (CVE-2019-5736, berth_runtime::exe): doing it here, before
    // anything is made, means the restart repeats nothing half-done (a socket, a raw
    // terminal). The copy sees it is one and goes on.
    berth_runtime::exe::run_from_sealed_copy()?;
    berth_runtime::exe::not_dumpable();
    let engine = engine(cli)?;
    if a.tty {
        return crate::tty::exec(&engine, &a.container, opts, a.interactive);
    }
    if a.detach {
        return detached(&engine, &a.container, &opts);
    }
    if !a.interactive {
        // docker's exec without -i: the process gets no input.
        let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        rustix::stdio::dup2_stdin(&null).context("stdin from /dev/null")?;
    }
    match engine.exec(&a.container, &opts)? {
        ExecOutcome::Exited { code } => Ok(code),
        ExecOutcome::Started { .. } => Ok(0),
    }
}

/// The process inherits our stdio: it must be /dev/null, or whoever reads our output
/// would wait for the process too. Our stderr comes back for the error, if any.
fn detached(engine: &berth_engine::Engine, key: &str, opts: &ExecOptions) -> Result<i32> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    let saved = rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), 3).context("dup of stderr")?;
    rustix::stdio::dup2_stdin(&null)
        .and_then(|()| rustix::stdio::dup2_stdout(&null))
        .and_then(|()| rustix::stdio::dup2_stderr(&null))
        .context("stdio to /dev/null")?;
    let res = engine.exec(key, opts);
    let _ = berth_sys::fd::dup_onto(saved.as_raw_fd(), 2);
    res?;
    Ok(0)
}
