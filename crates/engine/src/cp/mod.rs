//! `cp`: files between a container and the host, or a tar stream, as `docker cp` does.
//!
//! The container's content is hostile. Four rules keep it from reaching the host:
//! 1. Every path the user names in the container is resolved by the kernel inside the
//!    container's root (`openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`): a symlink
//!    such as `/out -> /` or `/in -> /root` leads to the *container's* `/` or `/root`.
//! 2. Below that, trees are walked and written by directory fds, one component at a
//!    time with `O_NOFOLLOW`: a symlink is copied as a symlink, never followed, and
//!    nothing is ever written through one (a symlink in the way of a directory is
//!    refused; one in the way of a file is replaced, not written through).
//! 3. Tar streams are extracted the same way; a name that climbs out of the destination
//!    (`../x`) is refused, and hard links must point at earlier entries inside it.
//! 4. What comes out to the host is not given powers it would not have had in the
//!    container: without `-a`, set-id bits are dropped (the files become the caller's);
//!    device nodes are not created on the host (they still go into a `-` stream).
//!
//! Which filesystem view: a running container's root is `/proc/<init>/root`, opened
//! after checking the init is still the runtime's (pid and start time) and checked
//! again after the open, so a recycled pid is never mistaken for it. That fd sees the
//! container's own mount namespace, so volumes, binds and tmpfs mounts are copied to
//! and from exactly as the container sees them. A stopped container has no mount
//! namespace: its writable snapshot is mounted (if it is not) for the copy and unmounted
//! after; its volumes and other mounts are not there, so a path on or below a directory
//! mount destination of its config.json is refused with a message saying to start it,
//! and a tree containing one is copied without the mount point's (hidden) content.
//!
//! Owners: files copied into the container belong to its root (uid/gid 0, mapped
//! through the config's user namespace mappings if it has any), or keep the source's
//! with `-a`; files copied out belong to the caller, or the source's owners with `-a`.
//! Modes and modification times are kept; extended attributes are not copied.

mod path;
mod stream;
mod view;
mod walk;
mod write;

use crate::container::{ContainerError, Engine};
use rustix::io::Errno;
use std::io::{Read, Write};
use std::path::Path;

/// `-a` and `-L`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpOptions {
    /// Keep the source's uid/gid (`-a`, `--archive`).
    pub archive: bool,
    /// Copy what a symlink given as the source points to, not the link (`-L`).
    pub follow_link: bool,
}

/// What was copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{place}: no such file or directory: {path}")]
    NotFound { place: String, path: String },
    /// What docker also refuses: a directory onto a file, a missing destination
    /// directory, a bad path.
    #[error("{place}: {path}: {reason}")]
    Invalid {
        place: String,
        path: String,
        reason: &'static str,
    },
    /// Unsafe content: a link to write through, a name leaving the destination.
    #[error("{place}: refusing {path}: {reason}")]
    Refused {
        place: String,
        path: String,
        reason: &'static str,
    },
    #[error(
        "{path} is on a mount of stopped container {container} ({mount}): start it to copy there"
    )]
    OnMount {
        container: String,
        path: String,
        mount: String,
    },
    #[error("{place}: {op} {path}: {source}")]
    Sys {
        place: String,
        op: &'static str,
        path: String,
        source: Errno,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("tar stream: {op}{}: {source}", after.as_ref().map(|a| format!(" (at {a})")).unwrap_or_default())]
    Stream {
        op: &'static str,
        after: Option<String>,
        source: std::io::Error,
    },
}

/// Where paths are, for messages: "host" or "container NAME".
#[derive(Debug, Clone)]
pub(crate) struct Place(pub String);

impl Place {
    pub(crate) fn host() -> Place {
        Place("host".into())
    }

    pub(crate) fn sys(&self, op: &'static str, path: &[u8]) -> impl FnOnce(Errno) -> CpError {
        let (place, path) = (self.0.clone(), path::lossy(path));
        move |source| CpError::Sys {
            place,
            op,
            path,
            source,
        }
    }

    pub(crate) fn not_found(&self, path: &[u8]) -> CpError {
        CpError::NotFound {
            place: self.0.clone(),
            path: path::lossy(path),
        }
    }

    pub(crate) fn invalid(&self, path: &[u8], reason: &'static str) -> CpError {
        CpError::Invalid {
            place: self.0.clone(),
            path: path::lossy(path),
            reason,
        }
    }

    pub(crate) fn refused(&self, path: &[u8], reason: &'static str) -> CpError {
        CpError::Refused {
            place: self.0.clone(),
            path: path::lossy(path),
            reason,
        }
    }
}

/// One thing to copy, whatever it came from (a directory walk or a tar entry).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub kind: Kind,
    /// Permission bits with set-id and sticky (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Bytes of a file (0 for anything else).
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    /// A path relative to the copy's top, as entry paths are.
    Hardlink(Vec<u8>),
    Char(u64),
    Block(u64),
    Fifo,
}

/// Where entries go. Paths are relative to the copy's top ("" is the top itself),
/// cleaned, components joined by `/`.
pub(crate) trait Sink {
    fn put(&mut self, path: &[u8], e: &Entry, data: &mut dyn Read) -> Result<(), CpError>;
    fn finish(&mut self) -> Result<Copied, CpError>;
}

impl Engine {
    /// A path of container `key` to copy out: the container's view (held until the copy
    /// is done), the parsed path, the opened source and the mount points below it to skip.
    fn open_in_container(&self, key: &str, src: &[u8], follow: bool) -> Result<Opened, CpError> {
        let view = view::View::open(self, key)?;
        let src = parse(&view.place, src, true)?;
        let source =
            walk::open_source(&view.side(), &src, follow).map_err(|e| view.explain(e, &src))?;
        let skip = view.check_source(&source, &src)?;
        Ok(Opened {
            view,
            src,
            source,
            skip,
        })
    }

    /// `cp CONTAINER:SRC DEST`: `src` of container `key` to the host path `dest`.
    pub fn copy_from_container(
        &self,
        key: &str,
        src: &[u8],
        dest: &Path,
        o: &CpOptions,
    ) -> Result<Copied, CpError> {
        let Opened {
            view: _view,
            src,
            source,
            skip,
        } = self.open_in_container(key, src, o.follow_link)?;
        let dest_path = parse(&Place::host(), dest.as_os_str().as_encoded_bytes(), false)?;
        let (base, prefix) = write::plan(&walk::Side::Host, &dest_path, &source, &src)?;
        let owner = if o.archive {
            write::Owner::Keep
        } else {
            write::Owner::Caller
        };
        let mut w = write::DirWriter::new(base, prefix, owner, Place::host(), vec![], false)?;
        walk::walk(source, &skip, &mut w)?;
        w.finish()
    }

    /// `cp CONTAINER:SRC -`: `src` as a tar stream (owners as in the container).
    pub fn copy_from_container_tar(
        &self,
        key: &str,
        src: &[u8],
        out: &mut dyn Write,
        o: &CpOptions,
    ) -> Result<Copied, CpError> {
        let Opened {
            view: _view,
            src,
            source,
            skip,
        } = self.open_in_container(key, src, o.follow_link)?;
        let top = match (&src.name, src.contents) {
            (Some(n), false) => n.clone(),
            _ => b".".to_vec(),
        };
        let mut t = stream::TarSink::new(out, top);
        walk::walk(source, &skip, &mut t)?;
        t.finish()
    }

    /// `cp SRC CONTAINER:DEST`: the host path `src` into container `key` at `dest`.
    pub fn copy_to_container(
        &self,
        key: &str,
        src: &Path,
        dest: &[u8],
        o: &CpOptions,
    ) -> Result<Copied, CpError> {
        let view = view::View::open(self, key)?;
        let dest = parse(&view.place, dest, true)?;
        let src = parse(&Place::host(), src.as_os_str().as_encoded_bytes(), false)?;
        let source = walk::open_source(&walk::Side::Host, &src, o.follow_link)?;
        let side = view.side();
        let (base, prefix) =
            write::plan(&side, &dest, &source, &src).map_err(|e| view.explain(e, &dest))?;
        let fences = view.check_dest(&base, &dest)?;
        let owner = if o.archive {
            write::Owner::Keep
        } else {
            write::Owner::Fixed(view.root_uid, view.root_gid)
        };
        let mut w = write::DirWriter::new(base, prefix, owner, view.place.clone(), fences, true)?;
        walk::walk(source, &[], &mut w)?;
        w.finish()
    }

    /// `cp - CONTAINER:DEST`: a tar stream extracted into the directory `dest`.
    pub fn copy_to_container_tar(
        &self,
        key: &str,
        input: &mut dyn Read,
        dest: &[u8],
        o: &CpOptions,
    ) -> Result<Copied, CpError> {
        let view = view::View::open(self, key)?;
        let dest = parse(&view.place, dest, true)?;
        let base = write::existing_dir(&view.side(), &dest).map_err(|e| view.explain(e, &dest))?;
        let fences = view.check_dest(&base, &dest)?;
        let owner = if o.archive {
            write::Owner::Keep
        } else {
            write::Owner::Fixed(view.root_uid, view.root_gid)
        };
        let mut w = write::DirWriter::new(base, vec![], owner, view.place.clone(), fences, true)?;
        stream::read_tar(input, &view.place, &mut w)?;
        w.finish()
    }
}

/// What [`Engine::open_in_container`] opened.
struct Opened {
    view: view::View,
    src: path::UserPath,
    source: walk::Source,
    skip: Vec<Vec<u8>>,
}

fn parse(place: &Place, raw: &[u8], in_container: bool) -> Result<path::UserPath, CpError> {
    path::user_path(raw, in_container).map_err(|reason| place.invalid(raw, reason))
}
