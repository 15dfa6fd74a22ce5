//! What berth knows about each image: its record (manifest, config, layers, names) in the
//! metadata store, names resolved the way docker and podman resolve them, and garbage
//! collection of blobs and snapshots that no image or container needs any more.

use crate::content::{ContentError, ContentStore};
use crate::snapshot::{SnapshotError, Snapshots};
use berth_distribution::{Digest, Reference};
use berth_store::{Store, StoreError, Table};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

const IMAGES: Table = Table::new("images");
const NAMES: Table = Table::new("image_names");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// The config's digest: the image id, as docker and podman use it.
    pub id: Digest,
    /// Full references (`registry/repository:tag`) pointing at this image.
    pub names: Vec<String>,
    /// `registry/repository@digest` for each repository it came from.
    pub repo_digests: Vec<String>,
    pub manifest: Digest,
    pub manifest_media_type: String,
    /// The index (manifest list) the manifest was chosen from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
    pub config_media_type: String,
    pub layers: Vec<Layer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub platform: String,
    /// Unix seconds when berth stored it.
    pub stored_at: u64,
    /// Uncompressed size of all layers.
    pub size: u64,
}

impl ImageRecord {
    /// The top of the layer chain: what a container's snapshot sits on.
    pub fn top_chain(&self) -> Option<&Digest> {
        self.layers.last().map(|l| &l.chain_id)
    }

    /// Every blob this image needs kept.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        [&self.id, &self.manifest]
            .into_iter()
            .chain(self.index.iter())
            .chain(self.layers.iter().map(|l| &l.digest))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("image {0:?} not known")]
    NotFound(String),
    #[error("image id prefix {0:?} matches more than one image")]
    Ambiguous(String),
    #[error("image {image} has several names ({names}); remove them one by one or use --force")]
    ManyNames { image: String, names: String },
    #[error(
        "image {image} is used by container {container}; remove the container first or use --force"
    )]
    InUse { image: String, container: String },
    #[error(transparent)]
    Reference(#[from] berth_distribution::ReferenceError),
}

pub struct Images {
    pub meta: Store,
    pub content: ContentStore,
    pub snapshots: Snapshots,
}

/// What garbage collection removed.
#[derive(Debug, Default, Serialize)]
pub struct Freed {
    pub blobs: usize,
    pub snapshots: usize,
    pub bytes: u64,
}

impl Images {
    /// The image store under a berth root: `berth.redb` (metadata), `content/`, `snapshots/`.
    pub fn open(
        root: &std::path::Path,
        driver: Option<crate::snapshot::Driver>,
    ) -> Result<Images, ImageError> {
        Ok(Images {
            meta: Store::new(root.join("berth.redb")),
            content: ContentStore::new(root.join("content")),
            snapshots: Snapshots::open_with(root.join("snapshots"), driver)?,
        })
    }

    /// All records, newest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let mut all: Vec<ImageRecord> = self
            .meta
            .read(|v| v.list::<ImageRecord>(IMAGES))?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        all.sort_by(|a, b| b.stored_at.cmp(&a.stored_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Finds an image by name (normalised like `docker` does: `busybox` is
    /// `docker.io/library/busybox:latest`), by full id, or by a unique id prefix.
    pub fn find(&self, name: &str) -> Result<ImageRecord, ImageError> {
        self.meta.read(|v| {
            if let Ok(r) = name.parse::<Reference>() {
                if let Some(id) = v.get::<String>(NAMES, &r.to_string())? {
                    if let Some(rec) = v.get::<ImageRecord>(IMAGES, &id)? {
                        return Ok(rec);
                    }
                }
                // name@digest: match a repo digest.
                if r.digest().is_some() {
                    let want = r.to_string();
                    let want_plain = format!("{}@{}", r.name(), r.manifest_reference());
                    for (_, rec) in v.list::<ImageRecord>(IMAGES)? {
                        if rec
                            .repo_digests
                            .iter()
                            .any(|d| *d == want || *d == want_plain)
                        {
                            return Ok(rec);
                        }
                    }
                }
            }
            let hex = name.strip_prefix("sha256:").unwrap_or(name);
            if hex.len() >= 3 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                let hits: Vec<ImageRecord> = v
                    .list::<ImageRecord>(IMAGES)?
                    .into_iter()
                    .map(|(_, r)| r)
                    .filter(|r| r.id.hex().starts_with(hex))
                    .collect();
                return match hits.len() {
                    0 => Err(ImageError::NotFound(name.into())),
                    1 => Ok(hits.into_iter().next().expect("one hit")),
                    _ => Err(ImageError::Ambiguous(name.into())),
                };
            }
            Err(ImageError::NotFound(name.into()))
        })
    }

    /// Stores a record and points `name` (if any) at it, taking the name from any image
    /// that had it (that one keeps its other names, or becomes dangling as with docker).
    pub fn put(
        &self,
        mut rec: ImageRecord,
        name: Option<&Reference>,
    ) -> Result<ImageRecord, ImageError> {
        self.meta.write(|tx| {
            let key = rec.id.to_string();
            if let Some(old) = tx.get::<ImageRecord>(IMAGES, &key)? {
                rec.names = old.names;
                for d in old.repo_digests {
                    if !rec.repo_digests.contains(&d) {
                        rec.repo_digests.push(d);
                    }
                }
                rec.stored_at = old.stored_at.max(rec.stored_at);
            }
            if let Some(n) = name {
                let n = n.to_string();
                if let Some(prev) = tx.get::<String>(NAMES, &n)? {
                    if prev != key {
                        if let Some(mut other) = tx.get::<ImageRecord>(IMAGES, &prev)? {
                            other.names.retain(|x| *x != n);
                            tx.put(IMAGES, &prev, &other)?;
                        }
                    }
                }
                if !rec.names.contains(&n) {
                    rec.names.push(n.clone());
                }
                tx.put(NAMES, &n, &key)?;
            }
            tx.put(IMAGES, &key, &rec)?;
            Ok(rec.clone())
        })
    }

    /// `berth tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord, ImageError> {
        let rec = self.find(source)?;
        let r: Reference = target.parse()?;
        self.put(rec, Some(&r))
    }

    /// Removes one name, or the whole image when given its id or its last name. `users`
    /// names the containers using each image id; they block removal unless `force`.
    /// Returns the names untagged and whether the image itself was deleted.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        users: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<(Vec<String>, bool), ImageError> {
        let rec = self.find(name)?;
        let by_name = name
            .parse::<Reference>()
            .ok()
            .map(|r| r.to_string())
            .filter(|n| rec.names.contains(n));
        self.meta.write(|tx| {
            let key = rec.id.to_string();
            let Some(mut cur) = tx.get::<ImageRecord>(IMAGES, &key)? else {
                return Err(ImageError::NotFound(name.into()));
            };
            if let Some(n) = &by_name {
                if cur.names.len() > 1 {
                    cur.names.retain(|x| x != n);
                    tx.remove(NAMES, n)?;
                    tx.put(IMAGES, &key, &cur)?;
                    return Ok((vec![n.clone()], false));
                }
            } else if cur.names.len() > 1 && !force {
                return Err(ImageError::ManyNames {
                    image: rec.id.short().into(),
                    names: cur.names.join(", "),
                });
            }
            if let Some(c) = users(&cur.id) {
                if !force {
                    return Err(ImageError::InUse {
                        image: name.into(),
                        container: c,
                    });
                }
            }
            for n in &cur.names {
                tx.remove(NAMES, n)?;
            }
            tx.remove(IMAGES, &key)?;
            Ok((std::mem::take(&mut cur.names), true))
        })
    }

    /// Removes blobs and committed snapshots that no image and no active snapshot needs.
    /// `extra_chains` are chains in use by something else (containers being created).
    pub fn gc(&self, extra_chains: &HashSet<Digest>) -> Result<Freed, ImageError> {
        let images = self.list()?;
        let blobs: HashSet<&Digest> = images.iter().flat_map(|r| r.blobs()).collect();
        let mut chains: HashSet<Digest> = extra_chains.clone();
        for r in &images {
            chains.extend(r.layers.iter().map(|l| l.chain_id.clone()));
        }
        for key in self.snapshots.active()? {
            if let Some(top) = self.snapshots.active_parent(&key) {
                chains.extend(self.snapshots.chain(&top).unwrap_or_default());
            }
        }
        let mut freed = Freed::default();
        for d in self.content.list()? {
            if !blobs.contains(&d) {
                freed.bytes += self.content.size(&d).unwrap_or(0);
                self.content.remove(&d)?;
                freed.blobs += 1;
            }
        }
        for c in self.snapshots.list()? {
            if !chains.contains(&c) {
                freed.bytes += self.snapshots.disk_usage(&c);
                self.snapshots.remove(&c)?;
                freed.snapshots += 1;
            }
        }
        self.content.clean_ingest()?;
        self.snapshots.clean()?;
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Driver;

    fn record(id: &Digest, chain: &Digest, blob: &Digest) -> ImageRecord {
        ImageRecord {
            id: id.clone(),
            names: vec![],
            repo_digests: vec![],
            manifest: id.clone(),
            manifest_media_type: crate::manifest::OCI_MANIFEST.into(),
            index: None,
            config_media_type: crate::manifest::OCI_CONFIG.into(),
            layers: vec![Layer {
                digest: blob.clone(),
                size: 1,
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                diff_id: chain.clone(),
                chain_id: chain.clone(),
            }],
            created: None,
            platform: "linux/amd64".into(),
            stored_at: 1,
            size: 0,
        }
    }

    #[test]
    fn gc_keeps_what_images_and_active_snapshots_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let images = Images::open(dir.path(), Some(Driver::Copy)).expect("open");
        let blob = b"layer".to_vec();
        let bd = Digest::sha256_of(&blob);
        images.content.write(&bd, &blob).expect("blob");
        let config = b"{}".to_vec();
        let id = Digest::sha256_of(&config);
        images.content.write(&id, &config).expect("config");
        let stray = Digest::sha256_of(b"stray");
        images.content.write(&stray, b"stray").expect("stray");
        let chain = Digest::sha256_of(b"chain");
        images
            .snapshots
            .commit(&chain, None, |_, _| Ok::<_, SnapshotError>(()))
            .expect("commit");
        let name: Reference = "localhost/gc:v1".parse().expect("ref");
        images
            .put(record(&id, &chain, &bd), Some(&name))
            .expect("put");
        let freed = images.gc(&HashSet::new()).expect("gc");
        assert_eq!(
            (freed.blobs, freed.snapshots),
            (1, 0),
            "only the stray blob goes"
        );
        // A container's writable snapshot keeps its chain after the image is removed.
        images.snapshots.prepare("c1", &chain).expect("prepare");
        let (untagged, deleted) = images
            .remove("localhost/gc:v1", false, &|_| None)
            .expect("rmi");
        assert_eq!((untagged.len(), deleted), (1, true));
        let freed = images.gc(&HashSet::new()).expect("gc");
        assert_eq!((freed.blobs, freed.snapshots), (2, 0));
        assert!(images.snapshots.committed(&chain).expect("ok").is_some());
        images.snapshots.remove_active("c1").expect("rm");
        let freed = images.gc(&HashSet::new()).expect("gc");
        assert_eq!(freed.snapshots, 1);
        // And an image a container uses is not removed without --force.
        images
            .put(record(&id, &chain, &bd), Some(&name))
            .expect("put");
        let e = images
            .remove("localhost/gc:v1", false, &|_| Some("web".into()))
            .expect_err("in use");
        assert!(matches!(e, ImageError::InUse { .. }), "{e}");
    }
}
