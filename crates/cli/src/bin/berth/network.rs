//! Network commands: create, ls, inspect, rm, prune, in podman's habits. A network is
//! a CNI conflist (bridge, host-local IPAM, portmap) under the root; see the
//! berth-network crate.

use crate::container::engine;
use crate::exit::Usage;
use crate::image::{print_table, Format};
use crate::Cli;
use anyhow::Result;
use berth_engine::network::NetworkMode;
use berth_engine::Engine;
use berth_network::{CreateOptions, Network, DEFAULT_NETWORK};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network (the first free 10.90.N.0/24 unless --subnet).
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks in detail (JSON).
    Inspect(InspectArgs),
    /// Remove networks; one a container uses (in any state) is refused without -f.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove every network but the default one that no container uses.
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    name: String,
    /// Only `bridge`.
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// The subnet in CIDR notation (IPv4 or IPv6).
    #[arg(long)]
    subnet: Option<String>,
    /// The gateway (default: the subnet's first address).
    #[arg(long)]
    gateway: Option<String>,
    /// No outbound NAT: containers reach each other and the host, not beyond.
    #[arg(long)]
    internal: bool,
    /// The bridge's name (default: the first free berthN).
    #[arg(long = "interface-name")]
    interface_name: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Names only.
    #[arg(short, long)]
    quiet: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    networks: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    networks: Vec<String>,
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

pub fn network(cli: &Cli, c: &NetworkCommand) -> Result<i32> {
    match c {
        NetworkCommand::Create(a) => create(cli, a),
        NetworkCommand::Ls(a) => ls(cli, a),
        NetworkCommand::Inspect(a) => inspect(cli, a),
        NetworkCommand::Rm(a) => rm(cli, a),
        NetworkCommand::Prune(a) => prune(cli, a),
    }
}

fn create(cli: &Cli, a: &CreateArgs) -> Result<i32> {
    if a.driver != "bridge" {
        return Err(Usage(format!("--driver {:?}: only bridge", a.driver)).into());
    }
    let subnet = a
        .subnet
        .as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| Usage(format!("--subnet {s:?}: expected CIDR like 10.91.0.0/24")))
        })
        .transpose()?;
    let gateway = a
        .gateway
        .as_deref()
        .map(|g| {
            g.parse()
                .map_err(|_| Usage(format!("--gateway {g:?}: expected an IP address")))
        })
        .transpose()?;
    if gateway.is_some() && subnet.is_none() {
        return Err(Usage("--gateway needs --subnet".into()).into());
    }
    let engine = engine(cli)?;
    let net = Network::create(
        &engine.network,
        &CreateOptions {
            name: a.name.clone(),
            subnet,
            gateway,
            bridge: a.interface_name.clone(),
            internal: a.internal,
        },
    )?;
    engine.event(
        "network",
        "create",
        &net.name,
        &[("driver", "bridge".into())],
    );
    println!("{}", net.name);
    Ok(0)
}

/// The names of the containers (any state) on `network`.
fn users(engine: &Engine, network: &str) -> Result<Vec<String>> {
    Ok(engine
        .list()?
        .into_iter()
        .filter(|c| c.network == NetworkMode::Network(network.to_string()))
        .map(|c| c.name)
        .collect())
}

/// podman's inspect shape, with the conflist's path.
fn describe(engine: &Engine, n: &Network) -> Result<Value> {
    let bridge = n.config.plugins.iter().find(|p| p["type"] == "bridge");
    let plugin_masq = bridge.is_some_and(|b| b["ipMasq"] == true);
    let subnets: Vec<Value> = n
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"subnet": s.to_string(), "gateway": n.gateways.get(i)}))
        .collect();
    Ok(json!({
        "name": n.name,
        "driver": "bridge",
        "network_interface": n.bridge,
        "subnets": subnets,
        "internal": !plugin_masq && !berth_network::rules::policy(n).masquerade,
        "ipam_options": {"driver": "host-local"},
        "plugins": n.config.plugins.iter().map(|p| p["type"].clone()).collect::<Vec<_>>(),
        "containers": users(engine, &n.name)?,
        "config_path": n.path,
    }))
}

fn ls(cli: &Cli, a: &LsArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let all = Network::list(&engine.network)?;
    if a.quiet {
        for n in &all {
            println!("{}", n.name);
        }
        return Ok(0);
    }
    if let Format::Json = a.format {
        let out = all
            .iter()
            .map(|n| describe(&engine, n))
            .collect::<Result<Vec<_>>>()?;
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|n| {
            let subnets: Vec<String> = n.subnets.iter().map(ToString::to_string).collect();
            vec![
                n.name.clone(),
                "bridge".into(),
                n.bridge.clone().unwrap_or_default(),
                subnets.join(","),
            ]
        })
        .collect();
    print_table(&["NAME", "DRIVER", "BRIDGE", "SUBNETS"], &rows);
    Ok(0)
}

fn inspect(cli: &Cli, a: &InspectArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let mut out = vec![];
    for n in &a.networks {
        out.push(describe(&engine, &Network::inspect(&engine.network, n)?)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

/// Refuses (or with `force`, removes) the network's containers, then removes it.
fn remove(engine: &Engine, name: &str, force: bool) -> Result<()> {
    if name == DEFAULT_NETWORK {
        return Err(berth_network::NetworkError::RemoveDefault.into());
    }
    // Not found before anything else: -f must not remove containers of a typo.
    Network::inspect(&engine.network, name)?;
    let users = users(engine, name)?;
    if !users.is_empty() {
        if !force {
            return Err(berth_network::NetworkError::InUse {
                network: name.to_string(),
                containers: users,
            }
            .into());
        }
        for c in &users {
            engine.remove(c, true)?;
        }
    }
    Network::remove(&engine.network, name)?;
    engine.event("network", "destroy", name, &[("driver", "bridge".into())]);
    Ok(())
}

fn rm(cli: &Cli, a: &RmArgs) -> Result<i32> {
    let engine = engine(cli)?;
    crate::lifecycle::each(&a.networks, |n| {
        remove(&engine, n, a.force)?;
        println!("{n}");
        Ok(())
    })
}

fn prune(cli: &Cli, a: &PruneArgs) -> Result<i32> {
    if !a.force {
        crate::container_cmd::confirm(
            "This will remove all networks not used by at least one container.",
        )?;
    }
    let engine = engine(cli)?;
    for n in Network::list(&engine.network)? {
        if n.name == DEFAULT_NETWORK || !users(&engine, &n.name)?.is_empty() {
            continue;
        }
        remove(&engine, &n.name, false)?;
        println!("{}", n.name);
    }
    Ok(0)
}
