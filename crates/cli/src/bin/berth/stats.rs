//! `berth stats`: running containers' CPU, memory, network, block I/O and pids, a
//! line each, refreshed every second (`--no-stream`: once). CPU is a rate, so even one
//! report takes two samples.

use crate::container::engine;
use crate::image::{print_table, Format};
use crate::progress::human;
use crate::Cli;
use anyhow::Result;
use berth_engine::stats::{Sample, Usage};
use berth_engine::{Container, Engine, Status};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Args)]
pub struct StatsArgs {
    /// Containers (default: every running one).
    containers: Vec<String>,
    /// Print one report and exit.
    #[arg(long = "no-stream")]
    no_stream: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Memory in binary units, as docker shows it.
fn mib(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[u])
    }
}

fn table(rows: &[Usage]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|u| {
            vec![
                u.id[..12].to_string(),
                u.name.clone(),
                format!("{:.2}%", u.cpu_perc),
                format!("{} / {}", mib(u.mem_usage), mib(u.mem_limit)),
                format!("{:.2}%", u.mem_perc),
                format!("{} / {}", human(u.net_input), human(u.net_output)),
                format!("{} / {}", human(u.block_input), human(u.block_output)),
                u.pids.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ],
        &rows,
    );
}

/// A sample of each container still running; the others drop out of the report.
fn sample(engine: &Engine, cs: &[Container]) -> Vec<Option<Sample>> {
    cs.iter().map(|c| engine.stats_sample(c).ok()).collect()
}

pub fn stats(cli: &Cli, a: &StatsArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let mut failed = None;
    let containers: Vec<Container> = if a.containers.is_empty() {
        engine
            .list()?
            .into_iter()
            .filter(|c| c.status == Status::Running)
            .collect()
    } else {
        let mut cs = vec![];
        for n in &a.containers {
            match engine.find(n).and_then(|c| match c.status {
                Status::Running => Ok(c),
                _ => Err(berth_engine::ContainerError::NotRunning(c.name)),
            }) {
                Ok(c) => cs.push(c),
                Err(e) => {
                    eprintln!("berth: {e}");
                    failed = Some(anyhow::Error::from(e));
                }
            }
        }
        cs
    };
    let clear =
        !a.no_stream && matches!(a.format, Format::Table) && std::io::stdout().is_terminal();
    let mut prev = sample(&engine, &containers);
    let mut interval = Duration::from_millis(500);
    loop {
        std::thread::sleep(interval);
        interval = Duration::from_secs(1);
        let now = sample(&engine, &containers);
        let rows: Vec<Usage> = containers
            .iter()
            .zip(prev.iter().zip(&now))
            .filter_map(|(c, (p, n))| Some(n.as_ref()?.usage(p.as_ref()?, c)))
            .collect();
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        match a.format {
            Format::Json if a.no_stream => println!("{}", serde_json::to_string_pretty(&rows)?),
            Format::Json => println!("{}", serde_json::to_string(&rows)?),
            Format::Table => table(&rows),
        }
        std::io::stdout().flush()?;
        if a.no_stream {
            break;
        }
        prev = now;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn binary_units() {
        assert_eq!(super::mib(512), "512B");
        assert_eq!(super::mib(64 << 20), "64.00MiB");
        assert_eq!(super::mib(1536), "1.50KiB");
    }
}
