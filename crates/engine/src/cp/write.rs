//! The writing half: where the copy lands (docker's rules for files, directories and
//! missing destinations), and the writer that creates entries below that directory.
//!
//! The destination directory itself is resolved inside the container's root (so a
//! symlink on the way leads somewhere in the container, as docker resolves it). Below
//! it, the writer never follows a symlink: parents are opened one component at a time
//! with `O_NOFOLLOW` (a symlink in the way is refused), files are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` (a symlink or file in the way is unlinked and the
//! file created again, never opened), and owners, modes and times are set through the
//! new fd or with `AT_SYMLINK_NOFOLLOW`. A running container may race us, swapping a
//! directory for a symlink; every step above holds against that, because no step
//! resolves a name the container controls through a link.

use super::path::{is_within, join, lossy, split, UserPath};
use super::walk::{refuse_pseudo, Side, Source};
use super::{Copied, CpError, Entry, Kind, Place, Sink};
use rustix::fs::{self as fs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Where the copy goes: the directory it is written in and the name its top takes
/// there (empty: the top is that directory itself, for `SRC/.` into a directory).
pub(crate) fn plan(
    side: &Side<'_>,
    dest: &UserPath,
    source: &Source,
    src: &UserPath,
) -> Result<(OwnedFd, Vec<u8>), CpError> {
    let place = side.place();
    let full = dest.full();
    let into_dir = |d: OwnedFd| {
        let name = match (&src.name, src.contents && source.is_dir()) {
            (Some(n), false) => n.clone(),
            _ => vec![],
        };
        (d, name)
    };
    let Some(name) = &dest.name else {
        return existing_dir(side, dest).map(into_dir);
    };
    let parent = side.open_dir(&dest.parent).map_err(|e| match e {
        Errno::NOENT => place.invalid(&full, "the destination's parent directory does not exist"),
        Errno::NOTDIR => place.invalid(&full, "the destination's parent is not a directory"),
        e => place.sys("open", &dest.parent)(e),
    })?;
    let non_dir = |parent: OwnedFd| {
        if source.is_dir() {
            Err(place.invalid(&full, "cannot copy a directory onto a non-directory"))
        } else if dest.trailing_slash {
            Err(place.invalid(&full, "not a directory"))
        } else {
            Ok((parent, name.clone()))
        }
    };
    match fs::statat(&parent, &name[..], AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let d = fs::openat(&parent, &name[..], DIR | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(place.sys("open", &full))?;
                Ok(into_dir(d))
            }
            // Docker follows a final symlink to a directory (inside the root); one to
            // anything else is replaced, never written through.
            FileType::Symlink => match side.open_dir(&full) {
                Ok(d) => Ok(into_dir(d)),
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => non_dir(parent),
                Err(e) => Err(place.sys("open", &full)(e)),
            },
            _ => non_dir(parent),
        },
        Err(Errno::NOENT) if dest.trailing_slash && !source.is_dir() => {
            Err(place.invalid(&full, "the destination directory does not exist"))
        }
        Err(Errno::NOENT) => Ok((parent, name.clone())),
        Err(e) => Err(place.sys("stat", &full)(e)),
    }
}

/// `dest` as an existing directory (a tar stream is extracted into one).
pub(crate) fn existing_dir(side: &Side<'_>, dest: &UserPath) -> Result<OwnedFd, CpError> {
    let place = side.place();
    let full = dest.full();
    side.open_dir(&full).map_err(|e| match e {
        Errno::NOENT => place.invalid(&full, "the destination directory does not exist"),
        Errno::NOTDIR => place.invalid(&full, "the destination must be a directory"),
        e => place.sys("open", &full)(e),
    })
}

const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Who owns what is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    /// The source's owners (`-a`).
    Keep,
    /// Whoever runs berth: nothing is chowned (copies out without `-a`).
    Caller,
    /// These ids (the container's root, for copies in without `-a`).
    Fixed(u32, u32),
}

/// A directory (relative to the writer's base) below which nothing may be written: a
/// mount destination of a stopped container, whose content is not there.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    pub rel: Vec<u8>,
    pub mount: String,
    pub container: String,
}

pub(crate) struct DirWriter {
    base: OwnedFd,
    prefix: Vec<u8>,
    owner: Owner,
    place: Place,
    fences: Vec<Fence>,
    /// Into a container: device nodes are made and set-id bits kept. Out to the host:
    /// device nodes are skipped, and set-id bits dropped unless owners are kept.
    into_container: bool,
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Directories' modes and times, set at the end: creating children changes the
    /// times, and a read-only mode would stop a non-root owner's children.
    dirs: Vec<(Vec<u8>, Entry)>,
    /// Entries not written (device nodes on the host): hard links to them are skipped.
    skipped: HashSet<Vec<u8>>,
    buf: Vec<u8>,
    copied: Copied,
}

impl DirWriter {
    /// A writer below `base`, which must not be on a kernel filesystem.
    pub(crate) fn new(
        base: OwnedFd,
        prefix: Vec<u8>,
        owner: Owner,
        place: Place,
        fences: Vec<Fence>,
        into_container: bool,
    ) -> Result<DirWriter, CpError> {
        refuse_pseudo(&base, &place, b".")?;
        Ok(DirWriter {
            base,
            prefix,
            owner,
            place,
            fences,
            into_container,
            cache: None,
            dirs: vec![],
            skipped: HashSet::new(),
            buf: vec![0; 256 << 10],
            copied: Copied::default(),
        })
    }

    fn check_fences(&self, full: &[u8], kind: &Kind) -> Result<(), CpError> {
        for f in &self.fences {
            let at = full == &f.rel[..];
            if (is_within(full, &f.rel) && !at) || (at && *kind != Kind::Dir) {
                return Err(CpError::OnMount {
                    container: f.container.clone(),
                    path: lossy(full),
                    mount: f.mount.clone(),
                });
            }
        }
        Ok(())
    }

    /// The directory `path` below the base, each component opened without following
    /// it; missing ones are made when `create`.
    fn dir_at(&mut self, path: &[u8], create: bool) -> Result<BorrowedFd<'_>, CpError> {
        if path.is_empty() {
            return Ok(self.base.as_fd());
        }
        if !matches!(&self.cache, Some((p, _)) if p == path) {
            let fd = self.walk_dirs(path, create)?;
            self.cache = Some((path.to_vec(), fd));
        }
        Ok(self.cache.as_ref().expect("cache was just set").1.as_fd())
    }

    fn walk_dirs(&self, path: &[u8], create: bool) -> Result<OwnedFd, CpError> {
        let mut cur: Option<OwnedFd> = None;
        let mut end = 0;
        for comp in path.split(|&b| b == b'/') {
            end += comp.len() + usize::from(end > 0);
            let shown = &path[..end];
            let dir = cur.as_ref().map_or(self.base.as_fd(), |f| f.as_fd());
            let open = || fs::openat(dir, comp, DIR | OFlags::NOFOLLOW, Mode::empty());
            let fd = match open() {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match fs::mkdirat(dir, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.place.sys("mkdir", shown)(e)),
                    }
                    let fd = open().map_err(|e| in_the_way(&self.place, dir, comp, shown, e))?;
                    if let Owner::Fixed(u, g) = self.owner {
                        fs::fchown(&fd, Some(uid(u)), Some(gid(g)))
                            .map_err(self.place.sys("chown", shown))?;
                    }
                    fd
                }
                Err(Errno::NOENT) => {
                    return Err(self
                        .place
                        .refused(shown, "a hard link to something not in the copy"))
                }
                Err(e) => return Err(in_the_way(&self.place, dir, comp, shown, e)),
            };
            // A mount below the destination (a running container's) may be one.
            refuse_pseudo(&fd, &self.place, shown)?;
            cur = Some(fd);
        }
        cur.ok_or_else(|| self.place.invalid(path, "empty path"))
    }

    fn mode(&self, e: &Entry) -> Mode {
        let strip = !self.into_container && matches!(self.owner, Owner::Caller);
        Mode::from_raw_mode(if strip { e.mode & !0o6000 } else { e.mode })
    }

    fn ids(&self, e: &Entry) -> Option<(fs::Uid, fs::Gid)> {
        match self.owner {
            Owner::Keep => Some((uid(e.uid), gid(e.gid))),
            Owner::Fixed(u, g) => Some((uid(u), gid(g))),
            Owner::Caller => None,
        }
    }

    fn file(
        &mut self,
        parent: &[u8],
        name: &[u8],
        full: &[u8],
        e: &Entry,
        data: &mut dyn Read,
    ) -> Result<(), CpError> {
        let place = self.place.clone();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = self.dir_at(parent, true)?;
        let fd = create_replacing(dir, name, full, &place, |d, n| {
            fs::openat(d, n, flags, Mode::from_raw_mode(0o600))
        })?;
        let mut f = std::fs::File::from(fd);
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(CpError::Read {
                        path: lossy(full),
                        source,
                    })
                }
            };
            f.write_all(&self.buf[..n]).map_err(|err| {
                place.sys("write", full)(Errno::from_io_error(&err).unwrap_or(Errno::IO))
            })?;
            self.copied.bytes += n as u64;
        }
        if let Some((u, g)) = self.ids(e) {
            fs::fchown(&f, Some(u), Some(g)).map_err(place.sys("chown", full))?;
        }
        // After chown, which clears set-id bits.
        fs::fchmod(&f, self.mode(e)).map_err(place.sys("chmod", full))?;
        fs::futimens(&f, &times(e)).map_err(place.sys("set times of", full))
    }

    fn dir(&mut self, parent: &[u8], name: &[u8], full: &[u8], e: &Entry) -> Result<(), CpError> {
        let place = self.place.clone();
        let ids = self.ids(e);
        let dir = self.dir_at(parent, true)?;
        match fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(place.sys("stat", full))?;
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => {}
                    FileType::Symlink => return Err(place.refused(
                        full,
                        "a symlink is where a directory goes, and cp does not write through links",
                    )),
                    _ => {
                        return Err(place
                            .invalid(full, "cannot overwrite a non-directory with a directory"))
                    }
                }
            }
            Err(e) => return Err(place.sys("mkdir", full)(e)),
        }
        let fd = fs::openat(dir, name, DIR | OFlags::NOFOLLOW, Mode::empty())
            .map_err(|err| in_the_way(&place, dir, name, full, err))?;
        if let Some((u, g)) = ids {
            fs::fchown(&fd, Some(u), Some(g)).map_err(place.sys("chown", full))?;
        }
        self.dirs.push((full.to_vec(), e.clone()));
        Ok(())
    }

    fn symlink(
        &mut self,
        parent: &[u8],
        name: &[u8],
        full: &[u8],
        e: &Entry,
        target: &[u8],
    ) -> Result<(), CpError> {
        let place = self.place.clone();
        let ids = self.ids(e);
        let dir = self.dir_at(parent, true)?;
        // The target is data: it is never followed here, and later entries are never
        // written through it.
        create_replacing(dir, name, full, &place, |d, n| fs::symlinkat(target, d, n))?;
        if let Some((u, g)) = ids {
            fs::chownat(dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(place.sys("chown", full))?;
        }
        fs::utimensat(dir, name, &times(e), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(place.sys("set times of", full))
    }

    fn node(&mut self, parent: &[u8], name: &[u8], full: &[u8], e: &Entry) -> Result<(), CpError> {
        let (ft, dev) = match e.kind {
            Kind::Char(d) => (FileType::CharacterDevice, d),
            Kind::Block(d) => (FileType::BlockDevice, d),
            _ => (FileType::Fifo, 0),
        };
        if ft != FileType::Fifo && !self.into_container {
            // A node a container made would open the host's device here.
            tracing::warn!(path = %lossy(full), "device node not copied to the host");
            self.skipped.insert(full.to_vec());
            return Ok(());
        }
        let place = self.place.clone();
        let ids = self.ids(e);
        let mode = self.mode(e);
        let dir = self.dir_at(parent, true)?;
        create_replacing(dir, name, full, &place, |d, n| {
            fs::mknodat(d, n, ft, Mode::from_raw_mode(0o600), dev)
        })?;
        // The mode is set through an O_PATH fd of the node just made (checked to be a
        // node), since chmod by name would follow a symlink swapped in meanwhile.
        let fd = fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(place.sys("open", full))?;
        let st = fs::fstat(&fd).map_err(place.sys("stat", full))?;
        if FileType::from_raw_mode(st.st_mode) != ft {
            return Err(place.refused(full, "it was replaced while being copied"));
        }
        if let Some((u, g)) = ids {
            fs::chownat(dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(place.sys("chown", full))?;
        }
        fs::chmod(format!("/proc/self/fd/{}", fd.as_raw_fd()), mode)
            .map_err(place.sys("chmod", full))?;
        fs::utimensat(dir, name, &times(e), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(place.sys("set times of", full))
    }

    fn hardlink(
        &mut self,
        parent: &[u8],
        name: &[u8],
        full: &[u8],
        target: &[u8],
    ) -> Result<(), CpError> {
        let place = self.place.clone();
        let tfull = join(&self.prefix, target);
        if self.skipped.contains(&tfull) {
            self.skipped.insert(full.to_vec());
            return Ok(());
        }
        if tfull.is_empty() {
            return Err(place.refused(full, "a hard link to the destination directory"));
        }
        let (tparent, tname) = split(&tfull);
        let tdir = self.walk_dirs_or_base(tparent)?;
        match fs::statat(&tdir, tname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(place.refused(full, "a hard link to a directory"))
            }
            Ok(_) => {}
            Err(Errno::NOENT) => {
                return Err(place.refused(full, "a hard link to something not in the copy"))
            }
            Err(e) => return Err(place.sys("stat", &tfull)(e)),
        }
        let dir = self.dir_at(parent, true)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
        create_replacing(dir, name, full, &place, |d, n| {
            fs::linkat(&tdir, tname, d, n, AtFlags::empty())
        })?;
        Ok(())
    }

    fn walk_dirs_or_base(&self, path: &[u8]) -> Result<OwnedFd, CpError> {
        if path.is_empty() {
            return fs::openat(&self.base, ".", DIR, Mode::empty())
                .map_err(self.place.sys("open", b"."));
        }
        self.walk_dirs(path, false)
    }
}

impl Sink for DirWriter {
    fn put(&mut self, path: &[u8], e: &Entry, data: &mut dyn Read) -> Result<(), CpError> {
        let full = join(&self.prefix, path);
        if full.is_empty() {
            // The destination directory itself (`SRC/.`, a tar's "./"): left as it is.
            return match e.kind {
                Kind::Dir => Ok(()),
                _ => Err(self.place.refused(
                    b".",
                    "a non-directory entry for the destination directory itself",
                )),
            };
        }
        self.check_fences(&full, &e.kind)?;
        let (parent, name) = split(&full);
        match &e.kind {
            Kind::File => self.file(parent, name, &full, e, data)?,
            Kind::Dir => self.dir(parent, name, &full, e)?,
            Kind::Symlink(t) => self.symlink(parent, name, &full, e, t)?,
            Kind::Hardlink(t) => self.hardlink(parent, name, &full, t)?,
            Kind::Char(_) | Kind::Block(_) | Kind::Fifo => self.node(parent, name, &full, e)?,
        }
        self.copied.entries += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<Copied, CpError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, e) in dirs.iter().rev() {
            let fd = match self.walk_dirs(path, false) {
                Ok(fd) => fd,
                // Replaced by a later entry, or by the running container meanwhile.
                Err(_) => continue,
            };
            fs::fchmod(&fd, self.mode(e)).map_err(self.place.sys("chmod", path))?;
            fs::futimens(&fd, &times(e)).map_err(self.place.sys("set times of", path))?;
        }
        Ok(self.copied)
    }
}

/// Runs `create`; if the name is taken by a non-directory (a file, a symlink, a node),
/// unlinks it and runs `create` once more. A directory in the way is an error.
fn create_replacing<T>(
    dir: BorrowedFd<'_>,
    name: &[u8],
    full: &[u8],
    place: &Place,
    create: impl Fn(BorrowedFd<'_>, &[u8]) -> Result<T, Errno>,
) -> Result<T, CpError> {
    match create(dir, name) {
        Err(Errno::EXIST) => {}
        r => return r.map_err(place.sys("create", full)),
    }
    let st = fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(place.sys("stat", full))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Err(place.invalid(full, "cannot overwrite a directory with a non-directory"));
    }
    match fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(place.sys("replace", full)(e)),
    }
    // Should something take the name again meanwhile (a running container), this
    // fails with EEXIST rather than write through it.
    create(dir, name).map_err(place.sys("create", full))
}

/// Why a directory could not be opened without following: a symlink (refused, never
/// followed) or another non-directory.
fn in_the_way(place: &Place, dir: BorrowedFd<'_>, name: &[u8], shown: &[u8], e: Errno) -> CpError {
    match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => place.refused(
            shown,
            "a symlink is in the way, and cp does not write through links",
        ),
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
            place.invalid(shown, "not a directory")
        }
        _ => place.sys("open", shown)(e),
    }
}

fn times(e: &Entry) -> Timestamps {
    let t = Timespec {
        tv_sec: e.mtime,
        tv_nsec: e.mtime_nsec as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn uid(v: u32) -> fs::Uid {
    fs::Uid::from_raw(v)
}

fn gid(v: u32) -> fs::Gid {
    fs::Gid::from_raw(v)
}
