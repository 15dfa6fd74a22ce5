//! The container's filesystem as `cp` sees it: a running container's own view through
//! `/proc/<init>/root` (its mounts included), or a stopped one's writable snapshot,
//! mounted for the copy if it is not, with its mount destinations fenced off.

use super::path::{clean_entry, is_within, lossy, UserPath};
use super::walk::{in_root, Side, Source, Top};
use super::write::Fence;
use super::{CpError, Place};
use crate::container::Engine;
use rustix::fs::{self as fs, AtFlags, Mode, OFlags, StatxAttributes, StatxFlags};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

/// The mounts of a stopped container that are not in its snapshot (volumes, binds,
/// tmpfs, /proc...), by their canonical paths in the container.
#[derive(Debug, Clone, Default)]
pub(crate) struct MountsOfStopped(pub Vec<(Vec<u8>, String)>);

pub(crate) struct View {
    pub place: Place,
    name: String,
    root: OwnedFd,
    /// The container's root user on the host (0 unless it has a user namespace).
    pub root_uid: u32,
    pub root_gid: u32,
    stopped: Option<Stopped>,
}

struct Stopped {
    id: String,
    runtime_root: PathBuf,
    /// The rootfs mount point's path as the kernel gives it, to turn fds into paths.
    root_path: Vec<u8>,
    mounts: MountsOfStopped,
    /// Mounted by us, so unmounted when done.
    unmount: Option<PathBuf>,
}

impl View {
    pub(crate) fn open(engine: &Engine, key: &str) -> Result<View, CpError> {
        let c = engine.find(key)?;
        let place = Place(format!("container {}", c.name));
        let config: serde_json::Value = std::fs::read(engine.persistent_config(&c.id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let root_uid = mapped_root(&config["linux"]["uidMappings"]);
        let root_gid = mapped_root(&config["linux"]["gidMappings"]);
        let rt = engine.runtime_root();
        if let Some(root) = running_root(&rt, &c.id, &place)? {
            return Ok(View {
                place,
                name: c.name,
                root,
                root_uid,
                root_gid,
                stopped: None,
            });
        }
        let rootfs = engine.dir(&c.id).join("rootfs");
        let was_mounted = is_mount_root(&rootfs);
        engine.mount_rootfs(&c.id)?;
        let mut stopped = Stopped {
            id: c.id.clone(),
            runtime_root: rt,
            root_path: vec![],
            mounts: MountsOfStopped::default(),
            unmount: (!was_mounted).then(|| rootfs.clone()),
        };
        let root = match fs::open(
            &rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                stopped.release();
                return Err(place.sys("open", rootfs.as_os_str().as_encoded_bytes())(e));
            }
        };
        stopped.root_path = fd_path(&root).unwrap_or_default();
        stopped.mounts = mounts_of(&config, &root, &stopped.root_path);
        Ok(View {
            place,
            name: c.name,
            root,
            root_uid,
            root_gid,
            stopped: Some(stopped),
        })
    }

    pub(crate) fn side(&self) -> Side<'_> {
        Side::Container {
            root: self.root.as_fd(),
            place: &self.place,
        }
    }

    /// The path in the container of an fd from this view (stopped containers only).
    fn canonical(&self, fd: &impl AsFd) -> Option<Vec<u8>> {
        let s = self.stopped.as_ref()?;
        let p = fd_path(fd)?;
        let rest = p.strip_prefix(&s.root_path[..])?;
        match rest {
            [] => Some(vec![]),
            [b'/', rest @ ..] => Some(rest.to_vec()),
            _ => None,
        }
    }

    fn on_mount(&self, canon: &[u8]) -> Option<CpError> {
        let s = self.stopped.as_ref()?;
        s.mounts
            .0
            .iter()
            .find(|(m, _)| is_within(canon, m))
            .map(|(_, dest)| CpError::OnMount {
                container: self.name.clone(),
                path: format!("/{}", lossy(canon)),
                mount: dest.clone(),
            })
    }

    /// A path missing from a stopped container's snapshot may be on one of its
    /// mounts: say so rather than "no such file" (lexically: it does not exist).
    pub(crate) fn explain(&self, e: CpError, p: &UserPath) -> CpError {
        if !matches!(e, CpError::NotFound { .. } | CpError::Invalid { .. }) {
            return e;
        }
        match clean_entry(&p.full()) {
            Ok(canon) => self.on_mount(&canon).unwrap_or(e),
            Err(_) => e,
        }
    }

    /// Mounts strictly below `canon`, relative to it.
    fn below(&self, canon: &[u8]) -> Vec<(Vec<u8>, String)> {
        let Some(s) = &self.stopped else {
            return vec![];
        };
        s.mounts
            .0
            .iter()
            .filter(|(m, _)| m[..] != canon[..] && is_within(m, canon))
            .map(|(m, dest)| {
                let rel = if canon.is_empty() {
                    m.clone()
                } else {
                    m[canon.len() + 1..].to_vec()
                };
                (rel, dest.clone())
            })
            .collect()
    }

    /// A source of a stopped container must not be on one of its mounts; the mount
    /// points below it are returned, to be copied without content.
    pub(crate) fn check_source(&self, src: &Source, p: &UserPath) -> Result<Vec<Vec<u8>>, CpError> {
        if self.stopped.is_none() {
            return Ok(vec![]);
        }
        let canon = match (&src.top, &p.name) {
            (Top::Dir(fd) | Top::File(fd), _) => self.canonical(fd),
            (Top::Other { parent }, Some(name)) => {
                self.canonical(parent).map(|c| super::path::join(&c, name))
            }
            (Top::Other { .. }, None) => None,
        };
        let Some(canon) = canon else {
            return Ok(vec![]);
        };
        if let Some(e) = self.on_mount(&canon) {
            return Err(e);
        }
        Ok(self.below(&canon).into_iter().map(|(rel, _)| rel).collect())
    }

    /// A destination directory of a stopped container must not be on one of its
    /// mounts; the mount points below it become the writer's fences.
    pub(crate) fn check_dest(
        &self,
        base: &OwnedFd,
        _dest: &UserPath,
    ) -> Result<Vec<Fence>, CpError> {
        if self.stopped.is_none() {
            return Ok(vec![]);
        }
        let Some(canon) = self.canonical(base) else {
            return Ok(vec![]);
        };
        if let Some(e) = self.on_mount(&canon) {
            return Err(e);
        }
        Ok(self
            .below(&canon)
            .into_iter()
            .map(|(rel, mount)| Fence {
                rel,
                mount,
                container: self.name.clone(),
            })
            .collect())
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(s) = &mut self.stopped {
            s.release();
        }
    }
}

impl Stopped {
    /// Unmounts the rootfs if we mounted it and the container has not been started
    /// meanwhile (its start found the rootfs mounted and is using it).
    fn release(&mut self) {
        let Some(p) = self.unmount.take() else {
            return;
        };
        if running_pid(&self.runtime_root, &self.id).is_some() {
            return;
        }
        if let Err(e) = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!(path = %p.display(), "unmounting the rootfs after cp: {e}");
        }
    }
}

fn running_pid(rt: &std::path::Path, id: &str) -> Option<i32> {
    let state = berth_runtime::state::ContainerState::load(rt, id).ok()?;
    state.init_alive().then_some(state.pid)
}

/// A running container's root: `/proc/<init>/root`, opened between two checks that
/// the pid is still the runtime's init (same start time), so a pid reused by another
/// process is never taken for it.
fn running_root(rt: &std::path::Path, id: &str, place: &Place) -> Result<Option<OwnedFd>, CpError> {
    let Some(pid) = running_pid(rt, id) else {
        return Ok(None);
    };
    let path = format!("/proc/{pid}/root");
    let fd = fs::open(
        &path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    );
    if running_pid(rt, id) != Some(pid) {
        // It exited meanwhile: the caller copies from the stopped container.
        return Ok(None);
    }
    fd.map(Some).map_err(place.sys("open", path.as_bytes()))
}

/// The host id that id 0 of the container maps to, from the spec's mappings.
fn mapped_root(mappings: &serde_json::Value) -> u32 {
    let Some(list) = mappings.as_array() else {
        return 0;
    };
    for m in list {
        let c = m["containerID"].as_u64().unwrap_or(u64::MAX);
        let h = m["hostID"].as_u64().unwrap_or(0);
        let n = m["size"].as_u64().unwrap_or(0);
        if c == 0 && n > 0 {
            return u32::try_from(h).unwrap_or(0);
        }
    }
    0
}

fn is_mount_root(p: &std::path::Path) -> bool {
    fs::statx(
        fs::CWD,
        p,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::empty(),
    )
    .is_ok_and(|s| s.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
}

fn fd_path(fd: &impl AsFd) -> Option<Vec<u8>> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())).ok()?;
    Some(link.into_os_string().into_encoded_bytes())
}

/// The directory mounts in a container's config.json that its snapshot does not hold:
/// every mount but a bind of a file (a file's mount point is a file, with nothing below).
fn mounts_of(config: &serde_json::Value, root: &OwnedFd, root_path: &[u8]) -> MountsOfStopped {
    let mut out = vec![];
    for m in config["mounts"].as_array().into_iter().flatten() {
        let Some(dest) = m["destination"].as_str() else {
            continue;
        };
        let bind = m["type"].as_str() == Some("bind")
            || m["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
        if bind
            && m["source"]
                .as_str()
                .is_some_and(|s| !std::path::Path::new(s).is_dir())
        {
            continue;
        }
        // Where the runtime will mount it: the destination resolved in the root, as
        // the runtime resolves it; lexically when it does not exist yet.
        let canon = in_root(root.as_fd(), dest.as_bytes(), OFlags::PATH)
            .ok()
            .and_then(|fd| fd_path(&fd))
            .and_then(|p| {
                let rest = p.strip_prefix(root_path)?;
                Some(rest.strip_prefix(b"/").unwrap_or(rest).to_vec())
            })
            .or_else(|| clean_entry(dest.as_bytes()).ok());
        match canon {
            Some(c) if !c.is_empty() => out.push((c, dest.to_string())),
            _ => {}
        }
    }
    MountsOfStopped(out)
}
