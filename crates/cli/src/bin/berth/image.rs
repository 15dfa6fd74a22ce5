//! Image commands: pull, push, images, image inspect/prune, rmi, tag, login, logout.

use crate::progress;
use crate::Cli;
use anyhow::{Context, Result};
use berth_distribution::{Client, ClientConfig, Credentials, Platform, Reference};
use berth_image::images::{ImageRecord, Images};
use berth_image::pull::{self, PullOptions};
use clap::{Args, Subcommand, ValueEnum};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args)]
pub struct PullArgs {
    /// Image reference, e.g. 127.0.0.1:5000/busybox:latest.
    image: String,
    /// Platform to choose from a multi-platform image: os/arch[/variant].
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct PushArgs {
    /// Local image to push.
    image: String,
    /// Destination reference (default: the image's name).
    destination: Option<String>,
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show manifest digests.
    #[arg(long)]
    digests: bool,
    /// Show full ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Show images' records and configs as JSON.
    Inspect(InspectArgs),
    /// Remove dangling images (with --all, every image no container uses) and unused content.
    Prune(PruneArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Pull an image.
    Pull(PullArgs),
    /// Push an image.
    Push(PushArgs),
    /// Add a name to an image.
    Tag(TagArgs),
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    #[arg(short, long)]
    all: bool,
    /// Do not ask (accepted for docker compatibility; berth never asks).
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove even when the image has several names or containers use it.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from this file instead of stdin.
    #[arg(short, long)]
    input: Option<std::path::PathBuf>,
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct LoginArgs {
    registry: String,
    #[arg(short, long)]
    username: Option<String>,
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    password_stdin: bool,
}

#[derive(Args)]
pub struct LogoutArgs {
    registry: String,
}

pub fn driver(cli: &Cli) -> Option<berth_image::snapshot::Driver> {
    cli.storage_driver.map(|d| match d {
        crate::StorageDriver::Overlay => berth_image::snapshot::Driver::Overlay,
        crate::StorageDriver::Copy => berth_image::snapshot::Driver::Copy,
    })
}

pub fn open(cli: &Cli) -> Result<Images> {
    Images::open(&cli.root, driver(cli))
        .with_context(|| format!("opening the image store in {}", cli.root.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Two workers: the network side is light; unpacking runs on blocking threads.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn client() -> Result<Client> {
    let config = ClientConfig::load().context("reading registry configuration")?;
    let creds = Credentials::from_env();
    Ok(Client::new(config, creds)?)
}

pub fn image(cli: &Cli, c: &ImageCommand) -> Result<()> {
    match c {
        ImageCommand::Ls(a) => list(cli, a),
        ImageCommand::Inspect(a) => inspect(cli, a),
        ImageCommand::Prune(a) => prune(cli, a),
        ImageCommand::Rm(a) => rmi(cli, a),
        ImageCommand::Pull(a) => pull(cli, a),
        ImageCommand::Push(a) => push(cli, a),
        ImageCommand::Tag(a) => tag(cli, a),
    }
}

pub fn pull(cli: &Cli, a: &PullArgs) -> Result<()> {
    let r: Reference = a.image.parse()?;
    let mut opts = PullOptions::default();
    if let Some(p) = &a.platform {
        opts.platform = p.parse::<Platform>()?;
    }
    let images = Arc::new(open(cli)?);
    let client = client()?;
    let progress = progress::for_stderr(a.quiet);
    let rec = runtime()?.block_on(pull::pull(images, &client, &r, &opts, progress))?;
    image_event(cli, "pull", &rec.id.to_string(), &r.to_string());
    println!("{}", rec.id);
    Ok(())
}

pub fn push(cli: &Cli, a: &PushArgs) -> Result<()> {
    let images = Arc::new(open(cli)?);
    let rec = images.find(&a.image)?;
    let dest: Reference = match &a.destination {
        Some(d) => d.parse()?,
        None => a.image.parse()?,
    };
    let client = client()?;
    let digest = runtime()?.block_on(berth_image::push::push(
        &images, &client, &rec, &dest, !a.quiet,
    ))?;
    image_event(cli, "push", &rec.id.to_string(), &dest.to_string());
    if a.quiet {
        println!("{digest}");
    } else {
        eprintln!("Pushed {dest} ({digest})");
    }
    Ok(())
}

fn split_name(name: &str) -> (String, String) {
    match name.parse::<Reference>() {
        Ok(r) => (r.name(), r.tag().unwrap_or("<none>").to_string()),
        Err(_) => (name.to_string(), "<none>".into()),
    }
}

fn created_ago(created: Option<&str>) -> String {
    match created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) {
        Some(t) => ago(t),
        None => "N/A".into(),
    }
}

/// "3 hours ago", as docker and podman list ages.
pub fn ago(t: std::time::SystemTime) -> String {
    let Ok(age) = std::time::SystemTime::now().duration_since(t) else {
        return "now".into();
    };
    let s = age.as_secs();
    let (n, unit) = match s {
        0..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86399 => (s / 3600, "hour"),
        86400..=2_591_999 => (s / 86400, "day"),
        2_592_000..=31_535_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

pub fn list(cli: &Cli, a: &ListArgs) -> Result<()> {
    let all = open(cli)?.list()?;
    if a.quiet {
        let mut seen = HashSet::new();
        for r in &all {
            if seen.insert(&r.id) {
                println!(
                    "{}",
                    if a.no_trunc {
                        r.id.to_string()
                    } else {
                        r.id.short().to_string()
                    }
                );
            }
        }
        return Ok(());
    }
    if let Format::Json = a.format {
        let v: Vec<_> = all
            .iter()
            .map(|r| {
                serde_json::json!({
                    "Id": r.id.hex(),
                    "Names": r.names,
                    "RepoDigests": r.repo_digests,
                    "Digest": r.manifest,
                    "Created": r.created,
                    "Size": r.size,
                    "Platform": r.platform,
                    "Dangling": r.names.is_empty(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut rows = vec![];
    for r in &all {
        let id = if a.no_trunc {
            r.id.to_string()
        } else {
            r.id.short().to_string()
        };
        let names: Vec<String> = if r.names.is_empty() {
            vec!["<none>:<none>".into()]
        } else {
            r.names.clone()
        };
        for n in names {
            let (repo, tag) = if n == "<none>:<none>" {
                ("<none>".into(), "<none>".into())
            } else {
                split_name(&n)
            };
            let mut row = vec![repo, tag];
            if a.digests {
                row.push(r.manifest.to_string());
            }
            row.extend([
                id.clone(),
                created_ago(r.created.as_deref()),
                progress::human(r.size),
            ]);
            rows.push(row);
        }
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if a.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    print_table(&header, &rows);
    Ok(())
}

pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub(crate) fn inspect_json(images: &Images, r: &ImageRecord) -> Result<serde_json::Value> {
    let config: serde_json::Value = serde_json::from_slice(&images.content.read(&r.id)?)?;
    Ok(serde_json::json!({
        "Id": r.id,
        "RepoTags": r.names,
        "RepoDigests": r.repo_digests,
        "Digest": r.manifest,
        "ManifestMediaType": r.manifest_media_type,
        "Index": r.index,
        "Created": r.created,
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Variant": config.get("variant"),
        "Author": config.get("author"),
        "Config": config.get("config"),
        "History": config.get("history"),
        "RootFS": {"Type": "layers", "Layers": r.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
        "Layers": r.layers,
        "Size": r.size,
    }))
}

pub fn inspect(cli: &Cli, a: &InspectArgs) -> Result<()> {
    let images = open(cli)?;
    let mut out = vec![];
    let mut missing = None;
    for name in &a.images {
        match images.find(name) {
            Ok(r) => out.push(inspect_json(&images, &r)?),
            Err(e) => {
                eprintln!("berth: {e}");
                missing = Some(e);
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    match missing {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

pub fn rmi(cli: &Cli, a: &RmiArgs) -> Result<()> {
    let images = open(cli)?;
    let mut failed = None;
    let mut removed_any = false;
    for name in &a.images {
        // The id before the record goes (an untag leaves it findable, a delete not).
        let id = images.find(name).map(|r| r.id.to_string());
        match images.remove(name, a.force, &|_| None) {
            Ok((names, deleted)) => {
                let id = id.unwrap_or_else(|_| name.clone());
                for n in names {
                    image_event(cli, "untag", &id, &n);
                    println!("Untagged: {n}");
                }
                if deleted {
                    removed_any = true;
                    image_event(cli, "remove", &id, name);
                    println!("Deleted: {id}");
                }
            }
            Err(e) => {
                eprintln!("berth: {e}");
                failed = Some(e);
            }
        }
    }
    if removed_any {
        images.gc(&HashSet::new())?;
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

pub fn tag(cli: &Cli, a: &TagArgs) -> Result<()> {
    let images = open(cli)?;
    images.tag(&a.source, &a.target)?;
    let id = images.find(&a.target)?.id.to_string();
    let name = a
        .target
        .parse::<Reference>()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| a.target.clone());
    image_event(cli, "tag", &id, &name);
    Ok(())
}

/// An image event in the log `berth events` reads; best-effort, as for containers.
fn image_event(cli: &Cli, action: &str, id: &str, name: &str) {
    berth_engine::events::record(
        &cli.root,
        "image",
        action,
        id,
        &[("name", name.to_string())],
    );
}

pub fn prune(cli: &Cli, a: &PruneArgs) -> Result<()> {
    let images = open(cli)?;
    for r in images.list()? {
        if a.all || r.names.is_empty() {
            let (_, deleted) = images.remove(&r.id.to_string(), true, &|_| None)?;
            if deleted {
                let name = r.names.first().cloned().unwrap_or_default();
                image_event(cli, "remove", &r.id.to_string(), &name);
                println!("Deleted: {}", r.id);
            }
        }
    }
    let freed = images.gc(&HashSet::new())?;
    println!("Total reclaimed space: {}", progress::human(freed.bytes));
    Ok(())
}

pub fn login(_cli: &Cli, a: &LoginArgs) -> Result<()> {
    let user = a.username.clone().context("--username is required")?;
    let pass = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        a.password
            .clone()
            .context("--password or --password-stdin is required")?
    };
    let creds = Credentials::from_env();
    let client = Client::new(
        ClientConfig::load()?,
        Credentials::from_env().with_login(&a.registry, &user, &pass),
    )?;
    runtime()?
        .block_on(client.check_login(&a.registry))
        .with_context(|| format!("logging in to {}", a.registry))?;
    creds.store(&a.registry, &user, &pass)?;
    eprintln!("Login Succeeded!");
    Ok(())
}

pub fn logout(_cli: &Cli, a: &LogoutArgs) -> Result<()> {
    if !Credentials::from_env().erase(&a.registry)? {
        anyhow::bail!("not logged in to {}", a.registry);
    }
    eprintln!("Removed login credentials for {}", a.registry);
    Ok(())
}

pub fn save(cli: &Cli, a: &SaveArgs) -> Result<()> {
    let images = open(cli)?;
    let mut chosen = vec![];
    for name in &a.images {
        let rec = images.find(name)?;
        let full = name
            .parse::<Reference>()
            .ok()
            .map(|r| r.to_string())
            .filter(|n| rec.names.contains(n))
            .or_else(|| rec.names.first().cloned());
        chosen.push((rec, full));
    }
    match &a.output {
        Some(p) => {
            let tmp = p.with_extension("partial");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            berth_image::archive::save(&images, &chosen, std::io::BufWriter::new(f))?;
            std::fs::rename(&tmp, p)?;
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                anyhow::bail!("refusing to write a tar to a terminal: use -o FILE or a pipe");
            }
            berth_image::archive::save(
                &images,
                &chosen,
                std::io::BufWriter::new(std::io::stdout().lock()),
            )?;
        }
    }
    for (rec, name) in &chosen {
        image_event(
            cli,
            "save",
            &rec.id.to_string(),
            name.as_deref().unwrap_or(""),
        );
    }
    Ok(())
}

pub fn load(cli: &Cli, a: &LoadArgs) -> Result<()> {
    let images = open(cli)?;
    let opts = PullOptions::default();
    let recs = match &a.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            berth_image::archive::load(&images, std::io::BufReader::new(f), &opts)?
        }
        None => berth_image::archive::load(&images, std::io::stdin().lock(), &opts)?,
    };
    for r in recs {
        let name = r.names.first().cloned().unwrap_or_default();
        image_event(cli, "load", &r.id.to_string(), &name);
        if a.quiet {
            println!("{}", r.id);
        } else if r.names.is_empty() {
            println!("Loaded image ID: {}", r.id);
        } else {
            for n in &r.names {
                println!("Loaded image: {n}");
            }
        }
    }
    Ok(())
}
