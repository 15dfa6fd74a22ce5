//! `berth container VERB`: every container command under one noun, as docker and
//! podman have it (`berth container ls` is `berth ps`), and the verbs that only live
//! there or beside it: rename and prune.

use crate::container::engine;
use crate::progress::human;
use crate::Cli;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Run a command in a new container from an image.
    Run(Box<crate::container::RunArgs>),
    /// Create a container (its process waits for `start`).
    Create(Box<crate::container::RunArgs>),
    /// Start created or stopped containers.
    Start(crate::lifecycle::StartArgs),
    /// Stop running containers.
    Stop(crate::lifecycle::StopArgs),
    /// Stop, then start again.
    Restart(crate::lifecycle::StopArgs),
    /// Send a signal to running containers.
    Kill(crate::lifecycle::KillArgs),
    /// Wait for containers to exit; print their exit codes.
    Wait(crate::lifecycle::WaitArgs),
    /// Print a container's output.
    Logs(crate::logs::LogsArgs),
    /// List containers.
    #[command(alias = "ps", alias = "list")]
    Ls(crate::container::PsArgs),
    /// Remove containers.
    #[command(alias = "remove")]
    Rm(crate::container::RmArgs),
    /// Run a command in a running container.
    Exec(crate::exec::ExecArgs),
    /// Copy files between a container and the host (or a tar stream, `-`).
    Cp(crate::cp::CpArgs),
    /// Show containers in detail (JSON).
    Inspect(crate::inspect::ContainerInspectArgs),
    /// List a container's processes.
    Top(crate::top::TopArgs),
    /// Show containers' resource use.
    Stats(crate::stats::StatsArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Remove every exited container.
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

pub fn container(cli: &Cli, c: &ContainerCommand) -> Result<i32> {
    use ContainerCommand as C;
    match c {
        C::Run(a) => crate::container::run(cli, a),
        C::Create(a) => crate::container::create(cli, a),
        C::Start(a) => crate::lifecycle::start(cli, a),
        C::Stop(a) => crate::lifecycle::stop(cli, a),
        C::Restart(a) => crate::lifecycle::restart(cli, a),
        C::Kill(a) => crate::lifecycle::kill(cli, a),
        C::Wait(a) => crate::lifecycle::wait(cli, a),
        C::Logs(a) => crate::logs::logs(cli, a),
        C::Ls(a) => crate::container::ps(cli, a),
        C::Rm(a) => crate::container::rm(cli, a),
        C::Exec(a) => crate::exec::exec(cli, a),
        C::Cp(a) => crate::cp::cp(cli, a),
        C::Inspect(a) => crate::inspect::inspect(cli, &a.into()),
        C::Top(a) => crate::top::top(cli, a),
        C::Stats(a) => crate::stats::stats(cli, a),
        C::Rename(a) => rename(cli, a),
        C::Prune(a) => prune(cli, a),
    }
}

pub fn rename(cli: &Cli, a: &RenameArgs) -> Result<i32> {
    engine(cli)?.rename(&a.container, &a.new_name)?;
    Ok(0)
}

/// Asks on stderr, reads the answer from stdin; anything but yes refuses.
pub fn confirm(warning: &str) -> Result<()> {
    eprint!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not confirmed; nothing removed");
    }
    Ok(())
}

pub fn prune(cli: &Cli, a: &PruneArgs) -> Result<i32> {
    if !a.force {
        confirm("This will remove all stopped containers.")?;
    }
    let p = engine(cli)?.container_prune()?;
    if !p.containers.is_empty() {
        println!("Deleted Containers:");
        for id in &p.containers {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human(p.bytes));
    Ok(0)
}
