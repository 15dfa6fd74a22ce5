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
