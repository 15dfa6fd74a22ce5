//! `save` and `load`: images as one tar holding an OCI image layout (oci-layout,
//! index.json, blobs/) and, in the same tar, docker-archive's manifest.json pointing at
//! the same blobs, as docker 25 writes it. So `podman load`, `docker load`, `skopeo` and
//! `umoci` all read what berth saves; `load` reads either form, including legacy docker
//! archives (`ID/layer.tar`), whose blobs are named by hashing them here.

use crate::config::ImageConfig;
use crate::content::{ContentError, Ingest};
use crate::images::{ImageError, ImageRecord, Images, Layer};
use crate::manifest::{self, Descriptor, Manifest};
use crate::pull::{commit_stored_layer, PullError, PullOptions};
use berth_distribution::{Digest, Reference};
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("archive: {0}")]
    Format(String),
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

fn familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

/// Writes `images` (record, and the name to save it under) as one tar.
pub fn save<W: Write>(
    images: &Images,
    chosen: &[(ImageRecord, Option<String>)],
    out: W,
) -> Result<(), ArchiveError> {
    let mut tar = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    let mut index = vec![];
    let mut docker = vec![];
    let add_file = |tar: &mut tar::Builder<W>, path: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, path, data)
    };
    add_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for (rec, name) in chosen {
        for d in rec.blobs().filter(|d| Some(*d) != rec.index.as_ref()) {
            if written.insert(d.clone()) {
                let f = images.content.open(d)?;
                let mut h = tar::Header::new_ustar();
                h.set_mode(0o644);
                h.set_size(f.metadata()?.len());
                h.set_mtime(0);
                tar.append_data(&mut h, blob_path(d), f)?;
            }
        }
        let size = images.content.size(&rec.manifest).unwrap_or(0);
        let mut desc =
            json!({"mediaType": rec.manifest_media_type, "digest": rec.manifest, "size": size});
        if let Some(n) = name {
            let tag = n
                .parse::<Reference>()
                .ok()
                .and_then(|r| r.tag().map(str::to_string))
                .unwrap_or_default();
            desc["annotations"] =
                json!({"io.containerd.image.name": n, "org.opencontainers.image.ref.name": tag});
        }
        index.push(desc);
        docker.push(json!({
            "Config": blob_path(&rec.id),
            "RepoTags": name.iter().map(|n| familiar(n)).collect::<Vec<_>>(),
            "Layers": rec.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": index});
    add_file(
        &mut tar,
        "index.json",
        &serde_json::to_vec(&index).map_err(std::io::Error::other)?,
    )?;
    add_file(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec(&docker).map_err(std::io::Error::other)?,
    )?;
    tar.into_inner()?.flush()?;
    Ok(())
}

/// Bounded read of a metadata file from the archive.
fn small<R: Read>(e: R, path: &str) -> Result<Vec<u8>, ArchiveError> {
    let mut v = Vec::new();
    e.take(16 << 20).read_to_end(&mut v)?;
    if v.len() >= 16 << 20 {
        return Err(ArchiveError::Format(format!(
            "{path} is larger than 16 MiB"
        )));
    }
    Ok(v)
}

/// Reads images from a tar and stores them; returns the records.
pub fn load<R: Read>(
    images: &Images,
    input: R,
    opts: &PullOptions,
) -> Result<Vec<ImageRecord>, ArchiveError> {
    let mut tar = tar::Archive::new(input);
    let mut index_json = None;
    let mut manifest_json = None;
    // Archive path → digest of what was stored for it.
    let mut stored: HashMap<String, Digest> = HashMap::new();
    for entry in tar.entries()? {
        let mut e = entry?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let path = e
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        match path.as_str() {
            "index.json" => index_json = Some(small(&mut e, &path)?),
            "manifest.json" => manifest_json = Some(small(&mut e, &path)?),
            "oci-layout" | "repositories" => {}
            _ => {
                let size = e.header().size()?;
                let named = path
                    .strip_prefix("blobs/")
                    .and_then(|p| p.split_once('/'))
                    .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok());
                let d = match named {
                    // Verified against its name on the way in.
                    Some(d) => {
                        if let Ingest::Write(mut w) = images.content.ingest(&d, size)? {
                            w.restart()?;
                            copy_into(&mut e, |b| w.write_all_checked(b))?;
                            w.commit()?;
                        }
                        d
                    }
                    // Legacy docker-archive paths: the content names itself.
                    None => images.content.import(&mut e, size)?,
                };
                stored.insert(path, d);
            }
        }
    }
    let mut out = vec![];
    if let Some(index) = index_json {
        let index: serde_json::Value = serde_json::from_slice(&index)
            .map_err(|e| ArchiveError::Format(format!("index.json: {e}")))?;
        for m in index["manifests"].as_array().into_iter().flatten() {
            let desc: Descriptor = serde_json::from_value(m.clone())
                .map_err(|e| ArchiveError::Format(format!("index.json: {e}")))?;
            if manifest::is_index(&desc.media_type) {
                continue;
            }
            let bytes = images.content.read(&desc.digest)?;
            let man = Manifest::parse(&desc.digest, &desc.media_type, &bytes)?;
            let name = m["annotations"]["io.containerd.image.name"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    m["annotations"]["org.opencontainers.image.ref.name"]
                        .as_str()
                        .map(str::to_string)
                });
            out.push(record(
                images,
                &desc.digest,
                &desc.media_type,
                &man,
                name.as_deref(),
                opts,
            )?);
        }
    } else if let Some(mj) = manifest_json {
        let list: Vec<serde_json::Value> = serde_json::from_slice(&mj)
            .map_err(|e| ArchiveError::Format(format!("manifest.json: {e}")))?;
        for item in list {
            let lookup = |p: &str| {
                stored.get(p).cloned().ok_or_else(|| {
                    ArchiveError::Format(format!(
                        "manifest.json names {p:?}, which is not in the archive"
                    ))
                })
            };
            let config = lookup(item["Config"].as_str().unwrap_or_default())?;
            let mut layers = vec![];
            for l in item["Layers"].as_array().into_iter().flatten() {
                let d = lookup(l.as_str().unwrap_or_default())?;
                let mut head = [0u8; 8];
                let n = images.content.open(&d)?.read(&mut head)?;
                let media_type = match crate::unpack::Compression::detect(&head[..n]) {
                    crate::unpack::Compression::Gzip => {
                        "application/vnd.docker.image.rootfs.diff.tar.gzip"
                    }
                    crate::unpack::Compression::Zstd => {
                        "application/vnd.oci.image.layer.v1.tar+zstd"
                    }
                    crate::unpack::Compression::None => {
                        "application/vnd.docker.image.rootfs.diff.tar"
                    }
                };
                layers.push(json!({"mediaType": media_type, "digest": d, "size": images.content.size(&d).unwrap_or(0)}));
            }
            let man = json!({
                "schemaVersion": 2,
                "mediaType": manifest::DOCKER_MANIFEST,
                "config": {"mediaType": manifest::DOCKER_CONFIG, "digest": config, "size": images.content.size(&config).unwrap_or(0)},
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&man).map_err(std::io::Error::other)?;
            let md = Digest::sha256_of(&bytes);
            images.content.write(&md, &bytes)?;
            let parsed = Manifest::parse(&md, manifest::DOCKER_MANIFEST, &bytes)?;
            let tags: Vec<String> = item["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            let mut rec = record(
                images,
                &md,
                manifest::DOCKER_MANIFEST,
                &parsed,
                tags.first().map(String::as_str),
                opts,
            )?;
            for t in tags.iter().skip(1) {
                rec = images.tag(&rec.id.to_string(), t)?;
            }
            out.push(rec);
        }
    } else {
        return Err(ArchiveError::Format(
            "neither index.json (OCI layout) nor manifest.json (docker-archive) found".into(),
        ));
    }
    Ok(out)
}

fn copy_into<R: Read>(
    r: &mut R,
    mut sink: impl FnMut(&[u8]) -> Result<(), ContentError>,
) -> Result<(), ArchiveError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        sink(&buf[..n])?;
    }
}

fn record(
    images: &Images,
    manifest_digest: &Digest,
    media_type: &str,
    m: &Manifest,
    name: Option<&str>,
    opts: &PullOptions,
) -> Result<ImageRecord, ArchiveError> {
    let config_bytes = images.content.read(&m.config.digest)?;
    let config = ImageConfig::parse(&m.config.digest, &config_bytes, m.layers.len())
        .map_err(PullError::from)?;
    let chains = config.chain_ids();
    let mut layers = vec![];
    for (i, l) in m.layers.iter().enumerate() {
        let layer = Layer {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
            diff_id: config.rootfs.diff_ids[i].clone(),
            chain_id: chains[i].clone(),
        };
        commit_stored_layer(images, &layer, i.checked_sub(1).map(|p| &chains[p]), opts)?;
        layers.push(layer);
    }
    let size = chains.iter().map(|c| images.snapshots.disk_usage(c)).sum();
    let reference = name.and_then(|n| n.parse::<Reference>().ok());
    let rec = ImageRecord {
        id: m.config.digest.clone(),
        names: vec![],
        repo_digests: reference
            .iter()
            .map(|r| format!("{}@{manifest_digest}", r.name()))
            .collect(),
        manifest: manifest_digest.clone(),
        manifest_media_type: media_type.into(),
        index: None,
        config_media_type: m.config.media_type.clone(),
        layers,
        created: config.created.clone(),
        platform: config.platform(),
        stored_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        size,
    };
    Ok(images.put(rec, reference.as_ref().filter(|r| r.tag().is_some()))?)
}
