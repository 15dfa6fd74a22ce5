//! An OCI image layout (image-spec image-layout.md) holding one image, for umoci.

use berth_distribution::Digest;
use serde_json::json;
use std::path::Path;

pub struct Blob {
    pub digest: Digest,
    pub size: usize,
}

fn put_blob(layout: &Path, data: &[u8]) -> Blob {
    let digest = Digest::sha256_of(data);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).expect("blobs dir");
    std::fs::write(dir.join(digest.hex()), data).expect("blob");
    Blob {
        digest,
        size: data.len(),
    }
}

/// Writes the image `tag` with layers `tars` (uncompressed, for the diff_ids), stored as
/// `gzipped` (the same tars gzip-compressed).
pub fn write(layout: &Path, tag: &str, tars: &[Vec<u8>], gzipped: &[Vec<u8>]) {
    std::fs::create_dir_all(layout).expect("layout dir");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for (tar, gz) in tars.iter().zip(gzipped) {
        diff_ids.push(Digest::sha256_of(tar).to_string());
        let b = put_blob(layout, gz);
        layers.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": b.digest.to_string(),
            "size": b.size,
        }));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let c = put_blob(layout, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": c.digest.to_string(),
            "size": c.size,
        },
        "layers": layers,
    });
    let m = put_blob(layout, manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m.digest.to_string(),
            "size": m.size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
}
