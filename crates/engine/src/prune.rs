//! Disk use and its reclaiming: `container prune`, `system df`, `system prune`.
//!
//! Sizes are what the files take on disk (allocated blocks), counted once where images
//! share layers. A container's size is its writable layer and its log; an image's,
//! its committed layer snapshots and blobs; a volume's, its data.

use crate::container::{Container, ContainerError, Engine, Status};
use berth_image::images::ImageRecord;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// One row of `system df`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    /// "Images", "Containers" or "Local Volumes" (docker's words).
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub total: usize,
    /// Images some container uses, running containers, volumes some container mounts.
    pub active: usize,
    /// Bytes.
    pub size: u64,
    /// Bytes a prune of the inactive ones would free.
    pub reclaimable: u64,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    /// Bytes freed.
    pub bytes: u64,
}

/// Allocated bytes under `p`, not following symlinks or crossing into other trees'
/// mounts (a rootfs mount is not the snapshot's size).
pub(crate) fn du(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    let mut n = m.blocks() * 512;
    if m.is_dir() {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let child = e.path();
            match std::fs::symlink_metadata(&child) {
                Ok(cm) if cm.dev() != m.dev() && cm.is_dir() => {}
                Ok(_) => n += du(&child),
                Err(_) => {}
            }
        }
    }
    n
}

impl Engine {
    /// Bytes a container holds on disk: its writable layer and its log.
    pub fn container_size(&self, id: &str) -> u64 {
        du(&self.images.snapshots.root().join("active").join(id))
            + du(&self.root.join("containers").join(id))
    }

    /// `container prune`: removes every exited container. Returns the ids removed and
    /// the bytes freed; a container that fails to go is reported after the others.
    pub fn container_prune(&self) -> Result<Pruned, ContainerError> {
        let mut out = Pruned::default();
        let mut first_err = None;
        for c in self
            .list()?
            .into_iter()
            .filter(|c| c.status == Status::Exited)
        {
            let size = self.container_size(&c.id);
            match self
                .remove(&c.id, false)
                .and_then(|c| self.remove_anonymous_volumes(&c).map(drop))
            {
                Ok(()) => {
                    out.bytes += size;
                    out.containers.push(c.id);
                }
                Err(ContainerError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!("prune: container {}: {e}", c.id);
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(out), Err)
    }

    /// `system df`: images, containers and volumes.
    pub fn system_df(&self) -> Result<Vec<DiskUsage>, ContainerError> {
        let containers = self.list()?;
        let images = self.images.list()?;
        let used: HashSet<&str> = containers.iter().map(|c| c.image_id.as_str()).collect();
        let is_used = |r: &ImageRecord| used.contains(r.id.to_string().as_str());
        let (mut size, mut kept) = (0, 0);
        let (mut seen_chains, mut seen_blobs) = (HashSet::new(), HashSet::new());
        // The used images first, so what they share counts as kept.
        let mut ordered: Vec<&ImageRecord> = images.iter().filter(|r| is_used(r)).collect();
        ordered.extend(images.iter().filter(|r| !is_used(r)));
        for r in ordered {
            let mut bytes = 0;
            for l in &r.layers {
                if seen_chains.insert(l.chain_id.to_string()) {
                    bytes += self.images.snapshots.disk_usage(&l.chain_id);
                }
            }
            for b in r.blobs() {
                if seen_blobs.insert(b.to_string()) {
                    bytes += self.images.content.size(b).unwrap_or(0);
                }
            }
            size += bytes;
            if is_used(r) {
                kept += bytes;
            }
        }
        let image_row = DiskUsage {
            kind: "Images",
            total: images.len(),
            active: images.iter().filter(|r| is_used(r)).count(),
            size,
            reclaimable: size - kept,
        };

        let running = |c: &Container| matches!(c.status, Status::Running | Status::Restarting);
        let sizes: Vec<(bool, u64)> = containers
            .iter()
            .map(|c| (running(c), self.container_size(&c.id)))
            .collect();
        let container_row = DiskUsage {
            kind: "Containers",
            total: containers.len(),
            active: sizes.iter().filter(|(r, _)| *r).count(),
            size: sizes.iter().map(|(_, s)| s).sum(),
            reclaimable: sizes.iter().filter(|(r, _)| !r).map(|(_, s)| s).sum(),
        };

        let volumes = self.volumes.list()?;
        let mut vrow = DiskUsage {
            kind: "Local Volumes",
            total: volumes.len(),
            active: 0,
            size: 0,
            reclaimable: 0,
        };
        for v in &volumes {
            let bytes = du(&self.volumes.mountpoint(&v.name));
            vrow.size += bytes;
            if containers.iter().any(|c| c.volumes.contains(&v.name)) {
                vrow.active += 1;
            } else {
                vrow.reclaimable += bytes;
            }
        }
        Ok(vec![image_row, container_row, vrow])
    }

    /// Removes the images no container uses: only the dangling ones (no name) unless
    /// `all`; then the blobs and snapshots nothing needs. Returns the image ids removed
    /// and the bytes the garbage collection freed.
    pub fn image_prune(&self, all: bool) -> Result<Pruned, ContainerError> {
        let used: HashSet<String> = self.list()?.into_iter().map(|c| c.image_id).collect();
        let mut out = Pruned::default();
        for r in self.images.list()? {
            let id = r.id.to_string();
            if used.contains(&id) || !(all || r.names.is_empty()) {
                continue;
            }
            if let (_, true) = self.images.remove(&id, true, &|_| None)? {
                out.images.push(id);
            }
        }
        out.bytes = self.images.gc(&HashSet::new())?.bytes;
        Ok(out)
    }

    /// `system prune`: exited containers, then unused images (dangling ones unless
    /// `all`) and their content, and with `volumes` the volumes no container uses.
    pub fn system_prune(&self, all: bool, volumes: bool) -> Result<Pruned, ContainerError> {
        let mut out = self.container_prune()?;
        let images = self.image_prune(all)?;
        out.images = images.images;
        out.bytes += images.bytes;
        out.bytes += self.empty_trash();
        if volumes {
            let sizes: Vec<(String, u64)> = self
                .volumes
                .list()?
                .into_iter()
                .map(|v| {
                    let s = du(&self.volumes.mountpoint(&v.name));
                    (v.name, s)
                })
                .collect();
            out.volumes = self.volume_prune()?;
            out.bytes += sizes
                .iter()
                .filter(|(n, _)| out.volumes.contains(n))
                .map(|(_, s)| s)
                .sum::<u64>();
        }
        Ok(out)
    }
}
