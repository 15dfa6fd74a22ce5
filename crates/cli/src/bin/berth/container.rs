//! Container commands: run (foreground), ps, rm.

use crate::image::{print_table, Format};
use crate::Cli;
use anyhow::{bail, Context, Result};
use berth_engine::spec::{NetworkMode, SpecOptions};
use berth_engine::{Engine, RunOptions};
use clap::{Args, ValueEnum};
use serde_json::json;

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    #[default]
    Missing,
    Never,
}

#[derive(Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from here).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines).
    #[arg(long = "env-file")]
    env_file: Vec<std::path::PathBuf>,
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// USER[:GROUP], names or ids (names from the image's /etc/passwd and /etc/group).
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    #[arg(long)]
    entrypoint: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    #[arg(short = 'l', long = "label")]
    label: Vec<String>,
    /// none (loopback only) or host.
    #[arg(long, default_value = "none")]
    network: String,
    /// Memory limit: bytes or with b, k, m, g.
    #[arg(short = 'm', long)]
    memory: Option<String>,
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    #[arg(long)]
    cpus: Option<f64>,
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    #[arg(long = "read-only")]
    read_only: bool,
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    #[command(flatten)]
    security: crate::security::SecurityArgs,
    #[arg(long)]
    privileged: bool,
    /// Bind mount: HOST:CONTAINER[:ro].
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// tmpfs mount: CONTAINER[:OPTIONS].
    #[arg(long)]
    tmpfs: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    pull: PullPolicy,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default: running).
    #[arg(short, long)]
    all: bool,
    #[arg(short, long)]
    quiet: bool,
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    containers: Vec<String>,
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
}

pub fn engine(cli: &Cli) -> Result<Engine> {
    let driver = crate::image::driver(cli);
    Engine::open(&cli.root, &cli.runroot, driver)
        .with_context(|| format!("opening berth's store in {}", cli.root.display()))
}

/// docker's size syntax: 256m, 1g, 512k, 1024b, 1024.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = &t[i..];
            let m: i64 = match unit {
                "b" => 1,
                "k" | "kb" => 1 << 10,
                "m" | "mb" => 1 << 20,
                "g" | "gb" => 1 << 30,
                _ => bail!("invalid size {s:?}: unit must be b, k, m or g"),
            };
            (&t[..i], m)
        }
        None => (t.as_str(), 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}: not a number"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}: negative");
    }
    Ok((n * mult as f64) as i64)
}

fn env_list(a: &RunArgs) -> Result<Vec<String>> {
    let mut out = vec![];
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        for l in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            out.push(l.to_string());
        }
    }
    out.extend(a.env.iter().cloned());
    // KEY alone copies the value from berth's own environment, as docker does.
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

fn mounts(a: &RunArgs) -> Result<Vec<serde_json::Value>> {
    let mut out = vec![];
    for v in &a.volume {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => bail!("-v {v:?}: expected HOST:CONTAINER[:ro]"),
        };
        if !src.starts_with('/') {
            bail!("-v {v:?}: named volumes are not supported yet; give an absolute host path");
        }
        if !dst.starts_with('/') {
            bail!("-v {v:?}: the container path must be absolute");
        }
        std::fs::metadata(src).with_context(|| format!("-v {v:?}: host path {src}"))?;
        let mut options = vec!["rbind".to_string()];
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" | "rw" => options.push(o.into()),
                _ => bail!("-v {v:?}: unknown option {o:?} (ro, rw)"),
            }
        }
        out.push(json!({"destination": dst, "type": "bind", "source": src, "options": options}));
    }
    for t in &a.tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !dst.starts_with('/') {
            bail!("--tmpfs {t:?}: the container path must be absolute");
        }
        let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into()];
        options.extend(
            opts.split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string),
        );
        out.push(
            json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
    }
    Ok(out)
}

fn ensure_image(cli: &Cli, engine: &Engine, image: &str, policy: PullPolicy) -> Result<()> {
    let have = engine.images.find(image).is_ok();
    let pull = match policy {
        PullPolicy::Always => true,
        PullPolicy::Missing => !have,
        PullPolicy::Never => false,
    };
    if !pull {
        return Ok(());
    }
    // In a child process: the pull uses threads (tokio), and the process that clones the
    // container must have none.
    let status = std::process::Command::new("/proc/self/exe")
        .arg("--root")
        .arg(&cli.root)
        .arg("--runroot")
        .arg(&cli.runroot)
        .args(["pull", "-q", image])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running berth pull")?;
    if !status.success() {
        bail!("pulling {image} failed");
    }
    Ok(())
}

pub fn run(cli: &Cli, a: &RunArgs) -> Result<i32> {
    let network = match a.network.as_str() {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => bail!("--network {other:?}: only none and host are supported so far"),
    };
    let labels = a
        .label
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut spec = SpecOptions {
        command: a.command.clone(),
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            }
        }),
        env: env_list(a)?,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone().unwrap_or_default(),
        tty: false,
        read_only: a.read_only,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        no_new_privileges: false,
        network,
        memory: a.memory.as_deref().map(parse_size).transpose()?,
        memory_swap: a
            .memory_swap
            .as_deref()
            .map(|s| if s == "-1" { Ok(-1) } else { parse_size(s) })
            .transpose()?,
        cpus: a.cpus,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        pids_limit: a.pids_limit,
        mounts: mounts(a)?,
        labels,
        cgroups_path: String::new(),
        ..Default::default()
    };
    a.security.apply(&mut spec)?;
    let engine = engine(cli)?;
    ensure_image(cli, &engine, &a.image, a.pull)?;
    let opts = RunOptions {
        image: a.image.clone(),
        name: a.name.clone(),
        auto_remove: a.rm,
        spec,
    };
    let (_, code) = engine.run_foreground(&opts)?;
    Ok(code)
}

pub fn ps(cli: &Cli, a: &PsArgs) -> Result<i32> {
    let all: Vec<_> = engine(cli)?
        .list()?
        .into_iter()
        .filter(|c| a.all || c.status == berth_engine::container::Status::Running)
        .collect();
    if a.quiet {
        for c in &all {
            println!("{}", if a.no_trunc { &c.id[..] } else { &c.id[..12] });
        }
        return Ok(0);
    }
    if let Format::Json = a.format {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|c| {
            let status = match (c.status, c.exit_code) {
                (berth_engine::container::Status::Exited, Some(code)) => format!("Exited ({code})"),
                (berth_engine::container::Status::Exited, None) => "Exited".into(),
                (berth_engine::container::Status::Running, _) => "Up".into(),
                (berth_engine::container::Status::Created, _) => "Created".into(),
            };
            vec![
                if a.no_trunc {
                    c.id.clone()
                } else {
                    c.id[..12].to_string()
                },
                c.image.clone(),
                format!("{:?}", c.command.join(" ")),
                crate::image::ago(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.created),
                ),
                status,
                c.name.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

pub fn rm(cli: &Cli, a: &RmArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let mut failed = None;
    for c in &a.containers {
        match engine.remove(c, a.force) {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}
