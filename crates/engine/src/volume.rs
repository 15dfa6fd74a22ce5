//! Volumes: directories that containers mount and that outlive them, as docker's and
//! podman's `local` driver keeps them. A record per volume lives in the metadata store
//! (table `volumes`); the content lives on disk:
//!
//! ```text
//! ROOT/volumes/NAME/_data       what containers mount (the volume's "Mountpoint")
//! ROOT/volumes/NAME/disk.ext4   only with a size limit: the filesystem mounted on _data
//! ROOT/volumes/.lock            flock: create, mount, pre-fill and remove take turns
//! ```
//!
//! Lifecycle: **created** (record, then directories; `volume create`, or the first
//! container that names it, or each container for an anonymous one) → **pre-filled** by
//! the first container that mounts it, from its image (copy_up.rs), unless it asked for
//! `nocopy` → **in use** while any container record lists it (even a stopped one) →
//! **removed** (record, then files) by `volume rm`/`prune`, or for an anonymous one by
//! `rm -v`/`--rm` of its container.
//!
//! Size limits (`--opt size=100m`): the volume is an ext4 filesystem of that size in a
//! sparse file (made by `mkfs.ext4` from e2fsprogs), attached to a loop device with
//! autoclear and mounted on `_data` (nosuid, nodev) on demand: when a container is
//! created and before each start ([`Volumes::ensure_mounted`]), so a reboot, which
//! empties the mount table, costs nothing but a remount. The kernel enforces the size:
//! a write past it fails with ENOSPC. This works on any host filesystem, where the
//! alternatives do not: project quotas need XFS or ext4 mounted with `prjquota` under
//! ROOT, and a tmpfs would not survive a reboot. The cost is ext4's metadata (about 14%
//! of a 16 or 100 MiB volume, 4% of 1 GiB) and one loop device per mounted volume. While
//! unmounted, `_data` is marked immutable where the host filesystem allows it, so a
//! container that got the bare directory by mistake fails to write instead of filling
//! the host's disk.

use crate::copy_up::CopyError;
use berth_store::{Store, StoreError, Table, Tx};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) const VOLUMES: Table = Table::new("volumes");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The limit in bytes: an ext4 filesystem of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Made for one container (the image's `Volumes`, `-v /path`): `rm -v` removes it.
    #[serde(default)]
    pub anonymous: bool,
    /// Not yet mounted by any container: the first one pre-fills it from its image.
    #[serde(default)]
    pub needs_copy: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// None: an anonymous volume with a random name.
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub size: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("volume {0:?} not found")]
    NotFound(String),
    #[error("volume {0:?} already exists")]
    Exists(String),
    #[error("volume name {0:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")]
    BadName(String),
    #[error("volume {volume} is in use by container {container}: remove the container first, or use --force to remove both")]
    InUse { volume: String, container: String },
    #[error("volume {volume}: size {size} is below the {MIN_SIZE}-byte minimum of an ext4 filesystem with a journal")]
    TooSmall { volume: String, size: u64 },
    #[error("volume {volume}: mkfs.ext4 (e2fsprogs) failed: {detail}")]
    Mkfs { volume: String, detail: String },
    #[error("volume {volume}: {op} {path}: {source}")]
    Io {
        volume: String,
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Copy(#[from] CopyError),
}

/// Smaller ext4 filesystems have no room for a journal.
pub const MIN_SIZE: u64 = 2 << 20;

/// docker's rule for volume names.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The volume store under a berth root.
pub struct Volumes {
    dir: PathBuf,
    meta: Store,
}

impl Volumes {
    pub fn open(root: &Path) -> Volumes {
        Volumes::with_store(root, Store::new(root.join("berth.redb")))
    }

    /// The volumes under `root`, recorded in `meta` (the engine shares its store's open).
    pub fn with_store(root: &Path, meta: Store) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
            meta,
        }
    }

    /// The directory containers mount.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    fn io<'a>(
        &self,
        volume: &'a str,
        op: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
        move |source| VolumeError::Io {
            volume: volume.into(),
            op,
            path: path.into(),
            source,
        }
    }

    /// Holds the store-wide volume lock until dropped.
    pub(crate) fn lock(&self) -> Result<std::fs::File, VolumeError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(self.io("-", "create", &self.dir))?;
        let p = self.dir.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(self.io("-", "open", &p))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.io("-", "lock", &p)(e.into()))?;
        Ok(f)
    }

    /// A record for a new volume (not stored yet): validated, named (randomly if
    /// anonymous), marked for pre-filling.
    pub fn new_record(o: &CreateOptions) -> Result<Volume, VolumeError> {
        let (name, anonymous) = match &o.name {
            Some(n) if !valid_name(n) => return Err(VolumeError::BadName(n.clone())),
            Some(n) => (n.clone(), false),
            None => {
                let mut b = [0u8; 32];
                rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).map_err(
                    |e| VolumeError::Io {
                        volume: "-".into(),
                        op: "getrandom",
                        path: "-".into(),
                        source: e.into(),
                    },
                )?;
                (b.iter().map(|x| format!("{x:02x}")).collect(), true)
            }
        };
        if let Some(size) = o.size.filter(|s| *s < MIN_SIZE) {
            return Err(VolumeError::TooSmall { volume: name, size });
        }
        Ok(Volume {
            name,
            created: now(),
            labels: o.labels.clone(),
            size: o.size,
            anonymous,
            needs_copy: true,
        })
    }

    /// Stores a new record in `tx`; refuses a name in use.
    pub(crate) fn insert(tx: &mut Tx<'_>, v: &Volume) -> Result<(), VolumeError> {
        if tx.get::<Volume>(VOLUMES, &v.name)?.is_some() {
            return Err(VolumeError::Exists(v.name.clone()));
        }
        tx.put(VOLUMES, &v.name, v)?;
        Ok(())
    }

    /// `volume create`: the record, then its directories (and filesystem).
    pub fn create(&self, o: &CreateOptions) -> Result<Volume, VolumeError> {
        let v = Volumes::new_record(o)?;
        self.meta.write(|tx| Volumes::insert(tx, &v))?;
        if let Err(e) = self.prepare(&v, true) {
            let _ = self.meta.write(|tx| tx.remove(VOLUMES, &v.name));
            let _ = self.remove_files(&v.name);
            return Err(e);
        }
        Ok(v)
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        self.meta
            .read(|r| r.get::<Volume>(VOLUMES, name))?
            .ok_or_else(|| VolumeError::NotFound(name.into()))
    }

    /// All volumes, by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        Ok(self
            .meta
            .read(|r| r.list::<Volume>(VOLUMES))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Makes sure the volume's directory exists and, with a size limit, that its
    /// filesystem exists and is mounted on `_data`. Call before each container start:
    /// after a reboot the mount is gone. `fresh`: the record was just made, so anything
    /// on disk under its name is a leftover of an interrupted removal.
    pub fn prepare(&self, v: &Volume, fresh: bool) -> Result<(), VolumeError> {
        let _lock = self.lock()?;
        if fresh {
            self.remove_files_locked(&v.name)?;
        }
        let dir = self.dir.join(&v.name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(self.io(&v.name, "create", &data))?;
        let Some(size) = v.size else { return Ok(()) };
        if is_mounted(&data) {
            return Ok(());
        }
        let disk = dir.join("disk.ext4");
        let made = if disk.exists() {
            false
        } else {
            self.mkfs(&v.name, &disk, size)?;
            true
        };
        set_immutable(&data, true);
        self.mount(&v.name, &disk, &data)?;
        if made {
            // A fresh ext4 root holds lost+found; a volume should start empty, and
            // e2fsck makes it again should it ever need it.
            let lf = data.join("lost+found");
            std::fs::remove_dir(&lf).map_err(self.io(&v.name, "remove", &lf))?;
        }
        Ok(())
    }

    /// [`Volumes::prepare`] for a volume already stored.
    pub fn ensure_mounted(&self, v: &Volume) -> Result<(), VolumeError> {
        self.prepare(v, false)
    }

    fn mkfs(&self, volume: &str, disk: &Path, size: u64) -> Result<(), VolumeError> {
        let tmp = disk.with_extension("tmp");
        let f = std::fs::File::create(&tmp).map_err(self.io(volume, "create", &tmp))?;
        // Sparse: blocks are allocated as the volume fills.
        f.set_len(size).map_err(self.io(volume, "size", &tmp))?;
        drop(f);
        let tool = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mkfs.ext4");
        let out = std::process::Command::new(tool)
            // -m 0: no blocks reserved for root, the whole size is the volume's;
            // nodiscard: the file is already sparse.
            .args(["-q", "-F", "-m", "0", "-E", "nodiscard"])
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| VolumeError::Mkfs {
                volume: volume.into(),
                detail: format!("running {tool}: {e}"),
            })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(VolumeError::Mkfs {
                volume: volume.into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        std::fs::rename(&tmp, disk).map_err(self.io(volume, "rename", &tmp))
    }

    fn mount(&self, volume: &str, disk: &Path, data: &Path) -> Result<(), VolumeError> {
        use rustix::mount::{mount, MountFlags};
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(disk)
            .map_err(self.io(volume, "open", disk))?;
        let dev = berth_sys::loopdev::attach(&f)
            .map_err(|e| self.io(volume, "attach a loop device to", disk)(e.into()))?;
        // With autoclear, the device detaches itself once this mount is gone (or now, if
        // the mount fails and `dev` is dropped).
        mount(
            &dev.path,
            data,
            "ext4",
            MountFlags::NOSUID | MountFlags::NODEV,
            None,
        )
        .map_err(|e| self.io(volume, "mount ext4 on", data)(e.into()))
    }

    /// Unmounts (if mounted) and deletes the volume's directory; nothing there is fine.
    pub fn remove_files(&self, name: &str) -> Result<(), VolumeError> {
        let _lock = self.lock()?;
        self.remove_files_locked(name)
    }

    fn remove_files_locked(&self, name: &str) -> Result<(), VolumeError> {
        let dir = self.dir.join(name);
        let data = dir.join("_data");
        if is_mounted(&data) {
            // Detached: a container removed by force may still hold it; the filesystem
            // (and the loop device) go when it lets go.
            rustix::mount::unmount(&data, rustix::mount::UnmountFlags::DETACH)
                .map_err(|e| self.io(name, "unmount", &data)(e.into()))?;
        }
        set_immutable(&data, false);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(self.io(name, "remove", &dir)(e))
            }
            _ => Ok(()),
        }
    }

    /// Directories under ROOT/volumes with no record (left by an interrupted create or
    /// removal).
    pub(crate) fn orphans(&self, known: &[String]) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && !known.contains(n))
            .collect()
    }

    /// Removes a directory with no record, checked again under the lock (a `create`
    /// stores its record before it makes its directory, under the same lock).
    pub(crate) fn remove_orphan(&self, name: &str) -> Result<(), VolumeError> {
        let _lock = self.lock()?;
        if self
            .meta
            .read(|r| r.get::<Volume>(VOLUMES, name))?
            .is_none()
        {
            self.remove_files_locked(name)?;
        }
        Ok(())
    }

    pub(crate) fn meta(&self) -> &Store {
        &self.meta
    }
}

/// Whether something is mounted on `p`: it sits on another device than its parent.
pub fn is_mounted(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = p.parent() else {
        return false;
    };
    match (std::fs::symlink_metadata(p), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Best effort: not every host filesystem has the immutable flag (tmpfs before 6.0).
fn set_immutable(p: &Path, on: bool) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, open, IFlags, Mode, OFlags};
    if is_mounted(p) {
        return;
    }
    let Ok(fd) = open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    if let Ok(mut f) = ioctl_getflags(&fd) {
        f.set(IFlags::IMMUTABLE, on);
        let _ = ioctl_setflags(&fd, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_records() {
        assert!(valid_name("data") && valid_name("a.b-c_1") && valid_name("x"));
        for bad in ["", ".x", "-x", "a/b", "a b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let v = Volumes::new_record(&CreateOptions::default()).expect("anonymous");
        assert!(v.anonymous && v.needs_copy && v.name.len() == 64);
        assert!(matches!(
            Volumes::new_record(&CreateOptions {
                name: Some("v".into()),
                size: Some(4096),
                ..Default::default()
            }),
            Err(VolumeError::TooSmall { .. })
        ));
    }

    #[test]
    fn create_list_and_remove_without_a_size() {
        let root = tempfile::tempdir().expect("tempdir");
        let vs = Volumes::open(root.path());
        let o = CreateOptions {
            name: Some("data".into()),
            labels: [("a".to_string(), "b".to_string())].into(),
            size: None,
        };
        let v = vs.create(&o).expect("create");
        assert!(vs.mountpoint("data").is_dir());
        assert!(matches!(vs.create(&o), Err(VolumeError::Exists(_))));
        assert_eq!(vs.list().expect("list"), vec![v.clone()]);
        assert_eq!(vs.get("data").expect("get"), v);
        vs.remove_files("data").expect("remove");
        assert!(!root.path().join("volumes/data").exists());
        assert_eq!(vs.orphans(&[]), Vec::<String>::new());
    }
}
