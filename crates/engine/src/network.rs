//! A container's networking: the `--network` mode and published ports in its record,
//! and the calls into `berth-network` around the runtime.
//!
//! # Lifecycle
//!
//! ```text
//! create   prepare(cfg, id, dir, image, &mut spec_options)
//!            checks the mode (a named network must exist; the default `berth` is
//!            written on first use), turns -p/-P into concrete host ports and refuses
//!            ports in use, and points the spec at the container's FIXED netns path
//!            (RUNROOT/netns/<id>) and at DIR/{hosts,resolv.conf,hostname}
//!            → the record keeps `network`, `ports` and `hostname`
//! start    attach(cfg, &container, dir)      before the runtime creates the init
//!            detaches a stale attachment (a crash, or a reboot that emptied the run
//!            root but not the CNI cache), then netns (lo up) + CNI ADD (bridge,
//!            portmap when ports are published), then writes DIR/{hosts,resolv.conf,hostname}
//! exit/rm  detach(cfg, &container)            after the init is gone, and on rm
//!            CNI DEL, netns removed; idempotent, best-effort, every error gathered
//! ```
//!
//! `none` gives the container a network namespace of its own with only loopback (made
//! by the runtime); `host` shares the host's. Both still get the three /etc files.
//! Nothing here starts or watches processes: the caller guarantees the container's
//! init is not running when it calls `attach`.

use crate::container::Container;
use crate::spec::SpecOptions;
use berth_image::config::ImageConfig;
use berth_network::port::PortError;
use berth_network::{Attachment, NetworkConfig, PortMapping, Protocol, DEFAULT_NETWORK};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// How a container is networked (`--network`). Stored in the record as a string:
/// `none`, `host`, or the network's name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NetworkMode {
    /// A network namespace of its own with only loopback. Also what records written
    /// before networking existed read as.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A namespace of its own attached to this CNI network (`berth` is the default).
    Network(String),
}

impl NetworkMode {
    /// What `berth run` does without `--network`.
    pub fn default_network() -> NetworkMode {
        NetworkMode::Network(DEFAULT_NETWORK.to_string())
    }
}

impl FromStr for NetworkMode {
    type Err = ContainerNetworkError;

    /// `none`, `host`, `bridge` (docker's and podman's word for the default network),
    /// or a network's name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            "bridge" => Ok(NetworkMode::default_network()),
            name if berth_network::cni::conflist::valid_name(name) => {
                Ok(NetworkMode::Network(name.to_string()))
            }
            _ => Err(ContainerNetworkError::BadMode {
                value: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Network(name) => name,
        })
    }
}

impl From<NetworkMode> for String {
    fn from(m: NetworkMode) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for NetworkMode {
    type Error = ContainerNetworkError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// One `-p` value: `[ip:][hostPort:]containerPort[/tcp|udp]`, ranges allowed; a
/// missing host port is 0 until `prepare` picks a free one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish(pub Vec<PortMapping>);

impl FromStr for Publish {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, PortError> {
        PortMapping::parse_publish_any(s).map(Publish)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerNetworkError {
    #[error("invalid network {value:?}: none, host, bridge, or a network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")]
    BadMode { value: String },
    #[error("-p/--publish needs a network namespace with an interface to publish to; --network {mode} has none{}",
        if *mode == NetworkMode::Host { " (with host networking the container's ports already are the host's)" } else { "" })]
    PublishWithoutNetwork { mode: NetworkMode },
    #[error(transparent)]
    Network(#[from] berth_network::NetworkError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("cannot write {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ContainerNetworkError {
    /// A host port someone else has (a listener or another container's mapping).
    pub fn is_port_conflict(&self) -> bool {
        let port = match self {
            ContainerNetworkError::Port(p) => p,
            ContainerNetworkError::Network(berth_network::NetworkError::Port(p)) => p,
            _ => return false,
        };
        matches!(port, PortError::InUse { .. } | PortError::Published { .. })
    }

    /// The network named by `--network` does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ContainerNetworkError::Network(berth_network::NetworkError::NotFound { .. })
        )
    }

    /// The flags contradict each other or name no valid value.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ContainerNetworkError::BadMode { .. }
                | ContainerNetworkError::PublishWithoutNetwork { .. }
        )
    }
}

/// The files every container gets, generated into its directory: (file, destination).
const ETC_FILES: [(&str, &str); 3] = [
    ("hosts", "/etc/hosts"),
    ("resolv.conf", "/etc/resolv.conf"),
    ("hostname", "/etc/hostname"),
];

/// At create, before the spec is built: validates the mode, resolves the published
/// ports (free host ports picked for `-P` and for `-p` without one) and refuses any
/// in use, and adds to `so` the netns path and the /etc file mounts. Returns the
/// ports for the record. Makes nothing but the default network's conflist.
pub fn prepare(
    cfg: &NetworkConfig,
    container_id: &str,
    dir: &Path,
    image: &ImageConfig,
    so: &mut SpecOptions,
) -> Result<Vec<PortMapping>, ContainerNetworkError> {
    let ports = match &so.network {
        NetworkMode::None | NetworkMode::Host => {
            if !so.publish.is_empty() {
                return Err(ContainerNetworkError::PublishWithoutNetwork {
                    mode: so.network.clone(),
                });
            }
            if so.network == NetworkMode::None {
                // A namespace berth makes (with lo up), joined like a network's.
                so.netns = Some(cfg.netns_path(container_id));
            }
            // -P without a network publishes nothing, as with docker.
            Vec::new()
        }
        NetworkMode::Network(name) => {
            berth_network::Network::inspect(cfg, name)?;
            let mut ports = so.publish.clone();
            if so.publish_all {
                for (port, protocol) in exposed_ports(image) {
                    if !ports
                        .iter()
                        .any(|p| p.container_port == port && p.protocol == protocol)
                    {
                        ports.push(PortMapping {
                            host_ip: None,
                            host_port: 0,
                            container_port: port,
                            protocol,
                        });
                    }
                }
            }
            berth_network::assign_free_host_ports(&mut ports)?;
            berth_network::check_ports(cfg, &ports)?;
            so.netns = Some(cfg.netns_path(container_id));
            ports
        }
    };
    // The user's own mount of one of these files wins.
    let user_has = |dest: &str| so.mounts.iter().any(|m| m["destination"] == dest);
    let ours: Vec<_> = ETC_FILES
        .iter()
        .filter(|(_, dest)| !user_has(dest))
        .map(|(file, dest)| {
            json!({
                "destination": dest,
                "type": "bind",
                "source": dir.join(file),
                "options": ["rbind", "rprivate"],
            })
        })
        .collect();
    so.mounts.splice(0..0, ours);
    Ok(ports)
}

/// The image's ExposedPorts (`80/tcp`, `53/udp`, `8080`, `8000-8001/tcp`). Keys that
/// are not tcp or udp ports (sctp) are skipped with a warning: they cannot be
/// published, and the image should still run.
fn exposed_ports(image: &ImageConfig) -> Vec<(u16, Protocol)> {
    let mut out = Vec::new();
    for key in image.config.exposed_ports.iter().flat_map(|m| m.keys()) {
        match PortMapping::parse_publish_any(key) {
            Ok(ports) => out.extend(ports.iter().map(|p| (p.container_port, p.protocol))),
            Err(e) => tracing::warn!("-P: skipping the image's exposed port {key:?}: {e}"),
        }
    }
    out
}

/// Before the runtime creates the container's init (and again after a reboot, or a
/// crash that left an attachment): a stale attachment is detached first, then the
/// netns is made and attached, then DIR/{hosts,resolv.conf,hostname} are written.
/// The netns path is `cfg.netns_path(id)`, the one `prepare` put in the spec. Returns
/// the attachment (None for `none` and `host`). On failure nothing is left attached.
pub fn attach(
    cfg: &NetworkConfig,
    c: &Container,
    dir: &Path,
) -> Result<Option<Attachment>, ContainerNetworkError> {
    let _lock = match &c.network {
        NetworkMode::Network(_) => Some(lock(cfg)?),
        NetworkMode::None | NetworkMode::Host => None,
    };
    let att = match &c.network {
        NetworkMode::Network(name) => {
            berth_network::detach(cfg, name, &c.id)?;
            Some(berth_network::attach(
                cfg,
                name,
                &c.id,
                &c.ports,
                &hostname(c),
            )?)
        }
        NetworkMode::None => {
            let path = cfg.netns_path(&c.id);
            berth_network::netns::remove(&path).map_err(berth_network::NetworkError::from)?;
            berth_network::netns::create_with_loopback(&cfg.netns_dir, &c.id)
                .map_err(berth_network::NetworkError::from)?;
            None
        }
        NetworkMode::Host => None,
    };
    if let Err(e) = write_files(c, att.as_ref(), dir) {
        if let Some(a) = &att {
            if let Err(undo) = berth_network::detach(cfg, &a.network, &c.id) {
                tracing::warn!("container {}: {undo}", c.id);
            }
        }
        return Err(e);
    }
    Ok(att)
}

/// After the container's init has exited, and on rm: CNI DEL, netns removed.
/// Idempotent and best-effort (every failure gathered in one error); a no-op for
/// `none` and `host`. The /etc files go with the container's directory.
pub fn detach(cfg: &NetworkConfig, c: &Container) -> Result<(), ContainerNetworkError> {
    match &c.network {
        NetworkMode::Network(name) => {
            let _lock = lock(cfg)?;
            Ok(berth_network::detach(cfg, name, &c.id)?)
        }
        NetworkMode::None => {
            berth_network::netns::remove(&cfg.netns_path(&c.id))
                .map_err(berth_network::NetworkError::from)?;
            berth_network::netns::release_dir(&cfg.netns_dir)
                .map_err(berth_network::NetworkError::from)?;
            Ok(())
        }
        NetworkMode::Host => Ok(()),
    }
}

/// One attach or detach at a time on this host, as podman does around its network
/// backend: `rm -f` and the exiting `run` both detach the same container, and a
/// stale-attachment cleanup must not meet another process's attach half-way.
fn lock(cfg: &NetworkConfig) -> Result<std::fs::File, ContainerNetworkError> {
    let path = cfg.data_dir.join("attach.lock");
    berth_network::lock_file(&path).map_err(|source| ContainerNetworkError::File { path, source })
}

/// The hostname the container got (create defaults it to the id's first 12 digits).
fn hostname(c: &Container) -> String {
    if c.hostname.is_empty() {
        c.id.chars().take(12).collect()
    } else {
        c.hostname.clone()
    }
}

fn write_files(
    c: &Container,
    att: Option<&Attachment>,
    dir: &Path,
) -> Result<(), ContainerNetworkError> {
    let file = |name: &str| dir.join(name);
    let write = |name: &str, text: &str| {
        let path = file(name);
        std::fs::write(&path, text).map_err(|source| ContainerNetworkError::File { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| ContainerNetworkError::File {
        path: dir.to_path_buf(),
        source,
    })?;
    let host = hostname(c);
    // podman's order: the hostname, then the container's name.
    let names = if c.name.is_empty() || c.name == host {
        host.clone()
    } else {
        format!("{host} {}", c.name)
    };
    let (hosts, resolv) = match (&c.network, att) {
        (NetworkMode::Host, _) => {
            // The host's own files: its loopback resolvers are reachable from here.
            let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            if !hosts.is_empty() && !hosts.ends_with('\n') {
                hosts.push('\n');
            }
            hosts.push_str(&format!("127.0.1.1\t{names}\n"));
            let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            (hosts, resolv)
        }
        (_, att) => {
            let ips: Vec<IpAddr> = att
                .map(|a| a.ips.iter().map(|n| n.addr()).collect())
                .unwrap_or_default();
            let mut hosts = berth_network::hosts(&names, &ips);
            if let Some(gw) = att.and_then(|a| a.gateway) {
                // podman's name for the host, reachable at the bridge's address.
                hosts.push_str(&format!("{gw}\thost.containers.internal\n"));
            }
            let host_resolv = berth_network::resolv::host_resolv_path();
            let text = std::fs::read_to_string(&host_resolv).unwrap_or_default();
            let r = berth_network::resolv_conf(&text, att.map(|a| &a.dns));
            if att.is_some() && !r.has_nameserver {
                tracing::warn!(
                    "container {}: no usable nameserver in {} (loopback ones dropped: {:?}); DNS will not work inside",
                    c.id,
                    host_resolv.display(),
                    r.dropped
                );
            }
            (hosts, r.contents)
        }
    };
    write("hosts", &hosts)?;
    write("resolv.conf", &resolv)?;
    write("hostname", &format!("{host}\n"))
}

/// `ps`'s PORTS column, as podman shows it: `0.0.0.0:8080->80/tcp`, consecutive
/// ports folded into ranges (`0.0.0.0:8000-8001->80-81/tcp`), comma-separated.
pub fn format_ports(ports: &[PortMapping]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let first = &ports[i];
        let mut n = 1;
        while let Some(next) = ports.get(i + n) {
            let step = u16::try_from(n).unwrap_or(u16::MAX);
            let follows = next.host_ip == first.host_ip
                && next.protocol == first.protocol
                && first.host_port.checked_add(step) == Some(next.host_port)
                && first.container_port.checked_add(step) == Some(next.container_port);
            if !follows {
                break;
            }
            n += 1;
        }
        let last = &ports[i + n - 1];
        let ip = match first.host_ip {
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
            Some(ip) => ip.to_string(),
            None => "0.0.0.0".to_string(),
        };
        let range = |a: u16, b: u16| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        };
        out.push(format!(
            "{ip}:{}->{}/{}",
            range(first.host_port, last.host_port),
            range(first.container_port, last.container_port),
            first.protocol
        ));
        i += n;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests;
