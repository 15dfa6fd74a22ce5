//! `pull`: reference → manifest → config → layers, into the content store and snapshots.
//!
//! Each layer streams in one pass: the registry's bytes are hashed and appended to the
//! content store's ingest file and, in the same read, decompressed and unpacked into the
//! layer's snapshot directory. Nothing is committed until both checks pass: the compressed
//! digest and size (the blob) and the uncompressed digest (the config's diff_id). Layers
//! run in parallel under the overlay driver (each is its own directory); the copy driver
//! needs the parent's tree first, so there they run in order.
//!
//! The async side (tokio) only moves bytes from the network into a bounded channel; hashing,
//! decompression and file writes happen on blocking threads, one per layer.

use crate::config::ImageConfig;
use crate::content::{ContentError, Ingest, Writer};
use crate::images::{ImageError, ImageRecord, Images, Layer};
use crate::manifest::{self, Manifest, ManifestError};
use crate::snapshot::{Driver, SnapshotError};
use crate::unpack::{self, Compression, UnpackError, UnpackOptions, Whiteouts};
use berth_distribution::{Client, Digest, Platform, Reference};
use bytes::Bytes;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// How a layer got into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Found in the store; nothing fetched.
    Exists,
    /// Being fetched and unpacked.
    Pulling,
    Done,
}

/// Progress reports; the CLI draws bars on a terminal and prints lines in a pipe.
pub trait Progress: Send + Sync {
    fn resolved(&self, _reference: &Reference, _manifest: &Digest) {}
    fn layer(&self, _digest: &Digest, _size: u64, _state: LayerState) {}
    fn bytes(&self, _digest: &Digest, _n: u64) {}
}

/// Reports nothing (`--quiet`, library callers).
pub struct Quiet;
impl Progress for Quiet {}

pub struct PullOptions {
    pub platform: Platform,
    /// Layers fetched at once.
    pub jobs: usize,
    /// Bound on one layer's uncompressed size (decompression bombs).
    pub max_layer_size: u64,
    /// Chown unpacked files (root).
    pub same_owner: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            jobs: 4,
            max_layer_size: 64 << 30,
            same_owner: rustix::process::geteuid().is_root(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] berth_distribution::Error),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("layer {layer}: uncompressed content hashes to {actual}, but the config's rootfs.diff_ids says {expected} (image-spec config.md#layer-diffid)")]
    DiffId {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} {digest} is {size} bytes, more than the {limit} berth accepts for it")]
    TooBig {
        what: &'static str,
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("layer {0}: the unpack worker stopped unexpectedly")]
    Worker(Digest),
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const SMALL_BLOB_LIMIT: u64 = 16 << 20;

/// Reads a small blob (config) from the store or the registry, verified.
async fn small_blob(
    images: &Images,
    client: &Client,
    r: &Reference,
    d: &manifest::Descriptor,
) -> Result<Vec<u8>, PullError> {
    if images.content.size(&d.digest).is_none() {
        if d.size > SMALL_BLOB_LIMIT {
            return Err(PullError::TooBig {
                what: "config",
                digest: d.digest.clone(),
                size: d.size,
                limit: SMALL_BLOB_LIMIT,
            });
        }
        use futures_util::StreamExt;
        let mut s = client.get_blob(r, &d.digest, d.size, 0).await?;
        let mut buf = Vec::with_capacity(d.size as usize);
        while let Some(chunk) = s.next().await {
            buf.extend_from_slice(&chunk?);
        }
        images.content.write(&d.digest, &buf)?;
    }
    Ok(images.content.read(&d.digest)?)
}

/// Pulls `r` and records it under its name. A tag already pulled, whose manifest digest
/// the registry still reports and whose layers are all present, costs one HEAD request.
pub async fn pull(
    images: Arc<Images>,
    client: &Client,
    r: &Reference,
    opts: &PullOptions,
    progress: Arc<dyn Progress>,
) -> Result<ImageRecord, PullError> {
    if let Some(rec) = warm(&images, client, r).await? {
        progress.resolved(r, &rec.manifest);
        for l in &rec.layers {
            progress.layer(&l.digest, l.size, LayerState::Exists);
        }
        return Ok(rec);
    }
    let top = client.get_manifest(r).await?;
    images.content.write(&top.digest, &top.bytes)?;
    let (index, fetched) = if manifest::is_index(&top.media_type) {
        let chosen = berth_distribution::select_manifest(&top.bytes, &opts.platform)?;
        let m = client
            .get_manifest(&r.with_digest(chosen.digest.clone()))
            .await?;
        images.content.write(&m.digest, &m.bytes)?;
        (Some(top.digest.clone()), m)
    } else {
        (None, top)
    };
    progress.resolved(r, &fetched.digest);
    let m = Manifest::parse(&fetched.digest, &fetched.media_type, &fetched.bytes)?;
    let config_bytes = small_blob(&images, client, r, &m.config).await?;
    let config = ImageConfig::parse(&m.config.digest, &config_bytes, m.layers.len())?;
    let chains = config.chain_ids();

    let jobs = match images.snapshots.driver() {
        Driver::Overlay => opts.jobs.max(1),
        Driver::Copy => 1,
    };
    let mut layer_jobs = Vec::new();
    for (i, l) in m.layers.iter().enumerate() {
        layer_jobs.push(LayerJob {
            images: images.clone(),
            client: client.clone(),
            reference: r.clone(),
            desc: l.clone(),
            diff_id: config.rootfs.diff_ids[i].clone(),
            chain: chains[i].clone(),
            parent: i.checked_sub(1).map(|p| chains[p].clone()),
            unpack: unpack_options(&images, &l.digest, opts),
            progress: progress.clone(),
        });
    }
    if jobs == 1 {
        // In order: the copy driver builds each layer on its parent's tree.
        for job in layer_jobs {
            job.run().await?;
        }
    } else {
        let gate = Arc::new(Semaphore::new(jobs));
        let tasks: Vec<_> = layer_jobs
            .into_iter()
            .map(|job| {
                let gate = gate.clone();
                let digest = job.desc.digest.clone();
                let task = tokio::spawn(async move {
                    let _permit = gate
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    job.run().await
                });
                (digest, task)
            })
            .collect();
        // Wait for all (no half-written layer keeps running behind an error), report the first.
        let mut first_err = None;
        for (digest, t) in tasks {
            let res = t.await.unwrap_or(Err(PullError::Worker(digest)));
            if let (Err(e), None) = (res, &first_err) {
                first_err = Some(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }

    let mut size = 0;
    let layers: Vec<Layer> = m
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            size += images.snapshots.disk_usage(&chains[i]);
            Layer {
                digest: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                diff_id: config.rootfs.diff_ids[i].clone(),
                chain_id: chains[i].clone(),
            }
        })
        .collect();
    let rec = ImageRecord {
        id: m.config.digest.clone(),
        names: Vec::new(),
        repo_digests: vec![format!(
            "{}@{}",
            r.name(),
            index.as_ref().unwrap_or(&fetched.digest)
        )],
        manifest: fetched.digest.clone(),
        manifest_media_type: fetched.media_type.clone(),
        index,
        config_media_type: m.config.media_type.clone(),
        layers,
        created: config.created.clone(),
        platform: config.platform(),
        stored_at: now(),
        size,
    };
    let name = r.tag().map(|_| r.clone()).filter(|_| r.digest().is_none());
    Ok(images.put(rec, name.as_ref())?)
}

/// The warm path: the record for this name, if the registry's manifest digest is the
/// one recorded and every layer is present.
async fn warm(
    images: &Images,
    client: &Client,
    r: &Reference,
) -> Result<Option<ImageRecord>, PullError> {
    let Ok(rec) = images.find(&r.to_string()) else {
        return Ok(None);
    };
    let complete = rec.layers.iter().all(|l| {
        images
            .snapshots
            .committed(&l.chain_id)
            .ok()
            .flatten()
            .is_some()
            && images.content.size(&l.digest).is_some()
    });
    if !complete {
        return Ok(None);
    }
    if r.digest().is_some() {
        return Ok(Some(rec));
    }
    let Some((digest, _, _)) = client.head_manifest(r).await? else {
        return Ok(None);
    };
    Ok((digest == rec.manifest || Some(&digest) == rec.index.as_ref()).then_some(rec))
}

fn unpack_options(images: &Images, layer: &Digest, opts: &PullOptions) -> UnpackOptions {
    UnpackOptions {
        whiteouts: match images.snapshots.driver() {
            Driver::Overlay => Whiteouts::Overlay,
            Driver::Copy => Whiteouts::Apply,
        },
        layer: layer.to_string(),
        max_size: opts.max_layer_size,
        same_owner: opts.same_owner,
    }
}

/// Unpacks a blob that is already in the content store into `fs`.
fn unpack_stored(
    images: &Images,
    digest: &Digest,
    compression: Compression,
    fs: &std::path::Path,
    uopts: &UnpackOptions,
) -> Result<unpack::Unpacked, PullError> {
    let f = images.content.open(digest)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, f);
    Ok(unpack::unpack(reader, compression, fs, uopts)?)
}

/// The uncompressed content must be what the config's rootfs.diff_ids says.
fn check_diff_id(
    layer: &Digest,
    expected: &Digest,
    got: unpack::Unpacked,
) -> Result<(), PullError> {
    if got.diff_id != *expected {
        return Err(PullError::DiffId {
            layer: layer.clone(),
            expected: expected.clone(),
            actual: got.diff_id,
        });
    }
    Ok(())
}

/// Commits a layer whose blob is already in the content store (load, or a snapshot
/// collected while the blob was kept), checking its diff_id.
pub(crate) fn commit_stored_layer(
    images: &Images,
    layer: &Layer,
    parent: Option<&Digest>,
    opts: &PullOptions,
) -> Result<(), PullError> {
    let compression = Compression::from_media_type(&layer.media_type)?;
    let uopts = unpack_options(images, &layer.digest, opts);
    images.snapshots.commit(&layer.chain_id, parent, |fs, _| {
        let out = unpack_stored(images, &layer.digest, compression, fs, &uopts)?;
        check_diff_id(&layer.digest, &layer.diff_id, out)
    })?;
    Ok(())
}

struct LayerJob {
    images: Arc<Images>,
    client: Client,
    reference: Reference,
    desc: manifest::Descriptor,
    diff_id: Digest,
    chain: Digest,
    parent: Option<Digest>,
    unpack: UnpackOptions,
    progress: Arc<dyn Progress>,
}

type Chunk = Result<Bytes, berth_distribution::Error>;

impl LayerJob {
    async fn run(self) -> Result<(), PullError> {
        let (digest, size) = (self.desc.digest.clone(), self.desc.size);
        let client = self.client.clone();
        let reference = self.reference.clone();
        let progress = self.progress.clone();
        let (offset_tx, offset_rx) = oneshot::channel::<u64>();
        let (tx, rx) = mpsc::channel::<Chunk>(16);
        let worker = tokio::task::spawn_blocking(move || self.work(offset_tx, rx));
        // The worker says where to start (a resumed ingest) or drops the sender when the
        // layer needs no download.
        if let Ok(offset) = offset_rx.await {
            progress.layer(&digest, size, LayerState::Pulling);
            progress.bytes(&digest, offset);
            let net = async {
                use futures_util::StreamExt;
                let mut s = client.get_blob(&reference, &digest, size, offset).await?;
                while let Some(chunk) = s.next().await {
                    let failed = chunk.is_err();
                    if tx.send(chunk).await.is_err() || failed {
                        break;
                    }
                }
                Ok::<_, berth_distribution::Error>(())
            }
            .await;
            drop(tx);
            let done = worker
                .await
                .map_err(|_| PullError::Worker(digest.clone()))?;
            // A network failure explains an unpack error that follows from it.
            net?;
            done?;
        } else {
            drop(tx);
            worker
                .await
                .map_err(|_| PullError::Worker(digest.clone()))??;
        }
        Ok(())
    }

    /// On a blocking thread: ingest and unpack.
    fn work(
        self,
        offset_tx: oneshot::Sender<u64>,
        rx: mpsc::Receiver<Chunk>,
    ) -> Result<(), PullError> {
        let images = &self.images;
        let d = &self.desc;
        let have_blob = images.content.size(&d.digest) == Some(d.size);
        if images.snapshots.committed(&self.chain)?.is_some() {
            if !have_blob {
                // Snapshot kept, blob collected: fetch the blob alone (push and save need it).
                if let Ingest::Write(w) = images.content.ingest(&d.digest, d.size)? {
                    let _ = offset_tx.send(w.offset());
                    Tee::new(*w, rx, self.progress.clone())?.finish()?;
                }
            }
            self.progress.layer(&d.digest, d.size, LayerState::Exists);
            return Ok(());
        }
        let compression = Compression::from_media_type(&d.media_type)?;
        let made = images
            .snapshots
            .commit(&self.chain, self.parent.as_ref(), |fs, _driver| {
                let unpacked = match images.content.ingest(&d.digest, d.size)? {
                    Ingest::Present => {
                        unpack_stored(images, &d.digest, compression, fs, &self.unpack)?
                    }
                    Ingest::Write(w) => {
                        let _ = offset_tx.send(w.offset());
                        let mut tee = Tee::new(*w, rx, self.progress.clone())?;
                        let out = unpack::unpack(&mut tee, compression, fs, &self.unpack)
                            .map_err(|e| tee.explain(e))?;
                        tee.finish()?;
                        out
                    }
                };
                check_diff_id(&d.digest, &self.diff_id, unpacked)
            })?;
        self.progress.layer(
            &d.digest,
            d.size,
            if made.is_some() {
                LayerState::Done
            } else {
                LayerState::Exists
            },
        );
        Ok(())
    }
}

/// Reads the blob for the unpacker: first the bytes a killed pull left in the ingest file,
/// then the network's, each network chunk appended to the ingest file (and hashed) as it
/// passes through.
struct Tee {
    prefix: Option<std::io::Take<std::fs::File>>,
    rx: mpsc::Receiver<Chunk>,
    cur: Bytes,
    writer: Writer,
    failure: Option<PullError>,
    progress: Arc<dyn Progress>,
}

impl Tee {
    fn new(
        writer: Writer,
        rx: mpsc::Receiver<Chunk>,
        progress: Arc<dyn Progress>,
    ) -> Result<Tee, PullError> {
        let prefix = if writer.offset() > 0 {
            Some(writer.prefix()?)
        } else {
            None
        };
        Ok(Tee {
            prefix,
            rx,
            cur: Bytes::new(),
            writer,
            failure: None,
            progress,
        })
    }

    /// The real cause behind an I/O error the unpacker saw from this reader.
    fn error(&mut self, e: std::io::Error) -> PullError {
        self.failure.take().unwrap_or_else(|| {
            PullError::Content(ContentError::Io {
                op: "read",
                path: self.writer.digest().to_string().into(),
                source: e,
            })
        })
    }

    fn explain(&mut self, e: UnpackError) -> PullError {
        self.failure.take().unwrap_or(PullError::Unpack(e))
    }

    /// Reads what is left (the unpacker stops at the end of its input already; this
    /// makes sure of it) and commits the verified blob.
    fn finish(mut self) -> Result<(), PullError> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(|e| self.error(e))?;
        Ok(self.writer.commit()?)
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(p) = &mut self.prefix {
            let n = p.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.prefix = None;
        }
        if self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => {
                    self.failure = Some(PullError::Registry(e));
                    return Err(std::io::Error::other("download failed"));
                }
                Some(Ok(b)) => {
                    if let Err(e) = self.writer.write_all_checked(&b) {
                        self.failure = Some(PullError::Content(e));
                        return Err(std::io::Error::other("blob too large"));
                    }
                    self.progress.bytes(self.writer.digest(), b.len() as u64);
                    self.cur = b;
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}
