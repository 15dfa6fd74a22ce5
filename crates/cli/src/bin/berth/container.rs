//! Container commands: run (foreground), ps, rm.

use crate::image::{print_table, Format};
use crate::Cli;
use anyhow::{bail, Context, Result};
use berth_engine::spec::{NetworkMode, SpecOptions};
use berth_engine::{Engine, RunOptions, Status};
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    #[default]
    Missing,
    Never,
}

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background under a monitor; print the container's id.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open (the terminal's in the foreground; an open, empty pipe with -d).
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// no, on-failure[:N], always, unless-stopped.
    #[arg(long, default_value = "no")]
    restart: String,
    /// Log options: max-size=SIZE, max-file=N.
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Signal that stops the container (default: the image's StopSignal, else SIGTERM).
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<u64>,
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
    /// none (loopback only), host, or a network's name [default: berth, the bridge network]
    #[arg(long)]
    network: Option<NetworkMode>,
    /// Publish a port: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], ranges as 8000-8001:80-81;
    /// without a host port, a free one is picked.
    #[arg(short = 'p', long = "publish")]
    publish: Vec<berth_engine::network::Publish>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Memory limit: bytes or with b, k, m, g.
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory plus swap (at least -m), or -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    memory_swap: Option<String>,
    /// CPUs' worth of time (a CFS quota): 0.01 to the number of CPUs online.
    #[arg(long)]
    cpus: Option<f64>,
    /// Relative CPU weight (cgroup v1 shares; converted to cpu.weight on v2).
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    /// CPUs the container may run on, e.g. 0-1,3.
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
    /// HOST-PATH:CONTAINER-PATH[:OPTS] (bind), VOLUME:CONTAINER-PATH[:OPTS] (named
    /// volume, created on first use) or CONTAINER-PATH (anonymous volume); OPTS: ro, rw,
    /// nocopy, z, Z, [r]shared, [r]slave, [r]private.
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=..,target=..,readonly,... (docker's keys).
    #[arg(long)]
    mount: Vec<String>,
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
    /// name=, id=, status=created|running|restarting|exited, label=K[=V], ancestor=IMAGE,
    /// exited=CODE (several values of one key match any).
    #[arg(short, long)]
    filter: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Whether a container passes `ps --filter`s (docker's keys).
fn ps_matches(c: &berth_engine::Container, filters: &[(String, String)]) -> bool {
    berth_engine::events::filters_match(filters, |key, v| match key {
        "name" => c.name.contains(v),
        "id" => c.id.starts_with(v),
        "status" => serde_json::to_value(c.status).is_ok_and(|s| s == v),
        "label" => {
            let (k, want) = v.split_once('=').map_or((v, None), |(k, w)| (k, Some(w)));
            c.labels
                .iter()
                .any(|(lk, lv)| lk == k && want.is_none_or(|w| w == lv))
        }
        "ancestor" => {
            c.image == v || c.image_id.starts_with(v) || c.image.starts_with(&format!("{v}:"))
        }
        "exited" => c.status == Status::Exited && c.exit_code.is_some_and(|x| x.to_string() == v),
        _ => false,
    })
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    containers: Vec<String>,
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    /// Also remove the container's anonymous volumes.
    #[arg(short, long)]
    volumes: bool,
}

pub fn engine(cli: &Cli) -> Result<Engine> {
    let driver = crate::image::driver(cli);
    let mut e = Engine::open(&cli.root, &cli.runroot, driver)
        .with_context(|| format!("opening berth's store in {}", cli.root.display()))?;
    e.helpers = helpers(cli);
    Ok(e)
}

/// The monitor binary beside this one, and this binary with the same global flags for
/// the monitor's `internal` calls.
fn helpers(cli: &Cli) -> Option<berth_engine::Helpers> {
    let exe = std::env::current_exe().ok()?;
    let monitor = exe.with_file_name("berth-monitor");
    let mut berth: Vec<std::ffi::OsString> = vec![
        exe.into(),
        "--root".into(),
        cli.root.clone().into(),
        "--runroot".into(),
        cli.runroot.clone().into(),
    ];
    if let Some(d) = cli.storage_driver {
        berth.push("--storage-driver".into());
        berth.push(
            match d {
                crate::StorageDriver::Overlay => "overlay",
                crate::StorageDriver::Copy => "copy",
            }
            .into(),
        );
    }
    Some(berth_engine::Helpers { monitor, berth })
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
    crate::exec::env_list(&a.env, &a.env_file)
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

fn run_options(a: &RunArgs) -> Result<RunOptions> {
    let mounts = berth_engine::mounts::parse(&a.volume, &a.mount, &a.tmpfs)?;
    let network = a
        .network
        .clone()
        .unwrap_or_else(NetworkMode::default_network);
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
        tty: a.tty,
        read_only: a.read_only,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        no_new_privileges: false,
        network,
        netns: None,
        publish: a.publish.iter().flat_map(|p| p.0.iter().cloned()).collect(),
        publish_all: a.publish_all,
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
        mounts: vec![],
        labels,
        cgroups_path: String::new(),
        ..Default::default()
    };
    a.security.apply(&mut spec)?;
    check_resources(&spec)?;
    if a.rm && a.restart != "no" {
        bail!(
            "--rm and --restart {}: conflicting options (a removed container cannot restart)",
            a.restart
        );
    }
    let restart = a.restart.parse::<berth_engine::RestartPolicy>()?;
    let mut life = berth_engine::Life {
        restart,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        interactive: a.interactive,
        tty: a.tty,
        log_max_files: 1,
        ..Default::default()
    };
    if let Some(s) = &a.stop_signal {
        if berth_runtime::signal::parse(s).is_none() {
            bail!("--stop-signal {s:?}: not a signal name or number");
        }
    }
    for o in &a.log_opt {
        match o.split_once('=') {
            Some(("max-size", v)) => life.log_max_size = parse_size(v)? as u64,
            Some(("max-file", v)) => {
                life.log_max_files =
                    v.parse().ok().filter(|n| *n >= 1).with_context(|| {
                        format!("--log-opt {o:?}: max-file must be a number >= 1")
                    })?
            }
            _ => bail!("--log-opt {o:?}: expected max-size=SIZE or max-file=N"),
        }
    }
    Ok(RunOptions {
        image: a.image.clone(),
        name: a.name.clone(),
        auto_remove: a.rm,
        spec,
        life,
        mounts,
    })
}

/// docker's rules for the resource flags, checked here so that a bad value is refused
/// with a message about the flag, not a kernel errno from a cgroup file at start.
fn check_resources(spec: &SpecOptions) -> Result<()> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let online = parse_cpu_list(online.trim()).unwrap_or_default();
    if let Some(c) = spec.cpus {
        let n = online.len().max(1);
        if !(0.01..=n as f64).contains(&c) {
            bail!("--cpus {c}: the range is 0.01 to {n}, as there are {n} CPUs online");
        }
    }
    if let Some(list) = &spec.cpuset_cpus {
        let cpus = parse_cpu_list(list)
            .with_context(|| format!("--cpuset-cpus {list:?}: expected a list like 0-3,5"))?;
        if let Some(c) = cpus
            .iter()
            .find(|c| !online.is_empty() && !online.contains(c))
        {
            bail!("--cpuset-cpus {list:?}: CPU {c} is not online (online: {online:?})");
        }
    }
    match (spec.memory, spec.memory_swap) {
        (None, Some(_)) => bail!("--memory-swap needs -m/--memory: it is memory plus swap"),
        (Some(m), Some(s)) if s != -1 && s < m => {
            bail!("--memory-swap {s} is below -m {m}: it is memory plus swap, so at least -m")
        }
        _ => {}
    }
    Ok(())
}

/// A Linux CPU list ("0-3,5"), as in cpuset.cpus and /sys/devices/system/cpu/online.
fn parse_cpu_list(list: &str) -> Result<Vec<u32>> {
    let mut out = vec![];
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u32, u32) = (lo.trim().parse()?, hi.trim().parse()?);
        if lo > hi || hi - lo > 4096 {
            bail!("bad range {part:?}");
        }
        out.extend(lo..=hi);
    }
    if out.is_empty() {
        bail!("empty");
    }
    Ok(out)
}

/// Bad flag values are usage errors (exit 2), refused before anything is made.
fn checked_options(a: &RunArgs) -> Result<RunOptions> {
    run_options(a).map_err(|e| {
        if crate::exit::code(&e) == 1 {
            crate::exit::Usage(crate::exit::message(&e)).into()
        } else {
            e
        }
    })
}

pub fn run(cli: &Cli, a: &RunArgs) -> Result<i32> {
    let opts = checked_options(a)?;
    let engine = engine(cli)?;
    ensure_image(cli, &engine, &a.image, a.pull)?;
    if a.detach {
        let (c, _) = engine.run(&opts, None)?;
        println!("{}", c.id);
        return Ok(0);
    }
    if a.tty {
        return crate::tty::run(&engine, &opts, a.interactive);
    }
    let (_, code) = engine.run(
        &opts,
        Some(berth_engine::Attach {
            stdin: a.interactive,
            console_socket: None,
        }),
    )?;
    Ok(code.unwrap_or(0))
}

/// `create`: the container and its monitor, with the init waiting for `start`.
pub fn create(cli: &Cli, a: &RunArgs) -> Result<i32> {
    let opts = checked_options(a)?;
    let engine = engine(cli)?;
    ensure_image(cli, &engine, &a.image, a.pull)?;
    let (c, _) = engine.create(&opts)?;
    let mut m = engine.start_monitor(&c, true, None)?;
    m.started(&engine)?;
    println!("{}", c.id);
    Ok(0)
}

pub fn ps(cli: &Cli, a: &PsArgs) -> Result<i32> {
    const KEYS: [&str; 6] = ["name", "id", "status", "label", "ancestor", "exited"];
    let filters = a
        .filter
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if KEYS.contains(&k) => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow::Error::from(crate::exit::Usage(format!(
                "--filter {f:?}: expected KEY=VALUE with KEY one of {}",
                KEYS.join(", ")
            )))),
        })
        .collect::<Result<Vec<_>>>()?;
    let all: Vec<_> = engine(cli)?
        .list()?
        .into_iter()
        .filter(|c| {
            // As with docker, asking for a status or an exit code looks at all.
            a.all
                || filters.iter().any(|(k, _)| k == "status" || k == "exited")
                || matches!(c.status, Status::Running | Status::Restarting)
        })
        .filter(|c| ps_matches(c, &filters))
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
            let since = |t: Option<u64>| {
                crate::image::ago(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.unwrap_or(c.created)),
                )
            };
            let status = match (c.status, c.exit_code) {
                (Status::Exited, Some(code)) => format!("Exited ({code}) {}", since(c.finished)),
                (Status::Exited, None) => "Exited".into(),
                (Status::Running, _) => {
                    format!("Up {}", since(c.life.started).trim_end_matches(" ago"))
                }
                (Status::Restarting, code) => {
                    format!("Restarting ({}) {}", code.unwrap_or(0), since(c.finished))
                }
                (Status::Created, _) => "Created".into(),
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
                berth_engine::network::format_ports(&c.ports),
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
            "PORTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

pub fn rm(cli: &Cli, a: &RmArgs) -> Result<i32> {
    let engine = engine(cli)?;
    crate::lifecycle::each(&a.containers, |c| {
        let r = engine.remove(c, a.force)?;
        if a.volumes {
            engine.remove_anonymous_volumes(&r)?;
        }
        println!("{c}");
        Ok(())
    })
}
