//! Container lifecycle commands: create, start, stop, kill, restart, wait, and the
//! `internal` verbs the monitor runs.

use crate::container::engine;
use crate::Cli;
use anyhow::{bail, Context, Result};
use berth_engine::{Attach, Next};
use clap::{Args, Subcommand};
use std::io::Write;

#[derive(Args)]
pub struct StartArgs {
    #[arg(required = true)]
    containers: Vec<String>,
    /// Attach to the container's output and exit with its status.
    #[arg(short, long)]
    attach: bool,
}

#[derive(Args)]
pub struct StopArgs {
    #[arg(required = true)]
    containers: Vec<String>,
    /// Seconds to wait for the stop signal to work before SIGKILL (default: the
    /// container's --stop-timeout, else 10).
    #[arg(short = 't', long = "time")]
    time: Option<u64>,
}

#[derive(Args)]
pub struct KillArgs {
    #[arg(required = true)]
    containers: Vec<String>,
    /// Signal name or number.
    #[arg(short, long, default_value = "KILL")]
    signal: String,
}

#[derive(Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Subcommand)]
pub enum Internal {
    /// Run by the monitor: create the container in this process (stdio is the
    /// container's) and report "started PID" on the report fd.
    Start {
        id: String,
        #[arg(long = "report-fd")]
        report_fd: i32,
        #[arg(long = "create-only")]
        create_only: bool,
        #[arg(long)]
        restart: bool,
        #[arg(long = "console-socket")]
        console_socket: Option<std::path::PathBuf>,
    },
    /// Run by the monitor once the init is reaped: record the exit, release the run's
    /// resources, report "restart MS" or "done".
    Cleanup {
        id: String,
        #[arg(long = "report-fd")]
        report_fd: i32,
        #[arg(long = "exit-code", allow_hyphen_values = true)]
        exit_code: i32,
    },
}

/// Each name in turn, every failure reported; after all were tried, one name's failure
/// is the command's error, and with several names the first failure's exit code.
pub(crate) fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<i32> {
    let mut failed = None;
    for n in names {
        if let Err(e) = f(n) {
            // One name: main prints the error it gets back; say it only once.
            if names.len() > 1 {
                eprintln!("berth: {}", crate::exit::message(&e));
            }
            failed.get_or_insert(e);
        }
    }
    match failed {
        Some(e) if names.len() == 1 => Err(e),
        Some(e) => Ok(crate::exit::code(&e)),
        None => Ok(0),
    }
}

pub fn start(cli: &Cli, a: &StartArgs) -> Result<i32> {
    let engine = engine(cli)?;
    if a.attach {
        if a.containers.len() != 1 {
            bail!("start --attach takes one container");
        }
        let signals = berth_engine::lifecycle::Forwarded::block()?;
        let (c, m) = engine.start(&a.containers[0], Some(Attach::default()))?;
        return match m {
            Some(mut m) => Ok(m.exited_forwarding(&engine, &c.id, &signals)?),
            // A created container's init was released: follow its log instead.
            None => crate::logs::follow_until_exit(&engine, &c.id),
        };
    }
    each(&a.containers, |n| {
        engine.start(n, None)?;
        println!("{n}");
        Ok(())
    })
}

pub fn stop(cli: &Cli, a: &StopArgs) -> Result<i32> {
    let engine = engine(cli)?;
    each(&a.containers, |n| {
        engine.stop(n, a.time.map(std::time::Duration::from_secs))?;
        println!("{n}");
        Ok(())
    })
}

pub fn restart(cli: &Cli, a: &StopArgs) -> Result<i32> {
    let engine = engine(cli)?;
    each(&a.containers, |n| {
        engine.restart(n, a.time.map(std::time::Duration::from_secs))?;
        println!("{n}");
        Ok(())
    })
}

pub fn kill(cli: &Cli, a: &KillArgs) -> Result<i32> {
    let sig = berth_runtime::signal::parse(&a.signal)
        .with_context(|| format!("--signal {:?}: not a signal name or number", a.signal))?;
    let engine = engine(cli)?;
    each(&a.containers, |n| {
        engine.kill(n, sig)?;
        println!("{n}");
        Ok(())
    })
}

pub fn wait(cli: &Cli, a: &WaitArgs) -> Result<i32> {
    let engine = engine(cli)?;
    each(&a.containers, |n| {
        println!("{}", engine.wait(n)?);
        Ok(())
    })
}

pub fn internal(cli: &Cli, i: &Internal) -> Result<i32> {
    let fd = match i {
        Internal::Start { report_fd, .. } | Internal::Cleanup { report_fd, .. } => *report_fd,
    };
    // Taken (close-on-exec) before anything else, so the container's init gets no copy
    // past its exec.
    let mut report = std::fs::File::from(
        berth_sys::fd::take_inherited(fd).context("--report-fd: not an open fd")?,
    );
    let reply = engine(cli).and_then(|engine| match i {
        Internal::Start {
            id,
            create_only,
            restart,
            console_socket,
            ..
        } => Ok(format!(
            "started {}\n",
            engine.start_init(id, *create_only, *restart, console_socket.as_deref())?
        )),
        Internal::Cleanup { id, exit_code, .. } => Ok(match engine.cleanup(id, *exit_code)? {
            Next::Done => "done\n".to_string(),
            Next::Restart(d) => format!("restart {}\n", d.as_millis()),
        }),
    });
    match reply {
        Ok(line) => {
            report.write_all(line.as_bytes())?;
            Ok(0)
        }
        Err(e) => {
            // One line ("error CODE MESSAGE"): the monitor reads a line, not to EOF.
            let code = e
                .downcast_ref::<berth_engine::ContainerError>()
                .map_or(125, berth_engine::lifecycle::start_failure_code);
            let msg = crate::exit::message(&e).replace('\n', "; ");
            let _ = writeln!(report, "error {code} {msg}");
            Ok(1)
        }
    }
}
