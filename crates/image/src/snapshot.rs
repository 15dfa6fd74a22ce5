//! Snapshots: the filesystems containers run on, built from layers.
//!
//! Words, as containerd's snapshotter uses them:
//! - A **committed** snapshot is one layer applied on top of its parent chain, named by the
//!   chain's ChainID (image-spec config.md#layer-chainid). It never changes. Images with
//!   common bottom layers share these.
//! - An **active** snapshot belongs to one container, named by a key: a writable layer over
//!   a committed chain. Removing the container removes it; the chain stays for other users.
//!
//! Two drivers, chosen by probing the store's filesystem once:
//! - `overlay`: each committed snapshot holds only its own layer (whiteouts in overlayfs
//!   form); an active snapshot is an overlay mount with the chain as lowerdirs and its own
//!   upper and work dirs. Layers unpack independently, so a pull unpacks them in parallel.
//! - `copy`: where overlayfs cannot be used (the store on overlayfs or a filesystem
//!   overlayfs refuses as upper), each committed snapshot is the whole merged tree, and an
//!   active snapshot is a copy of it: slower and bigger, but works anywhere.
//!
//! Worked example: image A has layers l1, l2; image B has l1, l3. Pulling A commits
//! chain(l1) and chain(l1,l2); pulling B reuses chain(l1) and commits chain(l1,l3). A
//! container from A prepares active snapshot "c1" with lowerdirs chain(l1,l2):chain(l1).
//!
//! Directories are named by the first 16 hex digits of the ChainID (overlayfs options are
//! limited to one page, and full digests would cap an image near 40 layers); the full ChainID
//! is recorded inside and checked, so a prefix collision is an error, never a mix-up.

use berth_distribution::Digest;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshots: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {0} is not committed")]
    NotFound(Digest),
    #[error("snapshot directory {dir} holds chain {found}, not {wanted} (prefix collision)")]
    Collision {
        dir: PathBuf,
        found: String,
        wanted: Digest,
    },
    #[error("snapshots in {root} were made with the {recorded:?} driver, not {wanted:?}; use another --root")]
    DriverMismatch {
        root: PathBuf,
        recorded: Driver,
        wanted: Driver,
    },
    #[error("active snapshot {0:?} already exists")]
    ActiveExists(String),
    #[error("snapshot key {0:?} must be letters, digits, '-', '_' or '.'")]
    BadKey(String),
    #[error("copying {from} to {to}: {detail}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        detail: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Overlay,
    Copy,
}

/// A mount that makes a snapshot visible, in the form the runtime spec's `mounts` take.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    pub kind: String,
    pub source: PathBuf,
    pub options: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Snapshots {
    root: PathBuf,
    driver: Driver,
}

pub fn dir_name(chain: &Digest) -> &str {
    &chain.hex()[..16]
}

impl Snapshots {
    /// The snapshot store at `root`, with the driver recorded there (probed on first use).
    pub fn open(root: impl Into<PathBuf>) -> Result<Snapshots, SnapshotError> {
        Snapshots::open_with(root, None)
    }

    /// As [`Snapshots::open`], with the driver chosen on first use; a store made with one
    /// driver cannot be read with the other.
    pub fn open_with(
        root: impl Into<PathBuf>,
        want: Option<Driver>,
    ) -> Result<Snapshots, SnapshotError> {
        let root = root.into();
        let s = Snapshots::open_probed(root.clone(), want)?;
        if let Some(w) = want {
            if w != s.driver {
                return Err(SnapshotError::DriverMismatch {
                    root,
                    recorded: s.driver,
                    wanted: w,
                });
            }
        }
        Ok(s)
    }

    fn open_probed(root: PathBuf, want: Option<Driver>) -> Result<Snapshots, SnapshotError> {
        std::fs::create_dir_all(root.join("active")).map_err(io("create", &root))?;
        let record = root.join("driver");
        let driver = match std::fs::read_to_string(&record) {
            Ok(s) if s.trim() == "overlay" => Driver::Overlay,
            Ok(s) if s.trim() == "copy" => Driver::Copy,
            _ => {
                let d = match want {
                    Some(Driver::Copy) => Driver::Copy,
                    _ => probe_overlay(&root),
                };
                std::fs::write(
                    &record,
                    if d == Driver::Overlay {
                        "overlay\n"
                    } else {
                        "copy\n"
                    },
                )
                .map_err(io("write", &record))?;
                d
            }
        };
        Ok(Snapshots { root, driver })
    }

    /// Forces a driver (tests of the fallback; `--storage-driver`).
    pub fn with_driver(mut self, driver: Driver) -> Snapshots {
        self.driver = driver;
        self
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(dir_name(chain))
    }

    /// The committed snapshot's filesystem, if it exists.
    pub fn committed(&self, chain: &Digest) -> Result<Option<PathBuf>, SnapshotError> {
        let dir = self.dir(chain);
        match std::fs::read_to_string(dir.join("chainid")) {
            Ok(s) if s.trim() == chain.to_string() => Ok(Some(dir.join("fs"))),
            Ok(s) => Err(SnapshotError::Collision {
                dir,
                found: s.trim().into(),
                wanted: chain.clone(),
            }),
            Err(_) => Ok(None),
        }
    }

    fn parent_of(&self, chain: &Digest) -> Result<Option<Digest>, SnapshotError> {
        let p = self.dir(chain).join("parent");
        let s = std::fs::read_to_string(&p).map_err(io("read", &p))?;
        Ok(s.trim().parse().ok())
    }

    /// Commits snapshot `chain` (its layer on top of `parent`) by letting `fill` write the
    /// layer into an empty private directory, which is renamed into place only when `fill`
    /// succeeds. Under `copy`, the directory starts as a copy of the parent's tree and
    /// `fill` must apply whiteouts. Returns None when the snapshot already exists (another
    /// pull may have made it while this one waited on the lock).
    pub fn commit<T, E: From<SnapshotError>>(
        &self,
        chain: &Digest,
        parent: Option<&Digest>,
        fill: impl FnOnce(&Path, Driver) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        if self.committed(chain)?.is_some() {
            return Ok(None);
        }
        let _lock = self.lock(chain)?;
        if self.committed(chain)?.is_some() {
            return Ok(None);
        }
        let tmp = self.root.join(format!(".tmp-{}", dir_name(chain)));
        remove_tree(&tmp)?;
        std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
        let fs = tmp.join("fs");
        match (self.driver, parent) {
            (Driver::Copy, Some(p)) => {
                let from = self
                    .committed(p)?
                    .ok_or_else(|| SnapshotError::NotFound(p.clone()))?;
                copy_tree(&from, &fs)?;
            }
            _ => std::fs::create_dir(&fs).map_err(io("create", &fs))?,
        }
        let out = match fill(&fs, self.driver) {
            Ok(v) => v,
            Err(e) => {
                let _ = remove_tree(&tmp);
                return Err(e);
            }
        };
        let parent_s = parent.map(|p| p.to_string()).unwrap_or_default();
        write_synced(&tmp.join("parent"), parent_s.as_bytes())?;
        write_synced(&tmp.join("chainid"), chain.to_string().as_bytes())?;
        let dir = self.dir(chain);
        remove_tree(&dir)?;
        std::fs::rename(&tmp, &dir).map_err(io("rename", &tmp))?;
        Ok(Some(out))
    }

    fn lock(&self, chain: &Digest) -> Result<File, SnapshotError> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let p = dir.join(dir_name(chain));
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(io("open", &p))?;
        f.lock().map_err(io("lock", &p))?;
        Ok(f)
    }

    /// The chain from `top` down to the bottom layer.
    pub fn chain(&self, top: &Digest) -> Result<Vec<Digest>, SnapshotError> {
        let mut out = Vec::new();
        let mut cur = Some(top.clone());
        while let Some(c) = cur {
            if self.committed(&c)?.is_none() {
                return Err(SnapshotError::NotFound(c));
            }
            cur = self.parent_of(&c)?;
            out.push(c);
        }
        Ok(out)
    }

    fn active_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let ok = !key.is_empty()
            && !key.starts_with('.')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            return Err(SnapshotError::BadKey(key.into()));
        }
        Ok(self.root.join("active").join(key))
    }

    /// Makes a writable snapshot `key` over the committed chain `parent` and returns the
    /// mount that shows it.
    pub fn prepare(&self, key: &str, parent: &Digest) -> Result<Mount, SnapshotError> {
        let dir = self.active_dir(key)?;
        let chain = self.chain(parent)?;
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => SnapshotError::ActiveExists(key.into()),
            _ => io("create", &dir)(e),
        })?;
        let made = (|| {
            write_synced(&dir.join("parent"), parent.to_string().as_bytes())?;
            match self.driver {
                Driver::Overlay => {
                    for d in ["upper", "work"] {
                        let p = dir.join(d);
                        std::fs::create_dir(&p).map_err(io("create", &p))?;
                    }
                }
                Driver::Copy => {
                    let from = self.dir(parent).join("fs");
                    copy_tree(&from, &dir.join("fs"))?;
                }
            }
            self.mount(key, &chain)
        })();
        if made.is_err() {
            let _ = remove_tree(&dir);
        }
        made
    }

    fn mount(&self, key: &str, chain: &[Digest]) -> Result<Mount, SnapshotError> {
        let dir = self.active_dir(key)?;
        Ok(match self.driver {
            Driver::Overlay => {
                let lower: Vec<String> = chain
                    .iter()
                    .map(|c| self.dir(c).join("fs").display().to_string())
                    .collect();
                Mount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: vec![
                        format!("lowerdir={}", lower.join(":")),
                        format!("upperdir={}", dir.join("upper").display()),
                        format!("workdir={}", dir.join("work").display()),
                        // Hardlinks stay hardlinks across copy-up; no redirect dirs from
                        // (untrusted) lower layers.
                        "index=off".into(),
                        "redirect_dir=off".into(),
                    ],
                }
            }
            Driver::Copy => Mount {
                kind: "bind".into(),
                source: dir.join("fs"),
                options: vec!["rbind".into()],
            },
        })
    }

    /// The mount for an existing active snapshot.
    pub fn mounts(&self, key: &str) -> Result<Mount, SnapshotError> {
        let dir = self.active_dir(key)?;
        let p = dir.join("parent");
        let parent: Digest = std::fs::read_to_string(&p)
            .map_err(io("read", &p))?
            .trim()
            .parse()
            .map_err(|e| io("parse", &p)(std::io::Error::other(e)))?;
        self.mount(key, &self.chain(&parent)?)
    }

    /// The committed chain an active snapshot sits on.
    pub fn active_parent(&self, key: &str) -> Option<Digest> {
        let dir = self.active_dir(key).ok()?;
        std::fs::read_to_string(dir.join("parent"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Where the writable snapshot `key` lives (to move it away whole).
    pub fn active_path(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        self.active_dir(key)
    }

    pub fn remove_active(&self, key: &str) -> Result<(), SnapshotError> {
        remove_tree(&self.active_dir(key)?)
    }

    pub fn active(&self) -> Result<Vec<String>, SnapshotError> {
        let dir = self.root.join("active");
        let rd = std::fs::read_dir(&dir).map_err(io("list", &dir))?;
        Ok(rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    /// Every committed chain.
    pub fn list(&self) -> Result<Vec<Digest>, SnapshotError> {
        let rd = std::fs::read_dir(&self.root).map_err(io("list", &self.root))?;
        Ok(rd
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("chainid")).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect())
    }

    /// Removes a committed snapshot (garbage collection decides that nothing uses it).
    pub fn remove(&self, chain: &Digest) -> Result<(), SnapshotError> {
        let _lock = self.lock(chain)?;
        if self.committed(chain)?.is_none() {
            return Ok(());
        }
        // Rename first so a crash mid-delete never leaves a half-empty committed snapshot.
        let dir = self.dir(chain);
        let doomed = self.root.join(format!(".tmp-{}", dir_name(chain)));
        remove_tree(&doomed)?;
        std::fs::rename(&dir, &doomed).map_err(io("rename", &dir))?;
        remove_tree(&doomed)
    }

    /// Removes leftovers of interrupted commits whose locks are free.
    pub fn clean(&self) -> Result<(), SnapshotError> {
        let rd = std::fs::read_dir(&self.root).map_err(io("list", &self.root))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix(".tmp-") {
                let lock = self.root.join("locks").join(id);
                let free = OpenOptions::new()
                    .write(true)
                    .open(&lock)
                    .map(|f| f.try_lock().is_ok())
                    .unwrap_or(true);
                if free {
                    remove_tree(&e.path())?;
                }
            }
        }
        Ok(())
    }

    pub fn disk_usage(&self, chain: &Digest) -> u64 {
        du(&self.dir(chain))
    }
}

fn du(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    let mut n = m.blocks() * 512;
    if m.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            n += rd.flatten().map(|e| du(&e.path())).sum::<u64>();
        }
    }
    n
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    use std::io::Write;
    let mut f = File::create(path).map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("sync", path))
}

/// Removes a tree that may hold read-only directories (layers keep image modes).
pub fn remove_tree(p: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", p)(e)),
    }
}

/// A faithful tree copy (owners, modes, times, xattrs, hardlinks, sparse files, device
/// nodes; reflinks where the filesystem has them). This is GNU cp's job done well, and no
/// crate does all of it, so the copy driver uses `cp -a`. Only the fallback driver runs it.
fn copy_tree(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    let out = std::process::Command::new("cp")
        .args([
            "-a",
            "--reflink=auto",
            "--sparse=auto",
            "--no-target-directory",
        ])
        .arg(from)
        .arg(to)
        .output()
        .map_err(io("run cp for", from))?;
    if !out.status.success() {
        return Err(SnapshotError::Copy {
            from: from.into(),
            to: to.into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    Ok(())
}

/// Can overlayfs use directories on this filesystem? Mounts a tiny overlay and unmounts it.
fn probe_overlay(root: &Path) -> Driver {
    let probe = root.join(".probe");
    let _ = remove_tree(&probe);
    let ok = (|| -> std::io::Result<bool> {
        for d in ["l1", "l2", "u", "w", "m"] {
            std::fs::create_dir_all(probe.join(d))?;
        }
        let opts = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            probe.join("l1").display(),
            probe.join("l2").display(),
            probe.join("u").display(),
            probe.join("w").display()
        );
        let mounted = rustix::mount::mount(
            "overlay",
            probe.join("m"),
            "overlay",
            rustix::mount::MountFlags::empty(),
            std::ffi::CString::new(opts).ok().as_deref(),
        )
        .is_ok();
        if mounted {
            let _ = rustix::mount::unmount(probe.join("m"), rustix::mount::UnmountFlags::DETACH);
        }
        Ok(mounted)
    })()
    .unwrap_or(false);
    let _ = remove_tree(&probe);
    if ok {
        Driver::Overlay
    } else {
        tracing::info!(
            "overlayfs is not usable under {}: using the copy snapshot driver",
            root.display()
        );
        Driver::Copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn commit_chain_prepare_and_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        for driver in [Driver::Overlay, Driver::Copy] {
            let s = Snapshots::open(dir.path().join(format!("{driver:?}")))
                .expect("open")
                .with_driver(driver);
            let made = s
                .commit(&chain(1), None, |fs, _| {
                    std::fs::write(fs.join("a"), "1").map_err(io("w", fs))
                })
                .expect("commit");
            assert!(made.is_some());
            // Already there: not made again.
            let again = s
                .commit(&chain(1), None, |_, _| -> Result<(), SnapshotError> {
                    panic!("must not refill")
                })
                .expect("commit");
            assert!(again.is_none());
            // A failing fill leaves nothing behind.
            let e = s.commit(
                &chain(9),
                Some(&chain(1)),
                |_, _| -> Result<(), SnapshotError> { Err(SnapshotError::BadKey("x".into())) },
            );
            assert!(e.is_err());
            assert!(s.committed(&chain(9)).expect("ok").is_none());
            s.commit(&chain(2), Some(&chain(1)), |fs, d| {
                if d == Driver::Copy {
                    assert!(fs.join("a").exists(), "copy driver starts from the parent");
                }
                std::fs::write(fs.join("b"), "2").map_err(io("w", fs))
            })
            .expect("commit");
            assert_eq!(s.chain(&chain(2)).expect("chain"), vec![chain(2), chain(1)]);
            let m = s.prepare("c1", &chain(2)).expect("prepare");
            match driver {
                Driver::Overlay => {
                    assert_eq!(m.kind, "overlay");
                    let lower = &m.options[0];
                    assert!(lower.find(dir_name(&chain(2))) < lower.find(dir_name(&chain(1))));
                }
                Driver::Copy => {
                    assert!(m.source.join("a").exists() && m.source.join("b").exists());
                }
            }
            assert!(matches!(
                s.prepare("c1", &chain(2)),
                Err(SnapshotError::ActiveExists(_))
            ));
            assert!(matches!(
                s.prepare("../x", &chain(2)),
                Err(SnapshotError::BadKey(_))
            ));
            assert_eq!(s.mounts("c1").expect("mounts"), m);
            assert_eq!(s.active_parent("c1"), Some(chain(2)));
            s.remove_active("c1").expect("rm");
            let mut all = s.list().expect("list");
            all.sort();
            let mut want = vec![chain(1), chain(2)];
            want.sort();
            assert_eq!(all, want);
            s.remove(&chain(2)).expect("remove");
            assert_eq!(s.list().expect("list"), vec![chain(1)]);
            s.clean().expect("clean");
        }
    }
}
