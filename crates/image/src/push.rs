//! `push`: an image's blobs, then its manifest. Blobs the registry has are skipped; blobs
//! in another repository of the same registry are mounted rather than uploaded.

use crate::images::{ImageError, ImageRecord, Images};
use berth_distribution::{Client, Digest, Reference};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] berth_distribution::Error),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
}

pub async fn push(
    images: &Images,
    client: &Client,
    rec: &ImageRecord,
    dest: &Reference,
    verbose: bool,
) -> Result<Digest, PushError> {
    // Repositories on the destination registry that already hold this image's blobs.
    let sources: Vec<String> = rec
        .repo_digests
        .iter()
        .filter_map(|d| d.split_once('@').map(|(name, _)| name.to_string()))
        .filter_map(|name| {
            name.strip_prefix(&format!("{}/", dest.registry()))
                .map(str::to_string)
        })
        .filter(|repo| repo != dest.repository())
        .collect();
    let mut blobs: Vec<(Digest, u64)> = rec
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    let config_size = images.content.size(&rec.id).unwrap_or(0);
    blobs.push((rec.id.clone(), config_size));
    for (d, size) in blobs {
        if client.blob_exists(dest, &d).await?.is_some() {
            if verbose {
                eprintln!("Blob {}: already on the registry", d.short());
            }
            continue;
        }
        let mut mounted = false;
        for from in &sources {
            if client.mount_blob(dest, from, &d).await? {
                if verbose {
                    eprintln!("Blob {}: mounted from {from}", d.short());
                }
                mounted = true;
                break;
            }
        }
        if mounted {
            continue;
        }
        let path = images.content.path(&d);
        if images.content.size(&d).is_none() {
            return Err(crate::content::ContentError::NotFound(d).into());
        }
        client.push_blob(dest, &d, size, &path).await?;
        if verbose {
            eprintln!("Blob {}: pushed", d.short());
        }
    }
    let manifest = images.content.read(&rec.manifest)?;
    Ok(client
        .put_manifest(dest, &rec.manifest_media_type, &manifest)
        .await?)
}
