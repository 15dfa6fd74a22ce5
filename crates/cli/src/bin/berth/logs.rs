//! `berth logs`: the container's CRI-format log (written by its monitor), back on
//! stdout and stderr as the container wrote them.

use crate::container::engine;
use crate::Cli;
use anyhow::{Context, Result};
use berth_engine::{Engine, Status};
use berth_monitor::crilog::{self, Follower, LogLine, Stream};
use berth_monitor::time;
use clap::Args;
use std::io::Write;

#[derive(Args)]
pub struct LogsArgs {
    container: String,
    /// Keep printing new output until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines ("all" for everything).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Only output since: RFC 3339, a Unix time, or a duration ago (10m, 1h30m).
    #[arg(long)]
    since: Option<String>,
    /// Only output before (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Prefix each line with its time.
    #[arg(short, long)]
    timestamps: bool,
}

struct Printer {
    timestamps: bool,
    /// Per stream: the last record was a piece, so the next continues its line.
    mid_line: [bool; 2],
}

impl Printer {
    fn print(&mut self, l: &LogLine) -> std::io::Result<()> {
        let i = l.stream as usize;
        let mut buf = Vec::with_capacity(l.msg.len() + 40);
        if self.timestamps && !self.mid_line[i] {
            buf.extend_from_slice(time::format_rfc3339_nanos(l.time).as_bytes());
            buf.push(b' ');
        }
        buf.extend_from_slice(&l.msg);
        if !l.partial {
            buf.push(b'\n');
        }
        self.mid_line[i] = l.partial;
        match l.stream {
            Stream::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(&buf)?;
                o.flush()
            }
            Stream::Stderr => std::io::stderr().lock().write_all(&buf),
        }
    }
}

/// The records that make up the last `n` lines.
fn tail(lines: Vec<LogLine>, n: usize) -> Vec<LogLine> {
    let mut ends = 0;
    let mut start = lines.len();
    for (i, l) in lines.iter().enumerate().rev() {
        if !l.partial || i + 1 == lines.len() {
            if ends == n {
                break;
            }
            ends += 1;
        }
        start = i;
    }
    lines.into_iter().skip(start).collect()
}

/// A `--since`/`--until` value (RFC 3339, a Unix time, or a duration before `now`) in
/// nanoseconds since the epoch.
pub fn time_flag(v: &Option<String>, flag: &str, now: i128) -> Result<Option<i128>> {
    v.as_deref()
        .map(|v| {
            time::parse_point(v, now).ok_or_else(|| {
                crate::exit::Usage(format!(
                    "--{flag} {v:?}: expected RFC 3339, a Unix time or a duration like 10m"
                ))
                .into()
            })
        })
        .transpose()
}

pub fn logs(cli: &Cli, a: &LogsArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let c = engine.find(&a.container)?;
    let now = time::now_nanos();
    let since = time_flag(&a.since, "since", now)?;
    let until = time_flag(&a.until, "until", now)?;
    let n = match a.tail.as_str() {
        "all" | "-1" => None,
        t => Some(
            t.parse::<usize>()
                .with_context(|| format!("--tail {t:?}: a number or \"all\""))?,
        ),
    };
    let path = engine.log_path(&c.id);
    let mut follower = Follower::from_start(&path);
    let mut lines =
        crilog::read_rotated(&path).with_context(|| format!("reading {}", path.display()))?;
    lines.extend(follower.poll()?);
    let mut lines: Vec<LogLine> = lines
        .into_iter()
        .filter(|l| since.is_none_or(|s| l.time >= s) && until.is_none_or(|u| l.time <= u))
        .collect();
    if let Some(n) = n {
        lines = tail(lines, n);
    }
    let mut p = Printer {
        timestamps: a.timestamps,
        mid_line: [false; 2],
    };
    for l in &lines {
        p.print(l)?;
    }
    if a.follow && until.is_none() {
        follow(&engine, &c.id, follower, &mut p)?;
    }
    Ok(0)
}

fn follow(engine: &Engine, id: &str, mut f: Follower, p: &mut Printer) -> Result<()> {
    loop {
        // Read the status first: once it says exited, the monitor has written everything.
        let done = engine
            .find(id)
            .map(|c| c.status == Status::Exited)
            .unwrap_or(true);
        for l in f.poll()? {
            p.print(&l)?;
        }
        if done {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `start -a` of a created container: its output from the start, then its exit code.
pub fn follow_until_exit(engine: &Engine, id: &str) -> Result<i32> {
    let path = engine.log_path(id);
    let mut p = Printer {
        timestamps: false,
        mid_line: [false; 2],
    };
    follow(engine, id, Follower::from_start(&path), &mut p)?;
    Ok(engine.wait(id)?)
}
