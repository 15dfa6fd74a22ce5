//! The image configuration (image-spec config.md), with Docker's additions (Healthcheck),
//! as the runtime spec is built from it.

use berth_distribution::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
}

/// What a container from the image runs, and how (config.md#properties, `config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's, not the OCI spec's; kept so `inspect` and `run` can honour it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("image config {digest}: not valid JSON for an image config (image-spec config.md): {source}")]
    Parse {
        digest: Digest,
        source: serde_json::Error,
    },
    #[error("image config {digest}: rootfs.type is {kind:?}, not \"layers\" (image-spec config.md#properties)")]
    RootFsType { digest: Digest, kind: String },
    #[error("image config {digest}: {diff_ids} rootfs.diff_ids for {layers} manifest layers (image-spec manifest.md: they MUST correspond)")]
    LayerCount {
        digest: Digest,
        diff_ids: usize,
        layers: usize,
    },
}

impl ImageConfig {
    pub fn parse(digest: &Digest, bytes: &[u8], layers: usize) -> Result<ImageConfig, ConfigError> {
        let c: ImageConfig =
            serde_json::from_slice(bytes).map_err(|source| ConfigError::Parse {
                digest: digest.clone(),
                source,
            })?;
        if c.rootfs.kind != "layers" {
            return Err(ConfigError::RootFsType {
                digest: digest.clone(),
                kind: c.rootfs.kind,
            });
        }
        if c.rootfs.diff_ids.len() != layers {
            return Err(ConfigError::LayerCount {
                digest: digest.clone(),
                diff_ids: c.rootfs.diff_ids.len(),
                layers,
            });
        }
        Ok(c)
    }

    /// ChainIDs of the layer stack, bottom first (config.md#layer-chainid).
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.rootfs.diff_ids)
    }

    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_docker_config_and_chain_ids() {
        let d1 = Digest::sha256_of(b"1");
        let d2 = Digest::sha256_of(b"2");
        let json = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "Healthcheck": {"Test": ["CMD", "true"]},
                       "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"},
            "rootfs": {"type": "layers", "diff_ids": [d1.to_string(), d2.to_string()]}
        });
        let bytes = serde_json::to_vec(&json).expect("json");
        let id = Digest::sha256_of(&bytes);
        let c = ImageConfig::parse(&id, &bytes, 2).expect("parse");
        assert_eq!(c.config.cmd, Some(vec!["sh".to_string()]));
        assert!(c.config.healthcheck.is_some());
        assert_eq!(c.platform(), "linux/amd64");
        let chain = c.chain_ids();
        assert_eq!(chain[0], d1);
        assert_eq!(chain[1], Digest::sha256_of(format!("{d1} {d2}").as_bytes()));
        let e = ImageConfig::parse(&id, &bytes, 3).expect_err("count");
        assert!(e.to_string().contains("2 rootfs.diff_ids for 3"), "{e}");
    }
}
