//! Test images without a network: OCI image layouts built here (busybox-static plus
//! generated layers), pushed to a local registry with skopeo, an implementation
//! independent of berth's own.

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// One file in a generated layer.
pub enum Entry {
    Dir(&'static str, u32),
    File(String, Vec<u8>, u32),
    Symlink(&'static str, &'static str),
}

/// An image under construction: layers (bottom first) and a config.
pub struct ImageBuilder {
    layers: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
    pub config: Value,
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// An uncompressed layer tar from entries.
pub fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::Dir(p, mode) => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, p, std::io::empty())?;
            }
            Entry::File(p, data, mode) => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, p, data.as_slice())?;
            }
            Entry::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, p, target)?;
            }
        }
    }
    Ok(b.into_inner()?)
}

/// The busybox-static root layer: /bin/busybox, applet links, /etc/passwd and group.
pub fn busybox_layer() -> Result<Vec<u8>> {
    let bb = std::fs::read(crate::BUSYBOX).context("busybox-static is needed for test images")?;
    let mut entries = vec![
        Entry::Dir("bin", 0o755),
        Entry::File("bin/busybox".into(), bb, 0o755),
        Entry::Dir("etc", 0o755),
        Entry::File(
            "etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                .to_vec(),
            0o644,
        ),
        Entry::File(
            "etc/group".into(),
            b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
            0o644,
        ),
        Entry::Dir("root", 0o700),
        Entry::Dir("tmp", 0o1777),
    ];
    for a in [
        "sh", "true", "false", "sleep", "cat", "ls", "echo", "id", "env", "httpd", "wget", "grep",
        "touch", "mkdir", "stat", "hostname",
    ] {
        let link: &'static str = Box::leak(format!("bin/{a}").into_boxed_str());
        entries.push(Entry::Symlink(link, "busybox"));
    }
    layer_tar(&entries)
}

impl ImageBuilder {
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            layers: Vec::new(),
            diff_ids: Vec::new(),
            config: json!({
                "architecture": "amd64",
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": []
            }),
        }
    }

    /// A busybox image.
    pub fn busybox() -> Result<ImageBuilder> {
        let mut b = ImageBuilder::new();
        b.layer(busybox_layer()?);
        Ok(b)
    }

    /// Adds an uncompressed layer tar (stored gzip-compressed).
    pub fn layer(&mut self, tar: Vec<u8>) -> &mut Self {
        self.diff_ids.push(sha256(&tar));
        self.layers.push(tar);
        self
    }

    /// Writes an OCI image layout at `dir` with the image tagged `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) -> Result<String> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let put = |data: &[u8]| -> Result<(String, usize)> {
            let d = sha256(data);
            std::fs::write(blobs.join(&d[7..]), data)?;
            Ok((d, data.len()))
        };
        let mut layer_descs = vec![];
        for l in &self.layers {
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, l)?;
            let (d, n) = put(&gz.finish()?)?;
            layer_descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}));
        }
        let mut config = self.config.clone();
        config["rootfs"]["diff_ids"] = json!(self.diff_ids);
        let (cd, cn) = put(&serde_json::to_vec(&config)?)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": layer_descs,
        });
        let (md, mn) = put(&serde_json::to_vec(&manifest)?)?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                           "annotations": {"org.opencontainers.image.ref.name": tag}}]
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(cd)
    }

    /// Builds the image and pushes it to `registry` (e.g. 127.0.0.1:5000) as `name:tag`
    /// with skopeo. Returns the image id (config digest).
    pub fn push(&self, registry: &str, name: &str, tag: &str) -> Result<String> {
        let dir = tempfile::tempdir()?;
        let id = self.write_layout(dir.path(), tag)?;
        skopeo_copy(
            &format!("oci:{}:{tag}", dir.path().display()),
            &format!("docker://{registry}/{name}:{tag}"),
        )?;
        Ok(id)
    }
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

pub fn skopeo_copy(from: &str, to: &str) -> Result<()> {
    let out = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--src-tls-verify=false",
        ])
        .args(["--insecure-policy", from, to])
        .output()
        .context("running skopeo (install the skopeo package)")?;
    if !out.status.success() {
        bail!(
            "skopeo copy {from} {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Deterministic, moderately compressible bytes (like binaries and text in real layers).
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Bytes from a small alphabet compress about 2:1 with gzip.
        out.push(b"abcdefghijklmnop"[(x & 15) as usize]);
        out.push((x >> 8) as u8);
        out.extend_from_slice(b"berth ");
    }
    out.truncate(len);
    out
}

/// Swaps the two diff_ids of the image tagged `tag` in an OCI layout (a config that lies
/// about its layers), rewriting config, manifest and index so the digests stay valid.
pub fn swap_diff_ids(dir: &Path, tag: &str) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    let read = |d: &str| -> Result<Value> {
        Ok(serde_json::from_slice(&std::fs::read(
            blobs.join(&d[7..]),
        )?)?)
    };
    let put = |v: &Value| -> Result<(String, usize)> {
        let data = serde_json::to_vec(v)?;
        let d = sha256(&data);
        std::fs::write(blobs.join(&d[7..]), &data)?;
        Ok((d, data.len()))
    };
    let mut index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    let m = index["manifests"]
        .as_array_mut()
        .context("index")?
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .context("tag")?;
    let mut manifest = read(m["digest"].as_str().context("digest")?)?;
    let mut config = read(manifest["config"]["digest"].as_str().context("config")?)?;
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("diff_ids")?
        .swap(0, 1);
    let (cd, cn) = put(&config)?;
    manifest["config"]["digest"] = json!(cd);
    manifest["config"]["size"] = json!(cn);
    let (md, mn) = put(&manifest)?;
    m["digest"] = json!(md);
    m["size"] = json!(mn);
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

/// Writes an OCI layout whose tag names an index of several images, one per platform
/// (`os/arch[/variant]`); each image's config says its platform.
pub fn write_index_layout(
    dir: &Path,
    tag: &str,
    images: &mut [(ImageBuilder, &str)],
) -> Result<()> {
    let mut manifests = vec![];
    for (i, (img, platform)) in images.iter_mut().enumerate() {
        let parts: Vec<&str> = platform.split('/').collect();
        img.config["os"] = json!(parts[0]);
        img.config["architecture"] = json!(parts[1]);
        if let Some(v) = parts.get(2) {
            img.config["variant"] = json!(v);
        }
        let sub = dir.join(format!(".sub{i}"));
        img.write_layout(&sub, tag)?;
        let index: Value = serde_json::from_slice(&std::fs::read(sub.join("index.json"))?)?;
        let mut desc = index["manifests"][0].clone();
        desc.as_object_mut()
            .context("descriptor")?
            .remove("annotations");
        let mut p = json!({"os": parts[0], "architecture": parts[1]});
        if let Some(v) = parts.get(2) {
            p["variant"] = json!(v);
        }
        desc["platform"] = p;
        manifests.push(desc);
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        for e in std::fs::read_dir(sub.join("blobs/sha256"))? {
            let e = e?;
            std::fs::rename(e.path(), blobs.join(e.file_name()))?;
        }
        std::fs::remove_dir_all(&sub)?;
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let data = serde_json::to_vec(&index)?;
    let d = sha256(&data);
    std::fs::write(dir.join("blobs/sha256").join(&d[7..]), &data)?;
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": data.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}
