//! `berth top`: a running container's processes.

use crate::container::engine;
use crate::image::{print_table, Format};
use crate::Cli;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct TopArgs {
    container: String,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// CPU time as ps prints it: [D-]HH:MM:SS.
fn cpu_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

pub fn top(cli: &Cli, a: &TopArgs) -> Result<i32> {
    let procs = engine(cli)?.top(&a.container)?;
    if let Format::Json = a.format {
        println!("{}", serde_json::to_string_pretty(&procs)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = procs
        .iter()
        .map(|p| {
            vec![
                p.pid.to_string(),
                p.ppid.to_string(),
                p.user.clone(),
                cpu_time(p.cpu_seconds),
                p.command.clone(),
            ]
        })
        .collect();
    print_table(&["PID", "PPID", "USER", "TIME", "COMMAND"], &rows);
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_like_ps() {
        assert_eq!(super::cpu_time(0), "00:00:00");
        assert_eq!(super::cpu_time(3723), "01:02:03");
        assert_eq!(super::cpu_time(90061), "1-01:01:01");
    }
}
