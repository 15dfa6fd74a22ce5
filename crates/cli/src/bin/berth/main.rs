//! berth: a daemonless container CLI in the habits of podman and docker. Argument parsing
//! and output only; images live in berth-image, containers (next) in the engine.

mod container;
mod container_cmd;
mod cp;
mod events;
mod exec;
mod exit;
mod image;
mod inspect;
mod lifecycle;
mod logs;
mod network;
mod progress;
mod security;
mod stats;
mod system;
mod top;
mod tty;
mod volume;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Run containers from images, without a daemon"
)]
pub struct Cli {
    /// Persistent storage: images, snapshots, metadata.
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/berth",
        env = "BERTH_ROOT"
    )]
    root: PathBuf,
    /// Runtime state (tmpfs).
    #[arg(
        long,
        global = true,
        default_value = "/run/berth",
        env = "BERTH_RUNROOT"
    )]
    runroot: PathBuf,
    /// Snapshot driver for a new root: overlay (probed) or copy (where overlayfs can't be used).
    #[arg(
        long = "storage-driver",
        global = true,
        value_enum,
        env = "BERTH_STORAGE_DRIVER"
    )]
    storage_driver: Option<StorageDriver>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log-level", global = true, default_value = "warn")]
    log_level: tracing::Level,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StorageDriver {
    Overlay,
    Copy,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a new container from an image.
    Run(Box<container::RunArgs>),
    /// Create a container (its process waits for `start`).
    Create(Box<container::RunArgs>),
    /// Start created or stopped containers.
    Start(lifecycle::StartArgs),
    /// Stop running containers: the stop signal, then SIGKILL after the timeout.
    Stop(lifecycle::StopArgs),
    /// Stop, then start again.
    Restart(lifecycle::StopArgs),
    /// Send a signal to running containers.
    Kill(lifecycle::KillArgs),
    /// Wait for containers to exit; print their exit codes.
    Wait(lifecycle::WaitArgs),
    /// Print a container's output.
    Logs(logs::LogsArgs),
    /// Show what happens to containers, volumes and networks (past ones with --since).
    Events(events::EventsArgs),
    /// Run by the monitor (not for people).
    #[command(subcommand, hide = true)]
    Internal(lifecycle::Internal),
    /// List containers.
    Ps(container::PsArgs),
    /// Remove containers.
    Rm(container::RmArgs),
    /// Pull an image from a registry.
    Pull(image::PullArgs),
    /// Push an image to a registry.
    Push(image::PushArgs),
    /// List images.
    Images(image::ListArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Remove images.
    Rmi(image::RmiArgs),
    /// Add a name to an image.
    Tag(image::TagArgs),
    /// Write images to a tar (OCI layout and docker-archive in one).
    Save(image::SaveArgs),
    /// Read images from an OCI layout or docker-archive tar.
    Load(image::LoadArgs),
    /// Store credentials for a registry.
    Login(image::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(image::LogoutArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Copy files between a container and the host (or a tar stream, `-`).
    Cp(cp::CpArgs),
    /// Show containers, images or volumes in detail (JSON).
    Inspect(inspect::InspectArgs),
    /// List a container's processes.
    Top(top::TopArgs),
    /// Show containers' resource use.
    Stats(stats::StatsArgs),
    /// Rename a container.
    Rename(container_cmd::RenameArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(container_cmd::ContainerCommand),
    /// Disk use and pruning.
    #[command(subcommand)]
    System(system::SystemCommand),
}

fn main() {
    let cli = Cli::parse();
    // The `internal` helpers' stdout and stderr are the container's: nothing of ours
    // may go there (failures go back on the report fd).
    let internal = matches!(cli.command, Command::Internal(_));
    tracing_subscriber::fmt()
        .with_writer(move || -> Box<dyn std::io::Write> {
            if internal {
                Box::new(std::io::sink())
            } else {
                Box::new(std::io::stderr())
            }
        })
        .with_max_level(cli.log_level)
        .with_target(false)
        .without_time()
        .init();
    let res = match &cli.command {
        Command::Run(a) => container::run(&cli, a),
        Command::Create(a) => container::create(&cli, a),
        Command::Start(a) => lifecycle::start(&cli, a),
        Command::Stop(a) => lifecycle::stop(&cli, a),
        Command::Restart(a) => lifecycle::restart(&cli, a),
        Command::Kill(a) => lifecycle::kill(&cli, a),
        Command::Wait(a) => lifecycle::wait(&cli, a),
        Command::Logs(a) => logs::logs(&cli, a),
        Command::Events(a) => events::events(&cli, a),
        Command::Internal(i) => lifecycle::internal(&cli, i),
        Command::Ps(a) => container::ps(&cli, a),
        Command::Rm(a) => container::rm(&cli, a),
        Command::Pull(a) => image::pull(&cli, a).map(|()| 0),
        Command::Push(a) => image::push(&cli, a).map(|()| 0),
        Command::Images(a) => image::list(&cli, a).map(|()| 0),
        Command::Image(c) => image::image(&cli, c).map(|()| 0),
        Command::Rmi(a) => image::rmi(&cli, a).map(|()| 0),
        Command::Tag(a) => image::tag(&cli, a).map(|()| 0),
        Command::Save(a) => image::save(&cli, a).map(|()| 0),
        Command::Load(a) => image::load(&cli, a).map(|()| 0),
        Command::Login(a) => image::login(&cli, a).map(|()| 0),
        Command::Logout(a) => image::logout(&cli, a).map(|()| 0),
        Command::Volume(c) => volume::volume(&cli, c),
        Command::Network(c) => network::network(&cli, c),
        Command::Exec(a) => exec::exec(&cli, a),
        Command::Cp(a) => cp::cp(&cli, a),
        Command::Inspect(a) => inspect::inspect(&cli, a),
        Command::Top(a) => top::top(&cli, a),
        Command::Stats(a) => stats::stats(&cli, a),
        Command::Rename(a) => container_cmd::rename(&cli, a),
        Command::Container(c) => container_cmd::container(&cli, c),
        Command::System(c) => system::system(&cli, c),
    };
    match res {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("berth: {}", crate::exit::message(&e));
            std::process::exit(exit::code(&e));
        }
    }
}
