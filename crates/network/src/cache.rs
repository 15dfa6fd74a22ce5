//! The attachment cache: one JSON file per (network, container, interface) under
//! `DATA_DIR/results/`, like libcni's /var/lib/cni/results but berth's own.
//!
//! It is written *before* ADD (config and runtimeConfig, no result) and again after
//! (with the result), so a crash at any point leaves what DEL needs: the exact config
//! list that was run (the network file may have changed or gone since), the port
//! mappings (portmap's DEL only removes what it is told about) and the result
//! (`prevResult` for DEL).

use crate::cni::{ConfList, RuntimeConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const KIND: &str = "berthCniCacheV1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    pub kind: String,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    pub hostname: String,
    pub config: ConfList,
    pub runtime_config: RuntimeConfig,
    /// None until ADD has succeeded.
    pub result: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot write the network attachment cache {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the network attachment cache {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt network attachment cache {path}: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub fn path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    // Names and ids cannot hold '/' (validated), and network names cannot hold '+'.
    dir.join(format!("{network}+{container_id}+{ifname}.json"))
}

/// Atomic replace: write a temporary file, fsync, rename.
pub fn write(dir: &Path, entry: &CachedAttachment) -> Result<(), CacheError> {
    let path = path(dir, &entry.network, &entry.container_id, &entry.ifname);
    let err = |source| CacheError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&serde_json::to_vec_pretty(entry).expect("a cache entry always serialises"))
        .map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

pub fn read(
    dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<Option<CachedAttachment>, CacheError> {
    read_file(&path(dir, network, container_id, ifname))
}

fn read_file(path: &Path) -> Result<Option<CachedAttachment>, CacheError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| CacheError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CacheError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub fn remove(
    dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), CacheError> {
    let path = path(dir, network, container_id, ifname);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CacheError::Write { path, source }),
    }
}

/// Every cached attachment (unreadable entries are reported, not skipped).
pub fn list(dir: &Path) -> Result<Vec<CachedAttachment>, CacheError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CacheError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CacheError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            out.extend(read_file(&path)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_list_remove() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("results");
        assert_eq!(list(&dir).expect("empty"), vec![]);
        let mut entry = CachedAttachment {
            kind: KIND.into(),
            network: "berth".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: "/run/berth/netns/c1".into(),
            hostname: "web".into(),
            config: crate::network::loopback(),
            runtime_config: RuntimeConfig::default(),
            result: None,
        };
        write(&dir, &entry).expect("write");
        entry.result = Some(serde_json::json!({"cniVersion": "1.0.0"}));
        write(&dir, &entry).expect("rewrite");
        assert_eq!(
            read(&dir, "berth", "c1", "eth0").expect("read"),
            Some(entry.clone())
        );
        assert_eq!(read(&dir, "berth", "c2", "eth0").expect("read"), None);
        assert_eq!(list(&dir).expect("list"), vec![entry]);
        std::fs::write(dir.join("broken.json"), "{").expect("write");
        assert!(matches!(list(&dir), Err(CacheError::Corrupt { .. })));
        remove(&dir, "berth", "c1", "eth0").expect("remove");
        remove(&dir, "berth", "c1", "eth0").expect("remove twice");
        assert_eq!(read(&dir, "berth", "c1", "eth0").expect("read"), None);
    }
}
