//! `check`: ask the plugins whether an attachment is still as ADD left it
//! (CNI spec 0.4.0+ CHECK, run in order with the cached result).

use crate::cache;
use crate::cni::plugin::Invocation;
use crate::{NetworkConfig, NetworkError};

/// Ok when every plugin confirms the attachment; NotAttached when there is none.
///
/// Known plugin bug: portmap up to 1.2 fails CHECK for IPv4-only port mappings
/// (it looks for ip6tables rules it never made; containernetworking/plugins#819).
pub fn check(cfg: &NetworkConfig, network: &str, container_id: &str) -> Result<(), NetworkError> {
    if !crate::valid_id(container_id) {
        return Err(NetworkError::InvalidContainerId {
            id: container_id.to_string(),
        });
    }
    let not_attached = || NetworkError::NotAttached {
        network: network.to_string(),
        container_id: container_id.to_string(),
    };
    let entry = cache::read(&cfg.cache_dir(), network, container_id, &cfg.ifname)?
        .ok_or_else(not_attached)?;
    let result = entry.result.as_ref().ok_or_else(not_attached)?;
    let inv = Invocation {
        container_id,
        netns: &entry.netns,
        ifname: &entry.ifname,
        args: "",
        plugin_dirs: &cfg.plugin_dirs,
    };
    entry.config.check(&inv, &entry.runtime_config, result)?;
    Ok(())
}
