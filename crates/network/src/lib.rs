//! Container networking for berth: CNI plugins on named network namespaces.
//!
//! # Lifecycle
//!
//! ```text
//! attach(cfg, "berth", id, ports, hostname)      before the runtime creates the container
//!   1. load the network's conflist (the default network `berth` is written on first use);
//!      make its NAT and forward chains unless this boot already has       (rules.rs)
//!   2. check the published ports: not bound on the host, not published by another container
//!   3. create the netns RUN_DIR/netns/<id>, lo up       (netns.rs: bind mount, like `ip netns add`;
//!      lo by ioctl, which is all the loopback plugin does, without its exec)
//!   4. write the cache entry (config + ports, no result)  (cache.rs)
//!   5. the conflist's ADD chain with runtimeConfig.portMappings (without portmap when
//!      there are no ports: it would do nothing; the cache keeps the list that ran)
//!   6. write the cache entry again, now with the result
//!   → Attachment { netns, ips, gateway, mac, interface, ports }
//!   any failure after 3 undoes what was done (DEL, netns removed, cache removed)
//!
//! check(cfg, "berth", id)                         any time: CHECK chain against the cache
//!
//! the container runs: its spec names the netns (`linux.namespaces: [{type: network, path}]`);
//! write `resolv_conf(..)` and `hosts(..)` into it
//!
//! detach(cfg, "berth", id)                        after the container is gone
//!   DEL chain in reverse (prevResult, config and ports from the cache),
//!   netns removed, cache entry removed; best-effort and idempotent: every error is
//!   collected, detaching twice or after a crash mid-attach is fine
//! ```
//!
//! # On disk
//!
//! | path | what |
//! |---|---|
//! | `STATE/networks/<name>.conflist` | one CNI configuration list per network |
//! | `STATE/cni/results/<net>+<id>+<ifname>.json` | the attachment cache (what DEL needs) |
//! | `STATE/cni/ipam/<net>/` | host-local's leases (`dataDir`), one file per IP |
//! | `STATE/cni/ports.lock` | serialises port checks with the cache write that publishes them |
//! | `STATE/networks/.lock` | serialises network create/remove |
//! | `RUN/netns/<id>` | the container's netns (an nsfs bind mount); `RUN/netns` is a shared mount |
//! | `RUN/rules/<name>` | this boot has made the network's NAT and forward chains |
//!
//! Firewall state: outbound NAT and forwarding are one chain each per network, berth's
//! (rules.rs); port DNAT belongs to the portmap plugin, tagged with the container id.
//! Conflists from older berths keep the bridge plugin's `ipMasq` and the firewall plugin.

pub mod cache;
pub mod cni;
pub mod netns;
pub mod network;
pub mod port;
pub mod resolv;
pub mod rules;

mod attach;
mod check;
mod detach;

pub use attach::{attach, check_ports, Attachment};

/// Takes an exclusive flock on `path` (made, with its directory, if missing); held until
/// the file is dropped. The host-wide locks of networks, port checks and attachments.
pub fn lock_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::File::create(path)?;
    f.lock()?;
    Ok(f)
}
pub use check::check;
pub use detach::detach;
pub use network::{CreateOptions, Network, DEFAULT_NETWORK};
pub use port::{assign_free_host_ports, PortMapping, Protocol};
pub use resolv::{hosts, resolv_conf, ResolvConf};

use ipnet::IpNet;
use std::path::PathBuf;

/// Where networking keeps its files; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Conflists, one per network.
    pub config_dir: PathBuf,
    /// The attachment cache and IPAM state.
    pub data_dir: PathBuf,
    /// Network namespace files.
    pub netns_dir: PathBuf,
    /// Markers of the networks whose NAT and forward rules this boot has made (rules.rs).
    pub rules_dir: PathBuf,
    /// Where plugin binaries are looked up, in order (also `CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// The interface name inside the container.
    pub ifname: String,
}

impl NetworkConfig {
    /// The layout under berth's state root (persistent) and run root (tmpfs).
    pub fn new(state_root: impl Into<PathBuf>, run_root: impl Into<PathBuf>) -> Self {
        let state_root = state_root.into();
        let run_root = run_root.into();
        NetworkConfig {
            config_dir: state_root.join("networks"),
            data_dir: state_root.join("cni"),
            netns_dir: run_root.join("netns"),
            rules_dir: run_root.join("rules"),
            plugin_dirs: vec![
                PathBuf::from("/usr/libexec/cni"),
                PathBuf::from("/usr/lib/cni"),
                PathBuf::from("/opt/cni/bin"),
            ],
            ifname: "eth0".to_string(),
        }
    }

    pub fn conflist_path(&self, network: &str) -> PathBuf {
        self.config_dir.join(format!("{network}.conflist"))
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("results")
    }

    pub fn ipam_dir(&self) -> PathBuf {
        self.data_dir.join("ipam")
    }

    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.netns_dir.join(container_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "invalid network name {name:?} (CNI spec: names match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$)"
    )]
    InvalidName { name: String },
    #[error("invalid container id {id:?} for networking (CNI spec: CNI_CONTAINERID is letters, digits, '_', '.', '-')")]
    InvalidContainerId { id: String },
    #[error("network {name:?} not found")]
    NotFound { name: String },
    #[error("network {name:?} already exists")]
    Exists { name: String },
    #[error("the default network cannot be removed")]
    RemoveDefault,
    #[error("network {network:?} is in use by containers {containers:?}")]
    InUse {
        network: String,
        containers: Vec<String>,
    },
    #[error("subnet {subnet} overlaps network {network:?}")]
    SubnetOverlap { subnet: IpNet, network: String },
    #[error("invalid subnet {subnet}: {reason}")]
    BadSubnet { subnet: IpNet, reason: &'static str },
    #[error("no free subnet left in 10.90.0.0/16; pass one")]
    NoFreeSubnet,
    #[error("invalid bridge name {bridge:?} (1-15 characters, no '/', ':' or spaces)")]
    InvalidBridge { bridge: String },
    #[error("bridge {bridge:?} is already used by network {network:?}")]
    BridgeTaken { bridge: String, network: String },
    #[error("network NAT/forward rules: {command} failed: {output}")]
    Rules { command: String, output: String },
    #[error("cannot delete link {link}: {output}")]
    Link { link: String, output: String },
    #[error("network config {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "container {container_id} is already attached to network {network:?} (detach it first)"
    )]
    AlreadyAttached {
        network: String,
        container_id: String,
    },
    #[error("container {container_id} is not attached to network {network:?}")]
    NotAttached {
        network: String,
        container_id: String,
    },
    #[error("attaching container {container_id} to network {network:?}: {source}")]
    Add {
        network: String,
        container_id: String,
        #[source]
        source: Box<cni::AddError>,
    },
    #[error("network {network:?} gave container {container_id} no interface inside its namespace (CNI spec: the result lists the container's interface with a sandbox)")]
    NoInterface {
        network: String,
        container_id: String,
    },
    #[error("detaching container {container_id} from network {network:?}: {}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Teardown {
        network: String,
        container_id: String,
        errors: Vec<NetworkError>,
    },
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    #[error(transparent)]
    Port(#[from] port::PortError),
}

/// Container ids and netns names: CNI_CONTAINERID's alphabet (spec 1.0), which also
/// keeps them safe as file names.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
