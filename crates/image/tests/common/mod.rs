//! Shared fixtures for the unpack tests: layer stacks, OCI layouts for umoci, tree
//! snapshots, overlay mounts.
#![allow(dead_code)]

pub mod layer;
pub mod layout;
pub mod tree;

use berth_image::unpack::{self, Compression, UnpackError, UnpackOptions, Unpacked, Whiteouts};
use std::path::{Path, PathBuf};

pub const BOTH: [Whiteouts; 2] = [Whiteouts::Overlay, Whiteouts::Apply];

pub fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {p:?}: {e}"))
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// A security.capability value (VFS_CAP_REVISION_2, effective) granting CAP_NET_RAW.
pub const CAP_NET_RAW: [u8; 20] = [
    0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A refusal names the layer and the entry.
pub fn assert_names(err: &UnpackError, layer: &str, entry: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(layer),
        "error does not name the layer {layer}: {msg}"
    );
    assert!(
        msg.contains(&format!("{entry:?}")),
        "error does not name the entry {entry:?}: {msg}"
    );
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips (returns true, printing why) unless running as root.
pub fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("skipping {test}: needs root (chown, mknod, trusted xattrs, overlay mounts)");
        return true;
    }
    false
}

pub fn have_umoci() -> bool {
    std::process::Command::new("umoci")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A digest-shaped layer name for messages.
pub fn layer_name(tar: &[u8]) -> String {
    berth_distribution::Digest::sha256_of(tar).to_string()
}

pub fn opts(layer: &str, whiteouts: Whiteouts) -> UnpackOptions {
    UnpackOptions {
        whiteouts,
        layer: layer.to_owned(),
        max_size: 1 << 40,
        same_owner: is_root(),
    }
}

/// Unpacks one uncompressed tar.
pub fn unpack_tar(tar: &[u8], dest: &Path, whiteouts: Whiteouts) -> Result<Unpacked, UnpackError> {
    unpack::unpack(
        tar,
        Compression::None,
        dest,
        &opts(&layer_name(tar), whiteouts),
    )
}

/// A temporary work area: `dest/` to unpack into and `canary/` beside it, which hostile
/// layers aim at.
pub struct Area {
    pub tmp: tempfile::TempDir,
    pub dest: PathBuf,
    pub canary: PathBuf,
}

impl Area {
    pub fn new() -> Area {
        let tmp = tempfile::Builder::new()
            .prefix("berth-unpack-")
            .tempdir()
            .expect("tempdir");
        let dest = tmp.path().join("dest");
        let canary = tmp.path().join("canary");
        std::fs::create_dir(&dest).expect("dest");
        std::fs::create_dir(&canary).expect("canary");
        std::fs::write(canary.join("secret"), b"canary").expect("canary file");
        Area { tmp, dest, canary }
    }

    /// Everything outside dest, for "nothing was written outside" checks.
    pub fn outside(&self) -> Vec<String> {
        let mut v: Vec<String> = tree::snapshot(self.tmp.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("dest"))
            .map(|(p, n)| format!("{p:?} {n:?}"))
            .collect();
        v.sort();
        v
    }
}

impl Default for Area {
    fn default() -> Self {
        Area::new()
    }
}

/// A read-only overlay mount of `lowers` (bottom first), unmounted on drop, panics
/// included.
pub struct Overlay {
    pub merged: PathBuf,
}

impl Overlay {
    pub fn mount(lowers: &[PathBuf], merged: &Path) -> Overlay {
        std::fs::create_dir_all(merged).expect("merged dir");
        let lowerdir: Vec<String> = lowers
            .iter()
            .rev()
            .map(|p| p.to_str().expect("utf8 path").to_owned())
            .collect();
        let data = format!("lowerdir={}", lowerdir.join(":"));
        let data = std::ffi::CString::new(data).expect("no NUL");
        rustix::mount::mount(
            "overlay",
            merged,
            "overlay",
            rustix::mount::MountFlags::RDONLY,
            Some(data.as_c_str()),
        )
        .unwrap_or_else(|e| panic!("mount overlay {data:?}: {e}"));
        Overlay {
            merged: merged.to_owned(),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(e) = rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH) {
            eprintln!("unmounting {:?}: {e}", self.merged);
        }
    }
}
