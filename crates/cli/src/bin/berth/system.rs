//! `berth system`: disk use (`df`) and reclaiming it (`prune`).

use crate::container::engine;
use crate::container_cmd::confirm;
use crate::image::{print_table, Format};
use crate::progress::human;
use crate::Cli;
use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show the disk space images, containers and volumes use.
    Df(DfArgs),
    /// Remove exited containers, dangling images and unused content (and volumes).
    Prune(PruneArgs),
    /// After a reboot (run it at boot) or a killed monitor: record orphaned containers
    /// as exited and start those whose restart policy says so.
    Recover,
}

#[derive(Args)]
pub struct DfArgs {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
    /// Remove every image no container uses, not only dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Also remove the volumes no container uses.
    #[arg(long)]
    volumes: bool,
}

pub fn system(cli: &Cli, c: &SystemCommand) -> Result<i32> {
    match c {
        SystemCommand::Df(a) => df(cli, a),
        SystemCommand::Prune(a) => prune(cli, a),
        SystemCommand::Recover => {
            for name in engine(cli)?.recover()? {
                println!("{name}");
            }
            Ok(0)
        }
    }
}

fn df(cli: &Cli, a: &DfArgs) -> Result<i32> {
    let rows = engine(cli)?.system_df()?;
    if let Format::Json = a.format {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let pct = match r.size {
                0 => 0,
                s => r.reclaimable * 100 / s,
            };
            vec![
                r.kind.to_string(),
                r.total.to_string(),
                r.active.to_string(),
                human(r.size),
                format!("{} ({pct}%)", human(r.reclaimable)),
            ]
        })
        .collect();
    print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows);
    Ok(0)
}

fn prune(cli: &Cli, a: &PruneArgs) -> Result<i32> {
    if !a.force {
        let mut what = vec!["all stopped containers"];
        what.push(if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        if a.volumes {
            what.push("all volumes not used by at least one container");
        }
        confirm(&format!(
            "This will remove:\n  - {}\n  - unused image content",
            what.join("\n  - ")
        ))?;
    }
    let p = engine(cli)?.system_prune(a.all, a.volumes)?;
    for (title, list) in [
        ("Deleted Containers:", &p.containers),
        ("Deleted Images:", &p.images),
        ("Deleted Volumes:", &p.volumes),
    ] {
        if !list.is_empty() {
            println!("{title}");
            for x in list {
                println!("{x}");
            }
            println!();
        }
    }
    println!("Total reclaimed space: {}", human(p.bytes));
    Ok(0)
}
