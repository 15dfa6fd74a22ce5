//! Commands on a live container's cgroup: `pause`, `resume`, `ps`, `update`, `events`,
//! with runc's flags and output shapes.

use anyhow::{bail, Context, Result};
use berth_runtime::container;
use clap::{Args, ValueEnum};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Args)]
pub struct PsArgs {
    #[arg(short = 'f', long, value_enum, default_value_t = PsFormat::Table)]
    format: PsFormat,
    id: String,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn ps(root: &Path, a: PsArgs) -> Result<i32> {
    let pids = container::pids(root, &a.id)?;
    if let PsFormat::Json = a.format {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps(1)")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps {}: no PID column in its output", args.join(" "));
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{header}")?;
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(stdout, "{l}")?;
        }
    }
    Ok(0)
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Resources as JSON (runtime-spec linux.resources); "-" reads stdin.
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpu-idle")]
    cpu_idle: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for none).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Refused: kernel memory accounting is gone from current kernels.
    #[arg(long = "kernel-memory")]
    kernel_memory: Option<String>,
    id: String,
}

/// "256m" → 268435456; "-1" → -1 (unlimited).
fn size(flag: &str, s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let t = lower.trim_end_matches('b');
    let (digits, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = digits.parse().with_context(|| {
        format!("--{flag} {s}: not a size (bytes, or a number with k, m, g or t)")
    })?;
    Ok((n * mult as f64) as i64)
}

pub fn update(root: &Path, a: UpdateArgs) -> Result<i32> {
    if a.kernel_memory.is_some() {
        bail!("--kernel-memory: kernel memory limits are not supported (removed from the kernel's cgroup interface)");
    }
    let r: LinuxResources = match &a.resources {
        Some(p) => {
            let bytes = if p.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(p).with_context(|| format!("reading --resources {}", p.display()))?
            };
            let de = &mut serde_json::Deserializer::from_slice(&bytes);
            serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow::anyhow!("--resources: {}: {}", e.path(), e.inner()))?
        }
        None => {
            let mut r = LinuxResources::default();
            if a.memory.is_some() || a.memory_reservation.is_some() || a.memory_swap.is_some() {
                let mut m = LinuxMemory::default();
                if let Some(v) = &a.memory {
                    m.set_limit(Some(size("memory", v)?));
                }
                if let Some(v) = &a.memory_reservation {
                    m.set_reservation(Some(size("memory-reservation", v)?));
                }
                if let Some(v) = &a.memory_swap {
                    m.set_swap(Some(size("memory-swap", v)?));
                }
                r.set_memory(Some(m));
            }
            let cpu_given = a.cpu_period.is_some()
                || a.cpu_quota.is_some()
                || a.cpu_share.is_some()
                || a.cpu_rt_period.is_some()
                || a.cpu_rt_runtime.is_some()
                || a.cpu_idle.is_some()
                || a.cpuset_cpus.is_some()
                || a.cpuset_mems.is_some();
            if cpu_given {
                let mut c = LinuxCpu::default();
                c.set_period(a.cpu_period);
                c.set_quota(a.cpu_quota);
                c.set_shares(a.cpu_share);
                c.set_realtime_period(a.cpu_rt_period);
                c.set_realtime_runtime(a.cpu_rt_runtime);
                c.set_idle(a.cpu_idle);
                c.set_cpus(a.cpuset_cpus.clone());
                c.set_mems(a.cpuset_mems.clone());
                r.set_cpu(Some(c));
            }
            if let Some(l) = a.pids_limit {
                let mut p = LinuxPids::default();
                p.set_limit(l);
                r.set_pids(Some(p));
            }
            if let Some(w) = a.blkio_weight {
                let mut b = LinuxBlockIo::default();
                b.set_weight(Some(w));
                r.set_block_io(Some(b));
            }
            r
        }
    };
    container::update(root, &a.id, &r)?;
    Ok(0)
}

#[derive(Args)]
pub struct EventsArgs {
    /// Print one stats event and exit.
    #[arg(long)]
    stats: bool,
    /// How often to print stats while streaming (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    id: String,
}

/// runc's event JSON: {"type","id","data"}.
fn event(kind: &str, id: &str, data: Option<serde_json::Value>) -> String {
    let mut v = serde_json::json!({"type": kind, "id": id});
    if let Some(d) = data {
        v["data"] = d;
    }
    v.to_string()
}

pub fn events(root: &Path, a: EventsArgs) -> Result<i32> {
    match stream_events(root, &a) {
        // The reader went away (`| head`): the stream ends quietly.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(0)
        }
        r => r,
    }
}

fn stream_events(root: &Path, a: &EventsArgs) -> Result<i32> {
    let (stats, mut ooms) = container::stats(root, &a.id)?;
    if a.stats {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            event("stats", &a.id, Some(serde_json::to_value(&stats)?))
        )?;
        return Ok(0);
    }
    // OOM kills are noticed within this tick; stats go out every --interval.
    let tick = Duration::from_millis(200).min(a.interval);
    let mut since_stats = a.interval;
    loop {
        let Ok((stats, now_ooms)) = container::stats(root, &a.id) else {
            // The container stopped (perhaps killed by the OOM killer: say so), and
            // the stream ends, as runc's does.
            if container::oom_kills(root, &a.id).is_ok_and(|n| n > ooms) {
                writeln!(std::io::stdout().lock(), "{}", event("oom", &a.id, None))?;
            }
            return Ok(0);
        };
        let mut out = std::io::stdout().lock();
        if now_ooms > ooms {
            writeln!(out, "{}", event("oom", &a.id, None))?;
            ooms = now_ooms;
        }
        if since_stats >= a.interval {
            writeln!(
                out,
                "{}",
                event("stats", &a.id, Some(serde_json::to_value(&stats)?))
            )?;
            since_stats = Duration::ZERO;
        }
        out.flush()?;
        drop(out);
        std::thread::sleep(tick);
        since_stats += tick;
    }
}
