//! `attach`: give a container its network namespace and one interface on a network.
//! The steps are listed in order in [`attach`]; the module doc of the crate shows
//! the whole lifecycle.

use crate::cache::{self, CachedAttachment};
use crate::cni::result::{CniResult, Dns};
use crate::cni::{plugin::Invocation, RuntimeConfig};
use crate::detach::{teardown, Teardown};
use crate::port::{self, PortMapping};
use crate::{netns, Network, NetworkConfig, NetworkError};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;

/// A container's place on a network, as the engine needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Attachment {
    pub network: String,
    pub container_id: String,
    /// Goes into the OCI spec: `linux.namespaces: [{type: network, path: netns}]`.
    pub netns: PathBuf,
    /// The interface inside the container (`eth0`).
    pub interface: String,
    pub ips: Vec<IpNet>,
    pub gateway: Option<IpAddr>,
    pub mac: Option<String>,
    pub ports: Vec<PortMapping>,
    /// DNS the plugins suggest (a fallback for [`crate::resolv_conf`]).
    pub dns: Dns,
}

/// Creates the container's netns and attaches it to `network`, publishing `ports`.
/// On failure nothing is left behind (or the error says what could not be undone).
/// `hostname` is recorded with the attachment for name resolution.
pub fn attach(
    cfg: &NetworkConfig,
    network: &str,
    container_id: &str,
    ports: &[PortMapping],
    hostname: &str,
) -> Result<Attachment, NetworkError> {
    // Validate everything first: nothing is created until these pass.
    if !crate::valid_id(container_id) {
        return Err(NetworkError::InvalidContainerId {
            id: container_id.to_string(),
        });
    }
    let net = Network::inspect(cfg, network)?;
    crate::rules::ensure(cfg, &net)?;
    if cache::read(&cfg.cache_dir(), network, container_id, &cfg.ifname)?.is_some() {
        return Err(NetworkError::AlreadyAttached {
            network: network.to_string(),
            container_id: container_id.to_string(),
        });
    }
    // Held until the cache entry publishing our ports is written, so two attaches
    // cannot both find a port free.
    let ports_lock = lock_ports(cfg)?;
    check_ports(cfg, ports)?;

    let netns = netns::create_with_loopback(&cfg.netns_dir, container_id)?;
    let runtime_config = runtime_config(ports);
    let mut entry = CachedAttachment {
        kind: cache::KIND.to_string(),
        network: network.to_string(),
        container_id: container_id.to_string(),
        ifname: cfg.ifname.clone(),
        netns: netns.clone(),
        hostname: hostname.to_string(),
        config: net.config.for_attachment(&runtime_config),
        runtime_config,
        result: None,
    };
    match add(cfg, &mut entry, ports_lock) {
        Ok(result) => Ok(attachment(&entry, &result, ports)),
        Err((error, chain_undone)) => {
            let undo = teardown(
                cfg,
                &Teardown {
                    network,
                    container_id,
                    config: Some(&entry.config),
                    runtime_config: &entry.runtime_config,
                    result: entry.result.as_ref(),
                    run_chain: !chain_undone,
                },
            );
            if undo.is_empty() {
                Err(error)
            } else {
                Err(NetworkError::Teardown {
                    network: network.to_string(),
                    container_id: container_id.to_string(),
                    errors: std::iter::once(error).chain(undo).collect(),
                })
            }
        }
    }
}

/// Steps 4–6: cache first (so a crash leaves what DEL needs), the network's chain,
/// cache again with the result. The bool says whether the
/// chain already undid itself.
fn add(
    cfg: &NetworkConfig,
    entry: &mut CachedAttachment,
    ports_lock: std::fs::File,
) -> Result<CniResult, (NetworkError, bool)> {
    let cache_dir = cfg.cache_dir();
    cache::write(&cache_dir, entry).map_err(|e| (e.into(), false))?;
    drop(ports_lock);

    let inv = Invocation {
        container_id: &entry.container_id,
        netns: &entry.netns,
        ifname: &entry.ifname,
        args: "",
        plugin_dirs: &cfg.plugin_dirs,
    };
    let value = entry
        .config
        .add(&inv, &entry.runtime_config)
        .map_err(|source| (add_error(entry, source), true))?;
    entry.result = Some(value.clone());
    cache::write(&cache_dir, entry).map_err(|e| (e.into(), false))?;

    let result = CniResult::parse(&value).map_err(|source| {
        let plugin = entry
            .config
            .plugins
            .last()
            .map(crate::cni::conflist::plugin_type)
            .unwrap_or("");
        let error = crate::cni::CniError::BadResult {
            plugin: plugin.to_string(),
            command: crate::cni::Command::Add,
            source,
        };
        (error.into(), false)
    })?;
    if result.container_interfaces().next().is_none() {
        return Err((
            NetworkError::NoInterface {
                network: entry.network.clone(),
                container_id: entry.container_id.clone(),
            },
            false,
        ));
    }
    Ok(result)
}

fn add_error(entry: &CachedAttachment, source: crate::cni::AddError) -> NetworkError {
    NetworkError::Add {
        network: entry.network.clone(),
        container_id: entry.container_id.clone(),
        source: Box::new(source),
    }
}

/// Refuses ports bound on the host or published by another attached container (or
/// named twice). `attach` checks again under its lock; this is for callers that want
/// to refuse a run before making anything.
pub fn check_ports(cfg: &NetworkConfig, ports: &[PortMapping]) -> Result<(), NetworkError> {
    for (i, p) in ports.iter().enumerate() {
        if ports[..i].iter().any(|q| {
            q.host_port == p.host_port && q.protocol == p.protocol && q.host_ip == p.host_ip
        }) {
            return Err(port::PortError::InUse {
                host_ip: p.host_ip,
                port: p.host_port,
                protocol: p.protocol,
            }
            .into());
        }
    }
    let others = cache::list(&cfg.cache_dir())?;
    let published: Vec<(&str, PortMapping)> = others
        .iter()
        .flat_map(|c| {
            published_ports(&c.runtime_config)
                .into_iter()
                .map(move |p| (c.container_id.as_str(), p))
        })
        .collect();
    port::check_not_published(ports, published.iter().map(|(c, p)| (*c, p)))?;
    for p in ports {
        p.check_host_port_free()?;
    }
    Ok(())
}

fn lock_ports(cfg: &NetworkConfig) -> Result<std::fs::File, NetworkError> {
    let path = cfg.data_dir.join("ports.lock");
    crate::lock_file(&path).map_err(|source| NetworkError::Config { path, source })
}

fn runtime_config(ports: &[PortMapping]) -> RuntimeConfig {
    let mut rt = RuntimeConfig::default();
    if !ports.is_empty() {
        rt.0.insert(
            "portMappings".into(),
            serde_json::to_value(ports).expect("port mappings always serialise"),
        );
    }
    rt
}

fn published_ports(rt: &RuntimeConfig) -> Vec<PortMapping> {
    rt.0.get("portMappings")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn attachment(entry: &CachedAttachment, result: &CniResult, ports: &[PortMapping]) -> Attachment {
    let (index, iface) = result
        .container_interfaces()
        .find(|(_, i)| i.name == entry.ifname)
        .or_else(|| result.container_interfaces().next())
        .map(|(i, f)| (Some(i), Some(f)))
        .unwrap_or((None, None));
    let ips: Vec<_> = result
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none() || ip.interface == index)
        .collect();
    Attachment {
        network: entry.network.clone(),
        container_id: entry.container_id.clone(),
        netns: entry.netns.clone(),
        interface: iface
            .map(|i| i.name.clone())
            .unwrap_or_else(|| entry.ifname.clone()),
        ips: ips.iter().map(|ip| ip.address).collect(),
        gateway: ips.iter().find_map(|ip| ip.gateway),
        mac: iface.and_then(|i| i.mac.clone()),
        ports: ports.to_vec(),
        dns: result.dns.clone(),
    }
}
