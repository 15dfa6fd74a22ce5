//! `detach`: undo `attach`, from the cached attachment when there is one.

use crate::cache;
use crate::cni::{plugin::Invocation, ConfList, RuntimeConfig};
use crate::{netns, Network, NetworkConfig, NetworkError};
use serde_json::Value;

/// Removes a container from `network`: DEL chain, loopback DEL, netns, cache entry.
/// Best-effort (every failure is collected into [`NetworkError::Teardown`]) and
/// idempotent: detaching twice, or after a crash mid-attach, is fine. On failure the
/// cache entry is kept so that a retry has what DEL needs.
pub fn detach(cfg: &NetworkConfig, network: &str, container_id: &str) -> Result<(), NetworkError> {
    if !crate::valid_id(container_id) {
        return Err(NetworkError::InvalidContainerId {
            id: container_id.to_string(),
        });
    }
    let mut errors = Vec::new();
    let cached = match cache::read(&cfg.cache_dir(), network, container_id, &cfg.ifname) {
        Ok(c) => c,
        Err(e) => {
            errors.push(e.into());
            None
        }
    };
    // Without a cache entry (a crash between netns creation and the first cache write,
    // or a corrupt entry), DEL with the network's current config; without either the
    // entry or the netns, nothing was ever added (the entry is written before any ADD).
    let current = match &cached {
        Some(_) => None,
        None if !cfg.netns_path(container_id).exists() && errors.is_empty() => return Ok(()),
        None => match Network::inspect(cfg, network) {
            Ok(net) => Some(net.config),
            Err(NetworkError::NotFound { .. }) => None,
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let empty = RuntimeConfig::default();
    let td = match &cached {
        Some(c) => Teardown {
            network,
            container_id,
            config: Some(&c.config),
            runtime_config: &c.runtime_config,
            result: c.result.as_ref(),
            run_chain: true,
        },
        None => Teardown {
            network,
            container_id,
            config: current.as_ref(),
            runtime_config: &empty,
            result: None,
            run_chain: true,
        },
    };
    errors.extend(teardown(cfg, &td));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(NetworkError::Teardown {
            network: network.to_string(),
            container_id: container_id.to_string(),
            errors,
        })
    }
}

/// What to tear down.
pub(crate) struct Teardown<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub config: Option<&'a ConfList>,
    pub runtime_config: &'a RuntimeConfig,
    pub result: Option<&'a Value>,
    /// False when the ADD chain already undid itself.
    pub run_chain: bool,
}

/// DEL chain (reverse), netns removal (and the netns directory's mount
/// with the last one), then the cache entry, which
/// goes only when everything before it worked. Returns every error.
pub(crate) fn teardown(cfg: &NetworkConfig, td: &Teardown<'_>) -> Vec<NetworkError> {
    let netns_path = cfg.netns_path(td.container_id);
    let inv = Invocation {
        container_id: td.container_id,
        netns: &netns_path,
        ifname: &cfg.ifname,
        args: "",
        plugin_dirs: &cfg.plugin_dirs,
    };
    let mut errors: Vec<NetworkError> = Vec::new();
    // DEL before the netns goes: the bridge plugin finds the container's addresses
    // (to remove their NAT rules) by entering the netns.
    if let (true, Some(config)) = (td.run_chain, td.config) {
        errors.extend(
            config
                .del(&inv, td.runtime_config, td.result)
                .into_iter()
                .map(NetworkError::from),
        );
    }
    if let Err(e) = netns::remove(&netns_path).and_then(|()| netns::release_dir(&cfg.netns_dir)) {
        errors.push(e.into());
    }
    if errors.is_empty() {
        if let Err(e) = cache::remove(&cfg.cache_dir(), td.network, td.container_id, &cfg.ifname) {
            errors.push(e.into());
        }
    }
    errors
}
