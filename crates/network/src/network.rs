//! Networks are conflist files: `CONFIG_DIR/<name>.conflist`, one bridge each.
//! The default network `berth` is written on first use.

use crate::cni::ConfList;
use crate::{cache, NetworkConfig, NetworkError};
use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Value};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub const DEFAULT_NETWORK: &str = "berth";
pub const DEFAULT_BRIDGE: &str = "berth0";
/// podman's default is 10.88.0.0/16; berth's sits next to it so both can run.
pub const DEFAULT_SUBNET: &str = "10.89.0.0/16";
/// The spec version berth writes; Debian's plugins (1.1.x) speak 0.1.0–1.0.0.
pub const CNI_VERSION: &str = "1.0.0";
const MAX_IFNAME: usize = 15;

/// `berth network create` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateOptions {
    pub name: String,
    /// None: the first free 10.90.N.0/24.
    pub subnet: Option<IpNet>,
    /// None: the subnet's first address.
    pub gateway: Option<IpAddr>,
    /// None: the first free `berthN`.
    pub bridge: Option<String>,
    /// No outbound NAT (ipMasq off).
    pub internal: bool,
}

/// A network as read back from its conflist.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub name: String,
    pub path: PathBuf,
    pub bridge: Option<String>,
    pub subnets: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    pub config: ConfList,
}

impl Network {
    /// Writes a new network's conflist. Refuses an existing name, bridge or an
    /// overlapping subnet.
    pub fn create(cfg: &NetworkConfig, opts: &CreateOptions) -> Result<Network, NetworkError> {
        if !crate::cni::conflist::valid_name(&opts.name) {
            return Err(NetworkError::InvalidName {
                name: opts.name.clone(),
            });
        }
        let _lock = lock_config_dir(cfg)?;
        ensure_default(cfg)?;
        let existing = list_files(cfg)?;
        if existing.iter().any(|n| n.name == opts.name) {
            return Err(NetworkError::Exists {
                name: opts.name.clone(),
            });
        }
        let subnet = match opts.subnet {
            Some(s) => s.trunc(),
            None => free_subnet(&existing)?,
        };
        if subnet.prefix_len() >= subnet.max_prefix_len() - 1 {
            return Err(NetworkError::BadSubnet {
                subnet,
                reason: "too small for a gateway and a container",
            });
        }
        if let Some(other) = existing
            .iter()
            .find(|n| n.subnets.iter().any(|s| overlaps(s, &subnet)))
        {
            return Err(NetworkError::SubnetOverlap {
                subnet,
                network: other.name.clone(),
            });
        }
        let gateway = opts.gateway.unwrap_or_else(|| first_host(&subnet));
        if !subnet.contains(&gateway) {
            return Err(NetworkError::BadSubnet {
                subnet,
                reason: "the gateway is outside the subnet",
            });
        }
        let bridge = match &opts.bridge {
            Some(b) => b.clone(),
            None => free_bridge(&existing),
        };
        if bridge.is_empty() || bridge.len() > MAX_IFNAME || bridge.contains(['/', ' ', ':']) {
            return Err(NetworkError::InvalidBridge { bridge });
        }
        if let Some(other) = existing
            .iter()
            .find(|n| n.bridge.as_deref() == Some(bridge.as_str()))
        {
            return Err(NetworkError::BridgeTaken {
                bridge,
                network: other.name.clone(),
            });
        }
        let config = conflist(cfg, &opts.name, &bridge, subnet, gateway, opts.internal);
        write_conflist(cfg, &config)?;
        Network::from_conflist(cfg.conflist_path(&opts.name), config)
    }

    /// All networks, the default one included (written if missing).
    pub fn list(cfg: &NetworkConfig) -> Result<Vec<Network>, NetworkError> {
        {
            let _lock = lock_config_dir(cfg)?;
            ensure_default(cfg)?;
        }
        let mut all = list_files(cfg)?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// One network by name; the default network is written on first use.
    pub fn inspect(cfg: &NetworkConfig, name: &str) -> Result<Network, NetworkError> {
        if !crate::cni::conflist::valid_name(name) {
            return Err(NetworkError::InvalidName {
                name: name.to_string(),
            });
        }
        if name == DEFAULT_NETWORK {
            let _lock = lock_config_dir(cfg)?;
            ensure_default(cfg)?;
        }
        let path = cfg.conflist_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NetworkError::NotFound {
                    name: name.to_string(),
                })
            }
            Err(source) => return Err(NetworkError::Config { path, source }),
        };
        let config = ConfList::parse(&bytes, &path.display().to_string())?;
        Network::from_conflist(path, config)
    }

    /// Deletes a network: its conflist, its IPAM state and its bridge. Refuses the
    /// default network and networks containers are attached to.
    pub fn remove(cfg: &NetworkConfig, name: &str) -> Result<(), NetworkError> {
        if name == DEFAULT_NETWORK {
            return Err(NetworkError::RemoveDefault);
        }
        let _lock = lock_config_dir(cfg)?;
        let net = Network::inspect(cfg, name)?;
        let attached: Vec<String> = cache::list(&cfg.cache_dir())?
            .into_iter()
            .filter(|c| c.network == name)
            .map(|c| c.container_id)
            .collect();
        if !attached.is_empty() {
            return Err(NetworkError::InUse {
                network: name.to_string(),
                containers: attached,
            });
        }
        // Rules first: if they cannot go, the conflist stays to say what they were.
        crate::rules::remove(cfg, &net)?;
        std::fs::remove_file(&net.path).map_err(|source| NetworkError::Config {
            path: net.path.clone(),
            source,
        })?;
        let ipam = cfg.ipam_dir().join(name);
        match std::fs::remove_dir_all(&ipam) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(NetworkError::Config { path: ipam, source }),
        }
        if let Some(bridge) = net.bridge {
            delete_link(&bridge)?;
        }
        Ok(())
    }

    fn from_conflist(path: PathBuf, config: ConfList) -> Result<Network, NetworkError> {
        let bridge_plugin = config.plugins.iter().find(|p| p["type"] == "bridge");
        let bridge = bridge_plugin
            .and_then(|p| p["bridge"].as_str())
            .map(str::to_string);
        let ranges = bridge_plugin.and_then(|p| p["ipam"]["ranges"].as_array());
        let mut subnets = Vec::new();
        let mut gateways = Vec::new();
        for range in ranges
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
        {
            if let Some(s) = range["subnet"].as_str().and_then(|s| s.parse().ok()) {
                subnets.push(s);
            }
            if let Some(g) = range["gateway"].as_str().and_then(|s| s.parse().ok()) {
                gateways.push(g);
            }
        }
        Ok(Network {
            name: config.name.clone(),
            path,
            bridge,
            subnets,
            gateways,
            config,
        })
    }
}

/// The conflist of a bridge network: bridge (gateway) with host-local IPAM whose state
/// lives under berth's data dir, then portmap. Outbound NAT and forwarding are berth's,
/// one chain each per network (rules.rs), not the bridge plugin's `ipMasq` and the
/// firewall plugin, which make rules per container; an `internal` network is not
/// masqueraded and forwards only between its own addresses. (No `tuning`: podman's old default list had it, but with no
/// arguments it changes nothing and costs an exec on every ADD and DEL.)
pub fn conflist(
    cfg: &NetworkConfig,
    name: &str,
    bridge: &str,
    subnet: IpNet,
    gateway: IpAddr,
    internal: bool,
) -> ConfList {
    let default_route = match subnet {
        IpNet::V4(_) => "0.0.0.0/0",
        IpNet::V6(_) => "::/0",
    };
    ConfList {
        cni_version: CNI_VERSION.to_string(),
        name: name.to_string(),
        disable_check: false,
        extra: [crate::rules::conflist_key(internal)].into_iter().collect(),
        plugins: vec![
            json!({
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                // Lets a container reach itself through a published port.
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet.to_string(), "gateway": gateway.to_string()}]],
                    "routes": [{"dst": default_route}],
                    "dataDir": cfg.ipam_dir(),
                }
            }),
            json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ],
    }
}

/// A list of the `loopback` plugin alone. berth brings `lo` up itself (netns.rs); this
/// is for callers and tests that want the plugin.
pub fn loopback() -> ConfList {
    ConfList {
        cni_version: CNI_VERSION.to_string(),
        name: "berth-loopback".to_string(),
        disable_check: false,
        extra: Default::default(),
        plugins: vec![json!({"type": "loopback"})],
    }
}

/// Writes the default network's conflist unless it exists (caller holds the lock).
fn ensure_default(cfg: &NetworkConfig) -> Result<(), NetworkError> {
    if cfg.conflist_path(DEFAULT_NETWORK).exists() {
        return Ok(());
    }
    let subnet: IpNet = DEFAULT_SUBNET
        .parse()
        .expect("DEFAULT_SUBNET is a valid CIDR");
    let config = conflist(
        cfg,
        DEFAULT_NETWORK,
        DEFAULT_BRIDGE,
        subnet,
        first_host(&subnet),
        false,
    );
    write_conflist(cfg, &config)
}

fn write_conflist(cfg: &NetworkConfig, config: &ConfList) -> Result<(), NetworkError> {
    let path = cfg.conflist_path(&config.name);
    let tmp = path.with_extension("conflist.tmp");
    let err = |source| NetworkError::Config {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&cfg.config_dir).map_err(err)?;
    std::fs::write(&tmp, config.to_json()).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

fn list_files(cfg: &NetworkConfig) -> Result<Vec<Network>, NetworkError> {
    let dir = &cfg.config_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetworkError::Config {
                path: dir.clone(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| NetworkError::Config {
                path: dir.clone(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "conflist") {
            let bytes = std::fs::read(&path).map_err(|source| NetworkError::Config {
                path: path.clone(),
                source,
            })?;
            let config = ConfList::parse(&bytes, &path.display().to_string())?;
            out.push(Network::from_conflist(path, config)?);
        }
    }
    Ok(out)
}

/// Serialises network creation/removal between berth processes.
pub(crate) fn lock_config_dir(cfg: &NetworkConfig) -> Result<File, NetworkError> {
    let path = cfg.config_dir.join(".lock");
    crate::lock_file(&path).map_err(|source| NetworkError::Config { path, source })
}

fn first_host(subnet: &IpNet) -> IpAddr {
    subnet.hosts().next().unwrap_or_else(|| subnet.network())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn free_subnet(existing: &[Network]) -> Result<IpNet, NetworkError> {
    (0..=255u8)
        .filter_map(|n| {
            Ipv4Net::new(Ipv4Addr::new(10, 90, n, 0), 24)
                .ok()
                .map(IpNet::V4)
        })
        .find(|c| {
            !existing
                .iter()
                .flat_map(|n| &n.subnets)
                .any(|s| overlaps(s, c))
        })
        .ok_or(NetworkError::NoFreeSubnet)
}

fn free_bridge(existing: &[Network]) -> String {
    (1u32..)
        .map(|n| format!("berth{n}"))
        .find(|b| {
            !existing
                .iter()
                .any(|n| n.bridge.as_deref() == Some(b.as_str()))
        })
        .expect("an unbounded range always has a free name")
}

/// `ip link delete`: the bridge plugin creates bridges but never removes them.
fn delete_link(name: &str) -> Result<(), NetworkError> {
    let out = std::process::Command::new("ip")
        .args(["link", "delete", name])
        .output()
        .map_err(|source| NetworkError::Link {
            link: name.to_string(),
            output: source.to_string(),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || stderr.contains("Cannot find device") {
        Ok(())
    } else {
        Err(NetworkError::Link {
            link: name.to_string(),
            output: stderr.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path) -> NetworkConfig {
        NetworkConfig::new(dir.join("state"), dir.join("run"))
    }

    #[test]
    fn default_conflist_has_bridge_ipam_portmap_and_berths_nat_and_forwarding() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(tmp.path());
        let net = Network::inspect(&cfg, DEFAULT_NETWORK).expect("default network");
        assert_eq!(net.bridge.as_deref(), Some("berth0"));
        assert_eq!(
            net.subnets,
            vec![DEFAULT_SUBNET.parse::<IpNet>().expect("cidr")]
        );
        assert_eq!(
            net.gateways,
            vec!["10.89.0.1".parse::<IpAddr>().expect("ip")]
        );
        let types: Vec<_> = net
            .config
            .plugins
            .iter()
            .map(|p| p["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(types, ["bridge", "portmap"]);
        let bridge = &net.config.plugins[0];
        assert_eq!(bridge["isGateway"], true);
        // NAT and forwarding are berth's chains per network, not the plugins' rules
        // per container.
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(
            crate::rules::policy(&net),
            crate::rules::Policy {
                masquerade: true,
                forward: Some(crate::rules::Forward::Open)
            }
        );
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(
            bridge["ipam"]["dataDir"],
            cfg.ipam_dir().to_str().expect("utf-8")
        );
        assert_eq!(net.config.plugins[1]["capabilities"]["portMappings"], true);
        // The file on disk parses back to the same list.
        let text = std::fs::read_to_string(&net.path).expect("conflist");
        assert_eq!(
            ConfList::parse(text.as_bytes(), "x").expect("valid"),
            net.config
        );
    }

    #[test]
    fn create_list_inspect_remove() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(tmp.path());
        let a = Network::create(
            &cfg,
            &CreateOptions {
                name: "a".into(),
                ..Default::default()
            },
        )
        .expect("a");
        assert_eq!(a.bridge.as_deref(), Some("berth1"));
        assert_eq!(a.subnets[0].to_string(), "10.90.0.0/24");
        let b = Network::create(
            &cfg,
            &CreateOptions {
                name: "b".into(),
                subnet: Some("172.30.5.9/24".parse().expect("cidr")),
                internal: true,
                ..Default::default()
            },
        )
        .expect("b");
        assert_eq!(b.bridge.as_deref(), Some("berth2"));
        assert_eq!(b.subnets[0].to_string(), "172.30.5.0/24");
        assert_eq!(b.gateways[0].to_string(), "172.30.5.1");
        assert_eq!(b.config.plugins[0]["ipMasq"], false);
        assert!(crate::rules::policy(&a).masquerade && !crate::rules::policy(&b).masquerade);
        assert_eq!(
            crate::rules::policy(&b).forward,
            Some(crate::rules::Forward::Internal)
        );
        let names: Vec<_> = Network::list(&cfg)
            .expect("list")
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["a", "b", "berth"]);

        let overlap = CreateOptions {
            name: "c".into(),
            subnet: Some("10.89.3.0/24".parse().expect("cidr")),
            ..Default::default()
        };
        assert!(
            matches!(Network::create(&cfg, &overlap), Err(NetworkError::SubnetOverlap { network, .. }) if network == "berth")
        );
        assert!(matches!(
            Network::create(
                &cfg,
                &CreateOptions {
                    name: "a".into(),
                    ..Default::default()
                }
            ),
            Err(NetworkError::Exists { .. })
        ));
        assert!(matches!(
            Network::create(
                &cfg,
                &CreateOptions {
                    name: "bad/name".into(),
                    ..Default::default()
                }
            ),
            Err(NetworkError::InvalidName { .. })
        ));
        let long = CreateOptions {
            name: "d".into(),
            bridge: Some("a-very-long-bridge-name".into()),
            ..Default::default()
        };
        assert!(matches!(
            Network::create(&cfg, &long),
            Err(NetworkError::InvalidBridge { .. })
        ));

        assert!(matches!(
            Network::remove(&cfg, DEFAULT_NETWORK),
            Err(NetworkError::RemoveDefault)
        ));
        Network::remove(&cfg, "a").expect("remove a");
        assert!(matches!(
            Network::inspect(&cfg, "a"),
            Err(NetworkError::NotFound { .. })
        ));
    }
}
