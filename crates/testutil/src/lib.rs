//! OCI bundles for tests, made from the host's busybox-static: a rootfs holding
//! /bin/busybox and its applets as symlinks, and a config.json shaped like
//! `runc spec`'s (without a terminal). No network, no image store.
//!
//! [`registry`]: a real OCI registry (docker-registry) on 127.0.0.1 for registry tests.

pub mod image;
pub mod registry;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

const APPLETS: &[&str] = &[
    "sh",
    "true",
    "false",
    "sleep",
    "cat",
    "ls",
    "id",
    "hostname",
    "echo",
    "mount",
    "touch",
    "mkdir",
    "grep",
    "head",
    "stat",
    "readlink",
    "kill",
    "wc",
    "env",
    "pwd",
    "umask",
    "test",
    "printf",
    "domainname",
    "ps",
];

/// A bundle directory with a busybox rootfs and an editable config.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    _tmp: Option<tempfile::TempDir>,
}

impl Bundle {
    /// A bundle in a new temporary directory (removed on drop) running `args`.
    pub fn busybox(args: &[&str]) -> anyhow::Result<Bundle> {
        let tmp = tempfile::Builder::new().prefix("berth-bundle-").tempdir()?;
        let mut b = Bundle::create_in(tmp.path(), args)?;
        b._tmp = Some(tmp);
        Ok(b)
    }

    /// A bundle at `dir` (created if needed, kept).
    pub fn create_in(dir: &Path, args: &[&str]) -> anyhow::Result<Bundle> {
        let rootfs = dir.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin)?;
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        if !Path::new(BUSYBOX).exists() {
            anyhow::bail!("{BUSYBOX} is missing: install busybox-static");
        }
        std::fs::copy(BUSYBOX, bin.join("busybox"))?;
        for a in APPLETS {
            let link = bin.join(a);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link)?;
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )?;
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
        let b = Bundle {
            dir: dir.to_path_buf(),
            config: default_config(args),
            _tmp: None,
        };
        b.write()?;
        Ok(b)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Writes config.json from `self.config`.
    pub fn write(&self) -> anyhow::Result<()> {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config)?,
        )?;
        Ok(())
    }

    /// Edits the config and writes it.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> anyhow::Result<()> {
        f(&mut self.config);
        self.write()
    }
}

/// berth-oci's default spec (runc's shape), without a terminal or a cgroup namespace
/// (as `runc spec`), running `args`.
pub fn default_config(args: &[&str]) -> Value {
    let mut c = berth_runtime::spec::default::default_spec(false, 0, 0);
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = json!(args);
    c["hostname"] = "berth-test".into();
    if let Some(ns) = c["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "cgroup");
    }
    c
}
