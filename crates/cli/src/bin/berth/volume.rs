//! Volume commands: create, ls, inspect, rm, prune. Output in docker's shapes (inspect's
//! JSON keys are docker's).

use crate::container::engine;
use crate::exit::Usage;
use crate::image::{ago, print_table, Format};
use crate::Cli;
use anyhow::Result;
use berth_engine::volume::{CreateOptions, Volume};
use berth_engine::Engine;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name if none is given).
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show volumes in detail (JSON).
    Inspect(InspectArgs),
    /// Remove volumes; one in use by a container (even a stopped one) is refused.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove every volume no container uses.
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    name: Option<String>,
    /// Only `local`.
    #[arg(short, long, default_value = "local")]
    driver: String,
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Driver options: size=SIZE (e.g. 100m) limits the volume to SIZE (an ext4 filesystem).
    #[arg(short, long = "opt")]
    opt: Vec<String>,
    /// The same as --opt size=SIZE.
    #[arg(long)]
    size: Option<String>,
    /// Succeed if the volume exists already (leaving it as it is).
    #[arg(long)]
    ignore: bool,
}

#[derive(Args)]
pub struct LsArgs {
    /// Names only.
    #[arg(short, long)]
    quiet: bool,
    /// dangling=true|false, name=SUBSTRING, label=KEY[=VALUE], driver=local.
    #[arg(short, long)]
    filter: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    volumes: Vec<String>,
    /// Also remove the containers using them.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
        if k.is_empty() {
            return Err(Usage(format!("{flag} {i:?}: expected KEY=VALUE")).into());
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn size(s: &str) -> Result<u64> {
    berth_engine::mounts::parse_size(s)
        .ok_or_else(|| Usage(format!("size {s:?}: expected a size like 100m or 1g")).into())
}

pub fn volume(cli: &Cli, c: &VolumeCommand) -> Result<i32> {
    match c {
        VolumeCommand::Create(a) => create(cli, a),
        VolumeCommand::Ls(a) => ls(cli, a),
        VolumeCommand::Inspect(a) => inspect(cli, a),
        VolumeCommand::Rm(a) => rm(cli, a),
        VolumeCommand::Prune(a) => prune(cli, a),
    }
}

fn create(cli: &Cli, a: &CreateArgs) -> Result<i32> {
    if a.driver != "local" {
        return Err(Usage(format!("--driver {:?}: only local", a.driver)).into());
    }
    let mut o = CreateOptions {
        name: a.name.clone(),
        labels: key_values("--label", &a.label)?,
        size: a.size.as_deref().map(size).transpose()?,
    };
    for (k, v) in key_values("--opt", &a.opt)? {
        match k.as_str() {
            "size" => o.size = Some(size(&v)?),
            _ => return Err(Usage(format!("--opt {k}: unknown option (size)")).into()),
        }
    }
    let engine = engine(cli)?;
    match engine.volume_create(&o) {
        Ok(v) => println!("{}", v.name),
        Err(berth_engine::volume::VolumeError::Exists(n)) if a.ignore => println!("{n}"),
        Err(e) => return Err(e.into()),
    }
    Ok(0)
}

/// docker's inspect shape.
pub(crate) fn describe(engine: &Engine, v: &Volume) -> Value {
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(v.created);
    let options: BTreeMap<&str, String> = v
        .size
        .map(|s| ("size", s.to_string()))
        .into_iter()
        .collect();
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": engine.volumes.mountpoint(&v.name),
        "CreatedAt": humantime::format_rfc3339_seconds(created).to_string(),
        "Labels": v.labels,
        "Options": options,
        "Scope": "local",
        "Anonymous": v.anonymous,
    })
}

fn matches(v: &Volume, users: &[berth_engine::Container], filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, val)| match k.as_str() {
        "dangling" => {
            let used = users.iter().any(|c| c.volumes.contains(&v.name));
            (val == "true" || val == "1") != used
        }
        "name" => v.name.contains(val.as_str()),
        "driver" => val == "local",
        "label" => match val.split_once('=') {
            Some((lk, lv)) => v.labels.get(lk).is_some_and(|x| x == lv),
            None => v.labels.contains_key(val.as_str()),
        },
        _ => false,
    })
}

fn ls(cli: &Cli, a: &LsArgs) -> Result<i32> {
    let mut filters = vec![];
    for f in &a.filter {
        match f.split_once('=') {
            Some((k, v)) if ["dangling", "name", "label", "driver"].contains(&k) => {
                filters.push((k.to_string(), v.to_string()))
            }
            _ => {
                return Err(Usage(format!(
                    "--filter {f:?}: dangling=, name=, label= or driver="
                ))
                .into())
            }
        }
    }
    let engine = engine(cli)?;
    let users = engine.list()?;
    let all: Vec<Volume> = engine
        .volumes
        .list()?
        .into_iter()
        .filter(|v| matches(v, &users, &filters))
        .collect();
    if a.quiet {
        for v in &all {
            println!("{}", v.name);
        }
        return Ok(0);
    }
    if let Format::Json = a.format {
        let out: Vec<Value> = all.iter().map(|v| describe(&engine, v)).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|v| {
            let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(v.created);
            let size = v
                .size
                .map_or_else(|| "-".to_string(), |s| format!("{}MB", s >> 20));
            vec!["local".into(), v.name.clone(), size, ago(created)]
        })
        .collect();
    print_table(&["DRIVER", "VOLUME NAME", "SIZE LIMIT", "CREATED"], &rows);
    Ok(0)
}

fn inspect(cli: &Cli, a: &InspectArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let mut out = vec![];
    for n in &a.volumes {
        out.push(describe(&engine, &engine.volumes.get(n)?));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn rm(cli: &Cli, a: &RmArgs) -> Result<i32> {
    let engine = engine(cli)?;
    crate::lifecycle::each(&a.volumes, |n| {
        engine.volume_remove(n, a.force)?;
        println!("{n}");
        Ok(())
    })
}

fn prune(cli: &Cli, a: &PruneArgs) -> Result<i32> {
    if !a.force {
        crate::container_cmd::confirm(
            "This will remove all volumes not used by at least one container.",
        )?;
    }
    for n in engine(cli)?.volume_prune()? {
        println!("{n}");
    }
    Ok(0)
}
