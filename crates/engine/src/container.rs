//! Container records and the verbs on them: run (foreground, in this process), list,
//! remove. A record is written before anything is made, so a crash at any point leaves
//! state that `ps -a` shows and `rm -f` cleans.

use crate::spec::{self, SpecOptions};
use berth_image::config::ImageConfig;
use berth_image::images::{ImageError, Images};
use berth_store::{StoreError, Table};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub(crate) const CONTAINERS: Table = Table::new("containers");
pub(crate) const NAMES: Table = Table::new("container_names");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    /// Exited, and the restart policy will start it again after a backoff.
    Restarting,
    Exited,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub command: Vec<String>,
    pub created: u64,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    pub auto_remove: bool,
    #[serde(default)]
    pub labels: Vec<(String, String)>,
    #[serde(flatten)]
    pub life: crate::lifecycle::Life,
    /// Volumes it mounts: `volume rm` refuses them, `rm -v` removes the anonymous ones.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `none`, `host` or a network's name (see `network.rs`).
    #[serde(default)]
    pub network: crate::network::NetworkMode,
    /// Published ports, host ports resolved at create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<berth_network::PortMapping>,
    #[serde(default)]
    pub hostname: String,
    /// `--entrypoint` when given (empty: the image's was cleared); `inspect` shows the
    /// image's otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    #[error(transparent)]
    Snapshot(#[from] berth_image::snapshot::SnapshotError),
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error(transparent)]
    Network(#[from] crate::network::ContainerNetworkError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error("the name {0:?} is already in use by container {1}")]
    NameInUse(String, String),
    #[error("container {0:?} not found")]
    NotFound(String),
    #[error("container name {0:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")]
    BadName(String),
    #[error("container {0} is running: stop it first or use --force")]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The container (or an exec'd process) did not start; `code` is docker's exit code
    /// for it (see [`crate::lifecycle::start_failure_code`]).
    #[error("{message}")]
    StartFailed { message: String, code: i32 },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub struct Engine {
    pub images: Images,
    pub root: PathBuf,
    pub volumes: crate::volume::Volumes,
    pub runroot: PathBuf,
    /// How to start monitors (`run -d`, `create`, `start`); see [`crate::lifecycle`].
    pub helpers: Option<crate::lifecycle::Helpers>,
    pub network: berth_network::NetworkConfig,
    /// What this process moved into the trash and has not emptied (see `trash.rs`).
    pub(crate) trash: std::sync::Mutex<Vec<PathBuf>>,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub image: String,
    pub name: Option<String>,
    pub auto_remove: bool,
    pub spec: SpecOptions,
    pub life: crate::lifecycle::Life,
    /// -v, --mount, --tmpfs (volumes are made and mounts resolved at create).
    pub mounts: Vec<crate::mounts::MountRequest>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn new_id() -> Result<String, ContainerError> {
    let mut b = [0u8; 32];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| io("getrandom", Path::new("-"))(e.into()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub(crate) fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

impl Engine {
    pub fn open(
        root: &Path,
        runroot: &Path,
        driver: Option<berth_image::snapshot::Driver>,
    ) -> Result<Engine, ContainerError> {
        let images = Images::open(root, driver)?;
        Ok(Engine {
            volumes: crate::volume::Volumes::with_store(root, images.meta.clone()),
            images,
            root: root.to_path_buf(),
            runroot: runroot.to_path_buf(),
            helpers: None,
            network: berth_network::NetworkConfig::new(root, runroot),
            trash: Default::default(),
        })
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }

    /// State root for the runtime library (what `berth-oci --root` would be).
    pub fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }

    pub fn list(&self) -> Result<Vec<Container>, ContainerError> {
        let mut all: Vec<Container> = self
            .records()?
            .into_iter()
            .map(|c| self.refresh(c))
            .collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.created));
        Ok(all)
    }

    /// Every record as stored (no refresh).
    pub(crate) fn records(&self) -> Result<Vec<Container>, ContainerError> {
        Ok(self
            .images
            .meta
            .read(|v| v.list::<Container>(CONTAINERS))?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// A record says running, but the runtime may know better: the init exited and the
    /// monitor has not cleaned up yet (the exit file has its code), or whoever watched
    /// it died (a killed CLI or monitor, a reboot).
    pub(crate) fn refresh(&self, mut c: Container) -> Container {
        if matches!(c.status, Status::Running | Status::Created) {
            let state = berth_runtime::state::ContainerState::load(&self.runtime_root(), &c.id);
            let alive = state.as_ref().map(|s| s.init_alive()).unwrap_or(false);
            if !alive
                && (c.status == Status::Running
                    || state.is_ok()
                    || self.dir(&c.id).join("exit").exists())
            {
                c.status = Status::Exited;
                if let Some((code, at)) = self.exit_file(&c.id) {
                    c.exit_code = Some(code);
                    c.finished = Some(at);
                }
            } else if let Some(s) = state
                .as_ref()
                .ok()
                .filter(|s| alive && s.status() == berth_runtime::state::Status::Running)
            {
                // Started, but the CLI (or monitor) that would have recorded it was
                // killed first, or has not yet: the runtime's state is the truth.
                c.status = Status::Running;
                c.life.pid.get_or_insert(s.pid);
            }
        }
        c
    }

    /// The record as stored (no refresh), or None when it is gone.
    pub(crate) fn raw(&self, id: &str) -> Result<Option<Container>, ContainerError> {
        Ok(self
            .images
            .meta
            .read(|v| v.get::<Container>(CONTAINERS, id))?)
    }

    /// Changes a record in one transaction (nothing when it is gone).
    pub(crate) fn update(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container),
    ) -> Result<(), ContainerError> {
        self.images.meta.write(|tx| {
            if let Some(mut c) = tx.get::<Container>(CONTAINERS, id)? {
                f(&mut c);
                tx.put(CONTAINERS, id, &c)?;
            }
            Ok::<_, ContainerError>(())
        })
    }

    /// By full id, unique id prefix, or name.
    pub fn find(&self, key: &str) -> Result<Container, ContainerError> {
        self.images.meta.read(|v| {
            if let Some(id) = v.get::<String>(NAMES, key)? {
                if let Some(c) = v.get::<Container>(CONTAINERS, &id)? {
                    return Ok(self.refresh(c));
                }
            }
            let hits: Vec<Container> = v
                .list::<Container>(CONTAINERS)?
                .into_iter()
                .map(|(_, c)| c)
                .filter(|c| key.len() >= 3 && c.id.starts_with(key))
                .collect();
            match hits.len() {
                1 => Ok(self.refresh(hits.into_iter().next().expect("one"))),
                _ => Err(ContainerError::NotFound(key.into())),
            }
        })
    }

    /// Creates the record, the writable snapshot (mounted) and the bundle. Returns the
    /// record and the bundle directory.
    pub fn create(&self, o: &RunOptions) -> Result<(Container, PathBuf), ContainerError> {
        let image = self.images.find(&o.image)?;
        let id = new_id()?;
        let name = o
            .name
            .clone()
            .unwrap_or_else(|| format!("berth-{}", &id[..12]));
        if !valid_name(&name) {
            return Err(ContainerError::BadName(name));
        }
        let rec = Container {
            id: id.clone(),
            name: name.clone(),
            image: image
                .names
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.to_string()),
            image_id: image.id.to_string(),
            command: vec![],
            created: now(),
            status: Status::Created,
            exit_code: None,
            finished: None,
            auto_remove: o.auto_remove,
            labels: o.spec.labels.clone(),
            life: o.life.clone(),
            volumes: vec![],
            network: o.spec.network.clone(),
            ports: vec![],
            hostname: if o.spec.hostname.is_empty() {
                id[..12].to_string()
            } else {
                o.spec.hostname.clone()
            },
            entrypoint: o.spec.entrypoint.clone(),
        };
        self.images.meta.write(|tx| {
            if let Some(other) = tx.get::<String>(NAMES, &name)? {
                return Err(ContainerError::NameInUse(name.clone(), other));
            }
            tx.put(NAMES, &name, &id)?;
            tx.put(CONTAINERS, &id, &rec)?;
            Ok(())
        })?;
        match self.make(&rec, &image, o) {
            Ok(v) => {
                self.container_event("create", &v.0, &[]);
                Ok(v)
            }
            Err(e) => {
                if let Ok(c) = self.remove(&id, true) {
                    let _ = self.remove_anonymous_volumes(&c);
                }
                Err(e)
            }
        }
    }

    fn make(
        &self,
        rec: &Container,
        image: &berth_image::images::ImageRecord,
        o: &RunOptions,
    ) -> Result<(Container, PathBuf), ContainerError> {
        let dir = self.dir(&rec.id);
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(io("create", &rootfs))?;
        if let Some(top) = image.top_chain() {
            let m = self.images.snapshots.prepare(&rec.id, top)?;
            mount_snapshot(&m, &rootfs)?;
        }
        let config_bytes = self
            .images
            .content
            .read(&image.id)
            .map_err(ImageError::from)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| io("parse image config", &rootfs)(std::io::Error::other(e)))?;
        let mut so = o.spec.clone();
        let attached = self.attach_volumes(&rec.id, &config, &rootfs, &o.mounts)?;
        so.mounts.extend(attached.mounts);
        if so.hostname.is_empty() {
            so.hostname = rec.id[..12].to_string();
        }
        if so.cgroups_path.is_empty() {
            so.cgroups_path = format!("/berth/{}", rec.id);
        }
        let ports = crate::network::prepare(&self.network, &rec.id, &dir, &config, &mut so)?;
        let spec = spec::build(&config, &rootfs, &so)?;
        let path = dir.join("config.json");
        let bytes = serde_json::to_vec_pretty(&spec)
            .map_err(|e| io("encode", &path)(std::io::Error::other(e)))?;
        std::fs::write(&path, &bytes).map_err(io("write", &path))?;
        // The bundle lives in the run root, which a reboot empties; this copy brings it
        // back on the next start (an `--rm` container never starts again).
        if !rec.auto_remove {
            let keep = self.persistent_config(&rec.id);
            if let Some(p) = keep.parent() {
                std::fs::create_dir_all(p).map_err(io("create", p))?;
            }
            std::fs::write(&keep, &bytes).map_err(io("write", &keep))?;
        }
        let mut rec = rec.clone();
        if rec.life.stop_signal.is_none() {
            rec.life.stop_signal = config.config.stop_signal.clone();
        }
        rec.volumes = attached.volumes;
        rec.ports = ports;
        rec.command = spec["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        self.images
            .meta
            .write(|tx| tx.put(CONTAINERS, &rec.id, &rec))?;
        Ok((rec, dir))
    }

    /// `run`: create, then start under a monitor. Detached (`attach` None) it returns
    /// once the init runs; attached, once the container has exited (and with `--rm`
    /// is gone), with its exit code. Signals this process receives meanwhile go to the
    /// container.
    pub fn run(
        &self,
        o: &RunOptions,
        attach: Option<crate::lifecycle::Attach>,
    ) -> Result<(Container, Option<i32>), ContainerError> {
        let signals = match attach {
            Some(_) => Some(crate::lifecycle::Forwarded::block()?),
            None => None,
        };
        let (rec, mut m) = self.run_started(o, attach)?;
        let Some(signals) = signals else {
            return Ok((rec, None));
        };
        let code = m.exited_forwarding(self, &rec.id, &signals)?;
        Ok((rec, Some(code)))
    }

    /// The first half of `run`: create, start under a monitor, wait until the init
    /// runs. A container that fails to start and was `--rm` is removed.
    pub fn run_started(
        &self,
        o: &RunOptions,
        attach: Option<crate::lifecycle::Attach>,
    ) -> Result<(Container, crate::lifecycle::MonitorHandle), ContainerError> {
        let (rec, _) = self.create(o)?;
        let started = self
            .start_monitor(&rec, false, attach)
            .and_then(|mut m| m.started(self).map(|_| m));
        match started {
            Ok(m) => Ok((rec, m)),
            Err(e) => {
                if o.auto_remove {
                    if let Ok(c) = self.remove(&rec.id, true) {
                        let _ = self.remove_anonymous_volumes(&c);
                    }
                }
                Err(e)
            }
        }
    }

    /// Removes a container: its runtime state (killing it with `force`), rootfs mount,
    /// writable snapshot, bundle and record. Gathers every failure rather than stopping at
    /// the first, and succeeds on what is already gone.
    pub fn remove(&self, key: &str, force: bool) -> Result<Container, ContainerError> {
        let c = self.find(key)?;
        if matches!(c.status, Status::Running | Status::Restarting) && !force {
            return Err(ContainerError::Running(c.name));
        }
        let rt = self.runtime_root();
        if matches!(
            c.status,
            Status::Running | Status::Restarting | Status::Created
        ) {
            // Its monitor must not restart it, and should finish its cleanup before the
            // files it uses go away.
            self.update(&c.id, |c| c.life.stopped_by_user = true)?;
            let state = berth_runtime::state::dir(&rt, &c.id);
            // A start may still be in flight in the monitor (its CLI was killed mid-run):
            // let it make the container, so that the kill below finds the init rather
            // than the start making it after everything here is gone.
            let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !state.exists()
                && self.monitor_pid(&c.id).is_some()
                && std::time::Instant::now() < end
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if state.exists() {
                let _ = berth_runtime::container::kill(&rt, &c.id, libc::SIGKILL, true);
                let _ = self.wait_cleaned(&c.id, std::time::Duration::from_secs(10));
            }
            // A monitor still there never got a container or is stuck: it and what it
            // started (its own process group, from its setsid) go.
            self.kill_monitor(&c.id);
            if self.raw(&c.id)?.is_none() {
                return Ok(c);
            }
        }
        let mut first_err: Option<ContainerError> = None;
        let mut note = |r: Result<(), ContainerError>| {
            if let Err(e) = r {
                tracing::warn!("removing {}: {e}", c.id);
                first_err.get_or_insert(e);
            }
        };
        if berth_runtime::state::dir(&rt, &c.id).exists() {
            note(berth_runtime::container::delete(&rt, &c.id, true).map_err(Into::into));
        }
        note(crate::network::detach(&self.network, &c).map_err(Into::into));
        let dir = self.dir(&c.id);
        let rootfs = dir.join("rootfs");
        let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        let logs = self.root.join("containers").join(&c.id);
        note(self.discard(&logs).map_err(io("remove", &logs)));
        match self.images.snapshots.active_path(&c.id) {
            Ok(p) => note(self.discard(&p).map_err(io("remove", &p))),
            Err(e) => note(Err(e.into())),
        }
        note(self.discard(&dir).map_err(io("remove", &dir)));
        if first_err.is_none() {
            self.images.meta.write(|tx| {
                tx.remove(CONTAINERS, &c.id)?;
                tx.remove(NAMES, &c.name)?;
                Ok::<_, ContainerError>(())
            })?;
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                self.container_event("destroy", &c, &[]);
                Ok(c)
            }
        }
    }

    /// Image ids containers use (rmi refuses to remove them without --force).
    pub fn image_user(&self, image_id: &str) -> Option<String> {
        self.list()
            .ok()?
            .into_iter()
            .find(|c| c.image_id == image_id)
            .map(|c| c.name)
    }
}

pub(crate) fn mount_snapshot(
    m: &berth_image::snapshot::Mount,
    target: &Path,
) -> Result<(), ContainerError> {
    use rustix::mount::{mount, mount_bind_recursive, MountFlags};
    let r = match m.kind.as_str() {
        "overlay" => {
            let data = std::ffi::CString::new(m.options.join(","))
                .map_err(|e| io("mount", target)(std::io::Error::other(e)))?;
            mount(
                "overlay",
                target,
                "overlay",
                MountFlags::empty(),
                Some(data.as_c_str()),
            )
        }
        _ => mount_bind_recursive(&m.source, target),
    };
    r.map_err(|e| io("mount snapshot on", target)(e.into()))
}
