//! Entry application: each tar entry becomes a file, directory, link or node beneath the
//! layer root, replacing what was there the way containerd and docker do (a non-directory
//! replaces anything; a directory over a directory keeps it and takes the new metadata).

use super::error::{Op, Refusal, UnpackError};
use super::meta::Meta;
use super::path::{self, Name};
use super::resolve::{self, ResolveError, Root};
use super::xattr::{drop_unlisted_xattrs, xattrs, XattrTarget};
use super::{UnpackOptions, Whiteouts};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

/// File data is copied through one buffer of this size (std::io::copy's is 8 KiB).
const COPY_BUF: usize = 1024 * 1024;

pub(crate) struct Unpacker<'o> {
    pub(super) opts: &'o UnpackOptions,
    pub(super) root: Root,
    /// The current entry's cleaned path (reused buffer).
    path: Vec<u8>,
    /// A hardlink target's cleaned path, or a whiteout's victim (reused buffer).
    pub(super) other: Vec<u8>,
    buf: Vec<u8>,
    dirs: Vec<DeferredDir>,
    /// Apply mode: every path this layer created, with its ancestors, so that an opaque
    /// marker removes only what the parent layers put in its directory.
    pub(super) seen: Option<HashSet<Vec<u8>>>,
    /// File bytes written, holes included.
    materialised: u64,
    entries: u64,
}

/// A directory's mode and times, set after the whole layer: creating children changes the
/// mtime, and a read-only mode would stop an unprivileged caller from creating them.
struct DeferredDir {
    path: Vec<u8>,
    meta: Meta,
}

/// What the entry becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File { sparse: bool },
    Dir,
    Symlink,
    Hardlink,
    Node(FileType),
}

impl<'o> Unpacker<'o> {
    pub(crate) fn new(root: OwnedFd, opts: &'o UnpackOptions) -> Unpacker<'o> {
        Unpacker {
            opts,
            root: Root::new(root),
            path: Vec::new(),
            other: Vec::new(),
            buf: Vec::new(),
            dirs: Vec::new(),
            seen: (opts.whiteouts == Whiteouts::Apply).then(HashSet::new),
            materialised: 0,
            entries: 0,
        }
    }

    /// The entry being applied (or the last one), for errors found outside `run`.
    pub(crate) fn current_entry(&self) -> Option<String> {
        (!self.path.is_empty()).then(|| lossy(&self.path))
    }

    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }

    pub(crate) fn run<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
    ) -> Result<(), UnpackError> {
        let entries = archive.entries().map_err(|e| self.stream_err(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.stream_err(e))?;
            self.entry(&mut entry)?;
        }
        self.finish_dirs()
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let ty = entry.header().entry_type();
        if ty.is_pax_global_extensions() {
            // Archive-wide comments (git archive writes one); no file.
            return Ok(());
        }
        self.entries += 1;
        let raw = entry.path_bytes();
        if let Err(refusal) = path::clean(&raw, &mut self.path) {
            return Err(UnpackError::Refused {
                layer: self.opts.layer.clone(),
                entry: String::from_utf8_lossy(&raw).into_owned(),
                refusal,
            });
        }
        let trailing_slash = raw.last() == Some(&b'/');
        drop(raw);
        let kind = match self.kind(ty, trailing_slash) {
            Ok(k) => k,
            Err(refusal) => return Err(self.refused(&self.path, refusal)),
        };
        // Taken out so that `self` can be borrowed mutably beside it; put back at the end
        // to keep its allocation.
        let path = std::mem::take(&mut self.path);
        let applied = self.apply(entry, &path, kind);
        self.path = path;
        applied
    }

    fn kind(&self, ty: tar::EntryType, trailing_slash: bool) -> Result<Kind, Refusal> {
        use tar::EntryType as T;
        Ok(match ty {
            // v7 tars mark directories only with the trailing slash.
            T::Regular | T::Continuous if trailing_slash => Kind::Dir,
            T::Regular | T::Continuous => Kind::File { sparse: false },
            T::GNUSparse => Kind::File { sparse: true },
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::Hardlink,
            T::Char => Kind::Node(FileType::CharacterDevice),
            T::Block => Kind::Node(FileType::BlockDevice),
            T::Fifo => Kind::Node(FileType::Fifo),
            other => {
                return Err(Refusal::UnsupportedType {
                    kind: char::from(other.as_byte()),
                })
            }
        })
    }

    fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        kind: Kind,
    ) -> Result<(), UnpackError> {
        if path.is_empty() {
            // "./": the layer root itself; only its metadata can change.
            return match kind {
                Kind::Dir => self.root_dir(entry),
                _ => Err(self.refused(path, Refusal::EmptyPath)),
            };
        }
        let (parent, name) = path::split(path);
        match path::classify(name).map_err(|r| self.refused(path, r))? {
            Name::Opaque => return self.opaque(path, parent),
            Name::Whiteout(victim) => return self.whiteout(path, parent, victim),
            Name::Plain => {}
        }
        self.remember(path);
        let meta = Meta::read(entry).map_err(|r| self.refused(path, r))?;
        match kind {
            Kind::File { sparse } => self.file(entry, path, &meta, sparse),
            Kind::Dir => self.dir(entry, path, &meta),
            Kind::Symlink => self.symlink(entry, path, &meta),
            Kind::Hardlink => self.hardlink(entry, path),
            Kind::Node(ft) => self.node(entry, path, &meta, ft),
        }
    }

    /// Apply mode: records `path` and its ancestors as this layer's.
    fn remember(&mut self, path: &[u8]) {
        let Some(seen) = &mut self.seen else {
            return;
        };
        let mut p = path;
        loop {
            // Ancestors of a recorded path are recorded already.
            if seen.contains(p) {
                return;
            }
            seen.insert(p.to_vec());
            match p.iter().rposition(|&b| b == b'/') {
                Some(i) => p = &p[..i],
                None => return,
            }
        }
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        meta: &Meta,
        sparse: bool,
    ) -> Result<(), UnpackError> {
        let opts = self.opts;
        let size = entry.size();
        self.materialised = self.materialised.saturating_add(size);
        if self.materialised > self.opts.max_size {
            return Err(UnpackError::TooLarge {
                layer: self.opts.layer.clone(),
                max_size: self.opts.max_size,
                entry: Some(lossy(path)),
            });
        }
        let (parent, name) = path::split(path);
        let dir = parent_dir(&mut self.root, opts, path, parent, true)?;
        let mut removed = false;
        let created = loop {
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)) {
                Err(Errno::EXIST) if !removed => {
                    removed = true;
                    resolve::remove_all(dir, name)
                        .map_err(|e| io_err(self.opts, path, Op::Remove, e))?;
                }
                r => break r,
            }
        };
        let fd = created.map_err(|e| io_err(self.opts, path, Op::CreateFile, e))?;
        if removed {
            self.root.forget();
        }
        let mut file = File::from(fd);
        if self.buf.is_empty() {
            self.buf = vec![0; COPY_BUF];
        }
        let written = copy_data(entry, &mut file, &mut self.buf, sparse).map_err(|e| match e {
            CopyError::Read(source) => stream_error(opts, path, source),
            CopyError::Write(source) => UnpackError::Io {
                layer: self.opts.layer.clone(),
                entry: lossy(path),
                op: Op::WriteFile,
                source,
            },
        })?;
        if written != size {
            return Err(stream_error(
                opts,
                path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a file",
                ),
            ));
        }
        if sparse {
            // A trailing hole is not written; the size makes it.
            file.set_len(size)
                .map_err(|e| io_err(self.opts, path, Op::WriteFile, e))?;
        }
        let fd = file.as_fd();
        if self.opts.same_owner {
            fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                .map_err(|e| io_err(self.opts, path, Op::Chown, e))?;
        }
        // After chown, which clears security.capability; before chmod, so that an
        // unprivileged caller can still write user.* xattrs of a read-only file.
        xattrs(self.opts, entry, path, XattrTarget::Fd(fd))?;
        // After chown, which clears setuid and setgid.
        fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| io_err(self.opts, path, Op::Chmod, e))?;
        fs::futimens(fd, &meta.timestamps()).map_err(|e| io_err(self.opts, path, Op::SetTimes, e))
    }

    fn dir<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let opts = self.opts;
        let (parent, name) = path::split(path);
        let dir = parent_dir(&mut self.root, opts, path, parent, true)?;
        let mut removed = false;
        let mut kept = false;
        loop {
            match fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => break,
                Err(Errno::EXIST) if !removed => {
                    let st = fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| io_err(self.opts, path, Op::CreateDir, e))?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        // A directory over a directory keeps its content.
                        kept = true;
                        break;
                    }
                    removed = true;
                    resolve::remove_all(dir, name)
                        .map_err(|e| io_err(self.opts, path, Op::Remove, e))?;
                }
                Err(e) => return Err(io_err(self.opts, path, Op::CreateDir, e)),
            }
        }
        let fd = fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(self.opts, path, Op::CreateDir, e))?;
        if removed {
            self.root.forget();
        }
        if kept {
            // Its metadata is the new entry's, as an upper overlay directory's would be:
            // xattrs the entry does not list go too.
            drop_unlisted_xattrs(opts, entry, path, fd.as_fd())?;
        }
        self.dir_meta(entry, path, fd.as_fd(), meta)
    }

    /// The "./" entry: the layer root's own owner, xattrs, mode and times.
    fn root_dir<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let meta = Meta::read(entry).map_err(|r| self.refused(b"", r))?;
        let fd = self
            .root
            .open_dir(b"")
            .map_err(|e| self.resolve_err(b"", e, Op::ResolveParent))?;
        self.dir_meta(entry, b"", fd.as_fd(), &meta)
    }

    fn dir_meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        fd: BorrowedFd<'_>,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if self.opts.same_owner {
            fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                .map_err(|e| io_err(self.opts, path, Op::Chown, e))?;
        }
        xattrs(self.opts, entry, path, XattrTarget::Fd(fd))?;
        self.dirs.push(DeferredDir {
            path: path.to_vec(),
            meta: *meta,
        });
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let opts = self.opts;
        let target = match entry.link_name_bytes() {
            Some(t) if !t.is_empty() && !t.contains(&0) => t.into_owned(),
            _ => return Err(self.refused(path, Refusal::SymlinkNoTarget)),
        };
        let (parent, name) = path::split(path);
        let dir = parent_dir(&mut self.root, opts, path, parent, true)?;
        // The target is data, never followed here: resolution of later entries through it
        // is checked by the kernel (RESOLVE_BENEATH).
        let removed = create_replacing(dir, name, |d, n| fs::symlinkat(&target[..], d, n))
            .map_err(|e| io_err(self.opts, path, Op::Symlink, e))?;
        node_meta(opts, entry, dir, path, name, meta, false)?;
        if removed {
            self.root.forget();
        }
        Ok(())
    }

    fn node<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        meta: &Meta,
        ft: FileType,
    ) -> Result<(), UnpackError> {
        let opts = self.opts;
        let h = entry.header();
        let dev = if ft == FileType::Fifo {
            0
        } else {
            let major = h
                .device_major()
                .map_err(|_| self.refused(path, Refusal::BadHeader { field: "devmajor" }))?;
            let minor = h
                .device_minor()
                .map_err(|_| self.refused(path, Refusal::BadHeader { field: "devminor" }))?;
            fs::makedev(major.unwrap_or(0), minor.unwrap_or(0))
        };
        let (parent, name) = path::split(path);
        let dir = parent_dir(&mut self.root, opts, path, parent, true)?;
        let mode = Mode::from_raw_mode(meta.mode);
        let removed = match create_replacing(dir, name, |d, n| fs::mknodat(d, n, ft, mode, dev)) {
            Ok(removed) => removed,
            Err(Errno::PERM) if ft != FileType::Fifo => {
                tracing::warn!(
                    layer = %self.opts.layer,
                    entry = %lossy(path),
                    "skipping a device node: creating it needs CAP_MKNOD"
                );
                return Ok(());
            }
            Err(e) => return Err(io_err(self.opts, path, Op::Mknod, e)),
        };
        node_meta(opts, entry, dir, path, name, meta, true)?;
        if removed {
            self.root.forget();
        }
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
    ) -> Result<(), UnpackError> {
        let opts = self.opts;
        let Some(raw) = entry.link_name_bytes() else {
            return Err(self.refused(path, Refusal::HardlinkNoTarget));
        };
        let target_lossy = || String::from_utf8_lossy(&raw).into_owned();
        match path::clean(&raw, &mut self.other) {
            Ok(()) => {}
            Err(Refusal::LeavesRoot | Refusal::Absolute) => {
                let target = target_lossy();
                return Err(self.refused(path, Refusal::HardlinkLeavesRoot { target }));
            }
            Err(r) => return Err(self.refused(path, r)),
        }
        if self.other.is_empty() {
            let target = target_lossy();
            return Err(self.refused(path, Refusal::HardlinkToDirectory { target }));
        }
        if self.other == path {
            // A link to itself: what is there stays.
            return Ok(());
        }
        let target = target_lossy();
        let other = std::mem::take(&mut self.other);
        let (tparent, tname) = path::split(&other);
        let tdir = match self.root.open_dir(tparent) {
            Ok(fd) => fd,
            Err(ResolveError::Escape) => {
                return Err(self.refused(path, Refusal::HardlinkLeavesRoot { target }))
            }
            Err(ResolveError::Missing | ResolveError::NotDir) => {
                return Err(self.refused(path, Refusal::HardlinkMissing { target }))
            }
            Err(ResolveError::Io(e)) => return Err(io_err(self.opts, path, Op::Hardlink, e)),
        };
        let tstat = match fs::statat(&tdir, tname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                return Err(self.refused(path, Refusal::HardlinkMissing { target }))
            }
            Err(e) => return Err(io_err(self.opts, path, Op::Hardlink, e)),
        };
        if FileType::from_raw_mode(tstat.st_mode) == FileType::Directory {
            return Err(self.refused(path, Refusal::HardlinkToDirectory { target }));
        }
        let (parent, name) = path::split(path);
        let dir = parent_dir(&mut self.root, opts, path, parent, true)?;
        let mut removed = false;
        loop {
            // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink, as tar means.
            match fs::linkat(&tdir, tname, dir, name, AtFlags::empty()) {
                Ok(()) => break,
                Err(Errno::EXIST) if !removed => {
                    if let Ok(st) = fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                        if st.st_dev == tstat.st_dev && st.st_ino == tstat.st_ino {
                            break;
                        }
                    }
                    removed = true;
                    resolve::remove_all(dir, name)
                        .map_err(|e| io_err(self.opts, path, Op::Remove, e))?;
                }
                Err(e) => return Err(io_err(self.opts, path, Op::Hardlink, e)),
            }
        }
        if removed {
            self.root.forget();
        }
        self.other = other;
        Ok(())
    }

    /// Deferred directory modes and times, in tar order: a directory listed twice takes
    /// its last entry's metadata.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        for d in &self.dirs {
            let fd = match self.root.open_dir_nofollow(&d.path) {
                Ok(fd) => fd,
                // Removed or replaced later in the layer.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => continue,
                Err(e) => return Err(io_err(self.opts, &d.path, Op::Chmod, e)),
            };
            fs::fchmod(&fd, Mode::from_raw_mode(d.meta.mode))
                .map_err(|e| io_err(self.opts, &d.path, Op::Chmod, e))?;
            fs::futimens(&fd, &d.meta.timestamps())
                .map_err(|e| io_err(self.opts, &d.path, Op::SetTimes, e))?;
        }
        self.dirs.clear();
        Ok(())
    }

    fn resolve_err(&self, path: &[u8], e: ResolveError, op: Op) -> UnpackError {
        resolve_error(self.opts, path, e, op)
    }

    pub(super) fn refused(&self, path: &[u8], refusal: Refusal) -> UnpackError {
        refused(self.opts, path, refusal)
    }

    fn stream_err(&self, source: io::Error) -> UnpackError {
        stream_error(self.opts, &self.path, source)
    }
}

/// Owner, xattrs, mode (not for symlinks) and times of a symlink or node, by name in
/// its parent without following it.
fn node_meta<R: Read>(
    opts: &UnpackOptions,
    entry: &mut tar::Entry<'_, R>,
    dir: BorrowedFd<'_>,
    path: &[u8],
    name: &[u8],
    meta: &Meta,
    chmod: bool,
) -> Result<(), UnpackError> {
    if opts.same_owner {
        fs::chownat(
            dir,
            name,
            Some(uid(meta.uid)),
            Some(gid(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(opts, path, Op::Chown, e))?;
    }
    xattrs(opts, entry, path, XattrTarget::Name(dir, name))?;
    if chmod {
        // Not a symlink (it was just created as a node), so following is moot.
        fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
            .map_err(|e| io_err(opts, path, Op::Chmod, e))?;
    }
    fs::utimensat(dir, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err(opts, path, Op::SetTimes, e))
}

/// The parent directory of the entry at `path`. A function of the fields, not of the
/// `Unpacker`, so that the returned fd borrows only `root`.
pub(super) fn parent_dir<'r>(
    root: &'r mut Root,
    opts: &UnpackOptions,
    path: &[u8],
    parent: &[u8],
    create: bool,
) -> Result<BorrowedFd<'r>, UnpackError> {
    root.dir(parent, create)
        .map_err(|e| resolve_error(opts, path, e, Op::ResolveParent))
}

pub(super) fn refused(opts: &UnpackOptions, path: &[u8], refusal: Refusal) -> UnpackError {
    UnpackError::Refused {
        layer: opts.layer.clone(),
        entry: lossy(path),
        refusal,
    }
}

pub(super) fn resolve_error(
    opts: &UnpackOptions,
    path: &[u8],
    e: ResolveError,
    op: Op,
) -> UnpackError {
    let refusal = match e {
        ResolveError::Escape => Refusal::SymlinkEscape,
        ResolveError::NotDir => Refusal::ParentNotDirectory,
        ResolveError::Missing => return io_err(opts, path, op, Errno::NOENT),
        ResolveError::Io(e) => return io_err(opts, path, op, e),
    };
    UnpackError::Refused {
        layer: opts.layer.clone(),
        entry: lossy(path),
        refusal,
    }
}

pub(super) fn io_err(
    opts: &UnpackOptions,
    path: &[u8],
    op: Op,
    e: impl Into<io::Error>,
) -> UnpackError {
    UnpackError::Io {
        layer: opts.layer.clone(),
        entry: lossy(path),
        op,
        source: e.into(),
    }
}

fn stream_error(opts: &UnpackOptions, path: &[u8], source: io::Error) -> UnpackError {
    UnpackError::Stream {
        layer: opts.layer.clone(),
        after: (!path.is_empty()).then(|| lossy(path)),
        source,
    }
}

pub(super) fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn uid(v: u32) -> fs::Uid {
    fs::Uid::from_raw(v)
}

fn gid(v: u32) -> fs::Gid {
    fs::Gid::from_raw(v)
}

/// Runs `create`; if the name is taken, removes whatever holds it (a directory with its
/// content) and runs it once more. Returns whether something was removed.
pub(super) fn create_replacing(
    dir: BorrowedFd<'_>,
    name: &[u8],
    create: impl Fn(BorrowedFd<'_>, &[u8]) -> Result<(), Errno>,
) -> Result<bool, Errno> {
    match create(dir, name) {
        Ok(()) => Ok(false),
        Err(Errno::EXIST) => {
            resolve::remove_all(dir, name)?;
            create(dir, name)?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Whether `chunk` is all zeros, compared against a zero block (memcmp is fast even in
/// debug builds, where a byte loop is not).
fn is_zero(chunk: &[u8]) -> bool {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    chunk.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies an entry's data into `file` through `buf`. Sparse entries skip zero chunks
/// (leaving holes): the tar reader hands out a sparse file's holes and data regions in
/// separate reads, so a hole never shares a chunk with data.
fn copy_data<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    file: &mut File,
    buf: &mut [u8],
    sparse: bool,
) -> Result<u64, CopyError> {
    let mut off: u64 = 0;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => return Ok(off),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        let chunk = &buf[..n];
        if sparse {
            if !is_zero(chunk) {
                file.write_all_at(chunk, off).map_err(CopyError::Write)?;
            }
        } else {
            file.write_all(chunk).map_err(CopyError::Write)?;
        }
        off += n as u64;
    }
}
