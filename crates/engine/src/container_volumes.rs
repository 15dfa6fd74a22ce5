//! Containers and volumes together: a container's mount requests (mounts.rs) and its
//! image's `Volumes` become runtime-spec mounts, creating and pre-filling volumes; which
//! volumes a container uses is kept on its record, so `volume rm` and `prune` can refuse
//! or spare them, and `rm -v` can take its anonymous ones along.

use crate::container::{Container, ContainerError, Engine, CONTAINERS};
use crate::mounts::MountRequest;
use crate::volume::{CreateOptions, Volume, VolumeError, Volumes, VOLUMES};
use berth_image::config::ImageConfig;
use serde_json::{json, Value};
use std::path::Path;

/// What [`Engine::attach_volumes`] made of a container's mounts.
#[derive(Debug, Default)]
pub struct Attached {
    /// Runtime-spec mounts, parents before children.
    pub mounts: Vec<Value>,
    /// The volumes the container uses (already on its record).
    pub volumes: Vec<String>,
}

/// A volume mount after its volume is chosen: the record and whether it is new.
struct Planned {
    volume: Volume,
    fresh: bool,
    target: String,
    nocopy: bool,
}

/// The image's `Volumes` that no user mount covers, as anonymous volume requests. An
/// image path that is not a clean absolute path is skipped: it is not the user's input,
/// and the runtime would refuse it.
fn image_volumes(image: &ImageConfig, requests: &[MountRequest]) -> Vec<MountRequest> {
    let mut out = vec![];
    for p in image.config.volumes.iter().flat_map(|v| v.keys()) {
        let Ok(target) = crate::mounts::target("image Volumes", p, p) else {
            tracing::warn!("image volume {p:?} is not an absolute container path; skipped");
            continue;
        };
        if !requests.iter().chain(&out).any(|r| r.target() == target) {
            out.push(MountRequest::Volume {
                name: None,
                target,
                readonly: false,
                nocopy: false,
                labels: Default::default(),
                size: None,
            });
        }
    }
    out
}

/// Each volume once (one may be mounted at several paths).
fn names(planned: &[Planned]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for p in planned {
        if !out.contains(&p.volume.name) {
            out.push(p.volume.name.clone());
        }
    }
    out
}

fn options(base: &str, readonly: bool, extra: Option<&String>) -> Vec<String> {
    let mut o = vec![base.to_string()];
    o.extend(extra.cloned());
    if readonly {
        o.push("ro".into());
    }
    o
}

impl Engine {
    /// Turns the container's mount requests, and its image's `Volumes`, into spec mounts:
    /// named volumes are created on first use and anonymous ones made, all recorded on the
    /// container in the same transaction (so a failure from here on leaves nothing that
    /// `rm -v` cannot find); then each volume is made ready (mounted, for a size limit)
    /// and a new one pre-filled from the image at `rootfs`.
    pub fn attach_volumes(
        &self,
        id: &str,
        image: &ImageConfig,
        rootfs: &Path,
        requests: &[MountRequest],
    ) -> Result<Attached, ContainerError> {
        let all: Vec<MountRequest> = requests
            .iter()
            .cloned()
            .chain(image_volumes(image, requests))
            .collect();
        let any_volume = all.iter().any(|r| matches!(r, MountRequest::Volume { .. }));
        let planned: Vec<Planned> = if !any_volume {
            vec![]
        } else {
            self.images.meta.write(|tx| {
                let mut planned = vec![];
                for r in &all {
                    let MountRequest::Volume {
                        name,
                        target,
                        nocopy,
                        labels,
                        size,
                        ..
                    } = r
                    else {
                        continue;
                    };
                    let existing = match name {
                        Some(n) => tx.get::<Volume>(VOLUMES, n)?,
                        None => None,
                    };
                    let (volume, fresh) = match existing {
                        Some(v) => (v, false),
                        None => {
                            let v = Volumes::new_record(&CreateOptions {
                                name: name.clone(),
                                labels: labels.clone(),
                                size: *size,
                            })?;
                            Volumes::insert(tx, &v)?;
                            (v, true)
                        }
                    };
                    planned.push(Planned {
                        volume,
                        fresh,
                        target: target.clone(),
                        nocopy: *nocopy,
                    });
                }
                if let Some(mut c) = tx.get::<Container>(CONTAINERS, id)? {
                    c.volumes = names(&planned);
                    tx.put(CONTAINERS, id, &c)?;
                }
                Ok::<_, ContainerError>(planned)
            })?
        };
        for p in planned.iter().filter(|p| p.fresh) {
            self.event(
                "volume",
                "create",
                &p.volume.name,
                &[("driver", "local".into())],
            );
        }
        for p in &planned {
            self.volumes.prepare(&p.volume, p.fresh)?;
            self.fill(&p.volume.name, rootfs, &p.target, p.nocopy)?;
        }
        let mut mounts: Vec<Value> = all
            .iter()
            .map(|r| match r {
                MountRequest::Bind { source, target, readonly, propagation, recursive } => json!({
                    "destination": target, "type": "bind", "source": source,
                    "options": options(if *recursive { "rbind" } else { "bind" }, *readonly, propagation.as_ref()),
                }),
                MountRequest::Volume { target, readonly, .. } => {
                    let name = &planned.iter().find(|p| &p.target == target).expect("every volume request was planned").volume.name;
                    json!({
                        "destination": target, "type": "bind", "source": self.volumes.mountpoint(name),
                        "options": options("rbind", *readonly, None),
                    })
                }
                MountRequest::Tmpfs { target, options } => {
                    let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                    o.extend(options.iter().cloned());
                    json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": o})
                }
            })
            .collect();
        // A parent before its children, or it would cover them (stable: equal depths
        // keep the user's order).
        mounts.sort_by_key(|m| {
            m["destination"]
                .as_str()
                .map_or(0, |d| d.matches('/').count())
        });
        Ok(Attached {
            mounts,
            volumes: names(&planned),
        })
    }

    /// Pre-fills a volume no container has mounted yet from the image's content at
    /// `target` (unless `nocopy`), then marks it filled. Under the volume lock, and with
    /// the record read again, so two first users do not both copy.
    fn fill(
        &self,
        name: &str,
        rootfs: &Path,
        target: &str,
        nocopy: bool,
    ) -> Result<(), ContainerError> {
        let _lock = self.volumes.lock()?;
        let v = self.volumes.get(name)?;
        if !v.needs_copy {
            return Ok(());
        }
        if !nocopy {
            let c = crate::copy_up::copy_up(rootfs, target, &self.volumes.mountpoint(name))
                .map_err(VolumeError::from)?;
            tracing::debug!(
                "volume {name}: {} entries, {} bytes copied from the image's {target}",
                c.entries,
                c.bytes
            );
        }
        self.volumes.meta().write(|tx| {
            if let Some(mut v) = tx.get::<Volume>(VOLUMES, name)? {
                v.needs_copy = false;
                tx.put(VOLUMES, name, &v)?;
            }
            Ok::<_, VolumeError>(())
        })?;
        Ok(())
    }

    /// Mounts the size-limited volumes a container uses (and makes any volume directory
    /// that went missing). Call before each start: a reboot unmounts them.
    pub fn ensure_mounted(&self, c: &Container) -> Result<(), VolumeError> {
        for name in &c.volumes {
            self.volumes.ensure_mounted(&self.volumes.get(name)?)?;
        }
        Ok(())
    }

    /// Containers (running or not) whose record lists the volume.
    pub fn volume_users(&self, name: &str) -> Result<Vec<Container>, ContainerError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| c.volumes.iter().any(|v| v == name))
            .collect())
    }

    /// `rm -v`, `--rm`: removes the anonymous volumes of a container that is already
    /// gone, unless another container uses one too. Returns their names; gathers every
    /// failure and reports the first.
    pub fn remove_anonymous_volumes(&self, c: &Container) -> Result<Vec<String>, ContainerError> {
        if c.volumes.is_empty() {
            return Ok(vec![]);
        }
        let gone: Vec<String> = self.images.meta.write(|tx| {
            let users: Vec<Container> = tx
                .list::<Container>(CONTAINERS)?
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            let mut gone = vec![];
            for name in &c.volumes {
                let Some(v) = tx.get::<Volume>(VOLUMES, name)? else {
                    continue;
                };
                if v.anonymous
                    && !users
                        .iter()
                        .any(|u| u.id != c.id && u.volumes.contains(name))
                {
                    tx.remove(VOLUMES, name)?;
                    gone.push(name.clone());
                }
            }
            Ok::<_, ContainerError>(gone)
        })?;
        self.remove_volume_files(&gone)?;
        Ok(gone)
    }

    /// Every removal path ends here, once the records are gone: the files and the
    /// `destroy` event.
    fn remove_volume_files(&self, names: &[String]) -> Result<(), ContainerError> {
        let mut first = None;
        for n in names {
            self.event("volume", "destroy", n, &[("driver", "local".into())]);
            if let Err(e) = self.volumes.remove_files(n) {
                tracing::warn!("removing volume {n}: {e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }

    /// `volume create`, with its event.
    pub fn volume_create(&self, o: &CreateOptions) -> Result<Volume, VolumeError> {
        let v = self.volumes.create(o)?;
        self.event("volume", "create", &v.name, &[("driver", "local".into())]);
        Ok(v)
    }

    /// `volume rm`: refuses a volume any container uses, stopped or not; with `force`,
    /// removes those containers first (podman's `volume rm --force`).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<(), ContainerError> {
        self.volumes.get(name)?;
        if force {
            for c in self.volume_users(name)? {
                self.remove(&c.id, true)?;
            }
        }
        // Checked again in the transaction that removes the record: a container created
        // meanwhile either is seen here or finds the volume gone.
        self.images.meta.write(|tx| {
            if let Some((_, c)) = tx
                .list::<Container>(CONTAINERS)?
                .into_iter()
                .find(|(_, c)| c.volumes.iter().any(|v| v == name))
            {
                return Err(VolumeError::InUse {
                    volume: name.into(),
                    container: c.name,
                }
                .into());
            }
            if !tx.remove(VOLUMES, name)? {
                return Err(VolumeError::NotFound(name.into()).into());
            }
            Ok::<_, ContainerError>(())
        })?;
        self.remove_volume_files(&[name.to_string()])
    }

    /// `volume prune`: removes every volume no container uses, and directories under
    /// ROOT/volumes that have no record. Returns the names removed.
    pub fn volume_prune(&self) -> Result<Vec<String>, ContainerError> {
        let (gone, known) = self.images.meta.write(|tx| {
            let users: Vec<Container> = tx
                .list::<Container>(CONTAINERS)?
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            let (mut gone, mut known) = (vec![], vec![]);
            for (name, _) in tx.list::<Volume>(VOLUMES)? {
                if users.iter().any(|u| u.volumes.contains(&name)) {
                    known.push(name);
                } else {
                    tx.remove(VOLUMES, &name)?;
                    gone.push(name);
                }
            }
            Ok::<_, ContainerError>((gone, known))
        })?;
        self.remove_volume_files(&gone)?;
        for o in self
            .volumes
            .orphans(&known)
            .into_iter()
            .filter(|o| !gone.contains(o))
        {
            self.volumes.remove_orphan(&o)?;
        }
        Ok(gone)
    }
}
