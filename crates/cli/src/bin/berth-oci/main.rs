//! berth-oci: an OCI runtime with runc's command line, so containerd's shim, podman and
//! CRI-O can use it where they would use runc or crun. Argument parsing and output
//! only; the work is in berth-runtime.

mod exec;
mod log;
mod manage;

use anyhow::{bail, Context, Result};
use berth_runtime::container::{self, CreateOptions, Launch, Outcome};
use berth_runtime::state::{self, ContainerState};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth-oci",
    version,
    about = "OCI runtime (runtime-spec 1.2) with runc's command line"
)]
struct Cli {
    /// Directory for container state (tmpfs recommended).
    #[arg(long, global = true, default_value = "/run/berth-oci")]
    root: PathBuf,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value_t = log::Format::Text)]
    log_format: log::Format,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Manage cgroups through systemd.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Path to the bundle directory (holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the init's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for a rootfs on ramfs).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Pass N extra fds (3 .. 3+N-1) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Accepted for runc compatibility (berth creates no session keyring).
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    id: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container; its process waits until `start`.
    Create(CreateArgs),
    /// Start the user program of a created container.
    Start { id: String },
    /// Print the container's state (runtime-spec JSON).
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or with --all to every process.
    Kill {
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container (stopped, or created; any with --force).
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; without --detach wait for it, forwarding signals.
    Run {
        #[arg(short = 'd', long)]
        detach: bool,
        /// Accepted for runc compatibility.
        #[arg(long = "keep")]
        keep: bool,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Run a new process in a running container; without --detach wait for it.
    Exec(Box<exec::ExecArgs>),
    /// Freeze every process of a running container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the container's processes (ps(1) output, or pids as JSON).
    Ps(manage::PsArgs),
    /// Change a running container's resources.
    Update(Box<manage::UpdateArgs>),
    /// Print resource usage and OOM events (JSON lines).
    Events(manage::EventsArgs),
    /// List containers.
    List {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features document).
    Features,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

fn main() {
    // First, before anything a container could race (CVE-2019-5736 class).
    berth_runtime::exe::not_dumpable();
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.clone(), cli.log_format, cli.debug);
    let _ = tracing::subscriber::set_global_default(logger.clone());
    match run(cli, &logger) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            logger.error(&message(&e));
            std::process::exit(1);
        }
    }
}

/// The error and its causes, skipping causes the message already quotes (the
/// library's errors include their source in their own text).
fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

fn run(cli: Cli, logger: &log::Logger) -> Result<i32> {
    let root = cli.root.clone();
    match cli.command {
        Command::Create(a) => {
            check_systemd(cli.systemd_cgroup)?;
            create(&root, a, Launch::Create, logger)
        }
        Command::Run {
            detach, create: a, ..
        } => {
            check_systemd(cli.systemd_cgroup)?;
            create(
                &root,
                a,
                if detach {
                    Launch::RunDetached
                } else {
                    Launch::RunForeground
                },
                logger,
            )
        }
        Command::Start { id } => {
            container::start(&root, &id)?;
            Ok(0)
        }
        Command::State { id } => {
            container::validate_id(&id)?;
            let st = ContainerState::load(&root, &id)?;
            print!("{}", serde_json::to_string_pretty(&st.document())?);
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let name = signal.unwrap_or_else(|| "SIGTERM".into());
            let Some(sig) = berth_runtime::signal::parse(&name) else {
                bail!("unknown signal {name:?}");
            };
            container::kill(&root, &id, sig, all)?;
            Ok(0)
        }
        Command::Delete { force, id } => {
            container::delete(&root, &id, force)?;
            Ok(0)
        }
        Command::List { format, quiet } => list(&root, format, quiet),
        Command::Exec(a) => exec::exec(&root, *a),
        Command::Pause { id } => {
            container::pause(&root, &id)?;
            Ok(0)
        }
        Command::Resume { id } => {
            container::resume(&root, &id)?;
            Ok(0)
        }
        Command::Ps(a) => manage::ps(&root, a),
        Command::Update(a) => manage::update(&root, *a),
        Command::Events(a) => manage::events(&root, a),
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let uid = rustix::process::getuid().as_raw();
            let gid = rustix::process::getgid().as_raw();
            let spec = berth_runtime::spec::default::default_spec(rootless, uid, gid);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&berth_runtime::features::document())?
            );
            Ok(0)
        }
    }
}

fn check_systemd(wanted: bool) -> Result<()> {
    if !wanted {
        return Ok(());
    }
    if !std::path::Path::new("/run/systemd/system").exists() {
        bail!("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); drop the flag to use cgroupfs");
    }
    bail!("--systemd-cgroup: the systemd cgroup driver is not implemented in this berth-oci build; use cgroupfs (drop the flag)")
}

fn create(
    root: &std::path::Path,
    a: CreateArgs,
    launch: Launch,
    logger: &log::Logger,
) -> Result<i32> {
    let opts = CreateOptions {
        root: root.to_path_buf(),
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        launch,
    };
    logger.debug(&format!(
        "{launch:?} {} from {}",
        opts.id,
        opts.bundle.display()
    ));
    match container::create(&opts)? {
        Outcome::Started { .. } => Ok(0),
        Outcome::Exited { code } => Ok(code),
    }
}

fn list(root: &std::path::Path, format: ListFormat, quiet: bool) -> Result<i32> {
    let states: Vec<ContainerState> = state::ids(root)
        .iter()
        .filter_map(|id| ContainerState::load(root, id).ok())
        .collect();
    if quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    let owner = |uid: u32| {
        if uid == 0 {
            "root".to_string()
        } else {
            std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|p| {
                    p.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
                    })
                })
                .unwrap_or_else(|| format!("#{uid}"))
        }
    };
    match format {
        ListFormat::Json => {
            // runc prints `null` for no containers; engines parse that, so do the same.
            let docs: Vec<serde_json::Value> = states
                .iter()
                .map(|s| {
                    let d = s.document();
                    let mut v = serde_json::to_value(&d).unwrap_or_default();
                    v["owner"] = owner(s.owner_uid).into();
                    v
                })
                .collect();
            if docs.is_empty() {
                println!("null");
            } else {
                println!("{}", serde_json::to_string(&docs)?);
            }
        }
        ListFormat::Table => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for s in &states {
                let d = s.document();
                rows.push([
                    d.id,
                    d.pid.to_string(),
                    d.status.to_string(),
                    d.bundle,
                    d.created,
                    owner(s.owner_uid),
                ]);
            }
            // runc's tabwriter: minimum width 12, padding 3.
            let widths: Vec<usize> = (0..6)
                .map(|c| {
                    rows.iter()
                        .map(|r| r[c].len() + 3)
                        .max()
                        .unwrap_or(0)
                        .max(12)
                })
                .collect();
            for r in rows {
                let mut line = String::new();
                for (c, cell) in r.iter().enumerate() {
                    if c == 5 {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<w$}", w = widths[c]));
                    }
                }
                println!("{line}");
            }
        }
    }
    Ok(0)
}
