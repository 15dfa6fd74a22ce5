//! The reading half: the source named by the user is opened (its directory resolved
//! inside the container's root, its final component not followed unless `-L`), then
//! walked by directory fds. Below the top every entry is opened relative to its
//! parent with `O_NOFOLLOW`, so symlinks are read as symlinks and nothing outside the
//! tree is ever read. Regular files are opened `O_PATH` first and checked to be
//! regular before they are reopened for reading, so a fifo or device node swapped in
//! by a running container is never opened (a fifo would block; a device would be
//! read from the host).

use super::path::{lossy, UserPath};
use super::{CpError, Entry, Kind, Place, Sink};
use rustix::fs::{self as fs, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Deeper trees are refused: each level holds a directory fd open.
const MAX_DEPTH: usize = 256;

/// Which side a user's path is on, and so how it is resolved.
pub(crate) enum Side<'a> {
    /// The caller's own paths, resolved as the shell would.
    Host,
    /// Inside a container's root (an `O_PATH` fd of its `/`).
    Container {
        root: BorrowedFd<'a>,
        place: &'a Place,
    },
}

impl Side<'_> {
    pub(crate) fn place(&self) -> Place {
        match self {
            Side::Host => Place::host(),
            Side::Container { place, .. } => (*place).clone(),
        }
    }

    fn open(&self, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        let flags = flags | OFlags::CLOEXEC;
        match self {
            Side::Host => fs::open(path, flags, Mode::empty()),
            Side::Container { root, .. } => in_root(*root, path, flags),
        }
    }

    /// A directory to read or write in, following symlinks (inside the root).
    pub(crate) fn open_dir(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        self.open(path, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// Whatever `path` leads to, following a final symlink (inside the root).
    pub(crate) fn open_path(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        self.open(path, OFlags::PATH)
    }
}

/// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` and absolute symlinks stop
/// at `root`, and /proc's magic links (which point anywhere) are refused.
pub(crate) fn in_root(root: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    berth_sys::fd::open_in_root(root, path, flags)
}

/// The source, opened.
pub(crate) struct Source {
    pub top: Top,
    /// The top's metadata (kind, owner, mode, times).
    pub entry: Entry,
    pub place: Place,
}

pub(crate) enum Top {
    Dir(OwnedFd),
    File(OwnedFd),
    /// A symlink or node, described fully by its entry; `parent` is its directory.
    Other {
        parent: OwnedFd,
    },
}

impl Source {
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.top, Top::Dir(_))
    }
}

/// Opens what `p` names on `side`. `follow`: a final symlink is followed (`-L`).
pub(crate) fn open_source(side: &Side<'_>, p: &UserPath, follow: bool) -> Result<Source, CpError> {
    let place = side.place();
    let full = p.full();
    let missing = |e: Errno| match e {
        Errno::NOENT => place.not_found(&full),
        Errno::NOTDIR => place.invalid(&full, "not a directory"),
        e => place.sys("open", &full)(e),
    };
    let Some(name) = &p.name else {
        let fd = side.open_dir(&p.parent).map_err(missing)?;
        let st = fs::fstat(&fd).map_err(place.sys("stat", &full))?;
        return opened(Top::Dir(fd), &st, place, &full);
    };
    let parent = side.open_dir(&p.parent).map_err(missing)?;
    let st = fs::statat(&parent, &name[..], AtFlags::SYMLINK_NOFOLLOW).map_err(missing)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    // "link/" means the directory the link leads to, as in the shell.
    if kind == FileType::Symlink && (follow || p.trailing_slash) {
        let fd = side.open_path(&full).map_err(missing)?;
        let st = fs::fstat(&fd).map_err(place.sys("stat", &full))?;
        let top = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Top::Dir(
                fs::openat(
                    &fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(place.sys("open", &full))?,
            ),
            FileType::RegularFile => Top::File(reopen(&fd).map_err(place.sys("open", &full))?),
            _ if p.trailing_slash => return Err(place.invalid(&full, "not a directory")),
            // A node at the end of the link: its parent is unknown, so it is read from
            // the O_PATH fd; `Other` needs a parent only for symlinks.
            _ => Top::Other { parent: fd },
        };
        return opened(top, &st, place, &full);
    }
    if p.trailing_slash && kind != FileType::Directory {
        return Err(place.invalid(&full, "not a directory"));
    }
    let top = match kind {
        FileType::Directory => Top::Dir(
            fs::openat(
                &parent,
                &name[..],
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(missing)?,
        ),
        FileType::RegularFile => Top::File(open_regular(&parent, &name[..], &place, &full)?),
        FileType::Socket | FileType::Unknown => {
            return Err(place.invalid(&full, "a socket cannot be copied"))
        }
        _ => Top::Other { parent },
    };
    // Regular files and directories are stat'ed through their fd (what is copied);
    // the rest by name, as they were found.
    let st = match &top {
        Top::Dir(fd) | Top::File(fd) => fs::fstat(fd).map_err(place.sys("stat", &full))?,
        Top::Other { .. } => st,
    };
    let mut src = opened(top, &st, place.clone(), &full)?;
    if let (Kind::Symlink(t), Top::Other { parent }) = (&mut src.entry.kind, &src.top) {
        *t = fs::readlinkat(parent, &name[..], vec![])
            .map_err(place.sys("readlink", &full))?
            .into_bytes();
    }
    Ok(src)
}

fn opened(top: Top, st: &Stat, place: Place, full: &[u8]) -> Result<Source, CpError> {
    if let Top::Dir(fd) | Top::File(fd) = &top {
        if pseudo_fs(fd) {
            return Err(place.invalid(
                full,
                "is on a kernel filesystem (proc, sysfs, cgroup...), which cp does not copy",
            ));
        }
    }
    Ok(Source {
        entry: entry_of(st, kind_of(st)),
        top,
        place,
    })
}

fn kind_of(st: &Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink(vec![]),
        FileType::CharacterDevice => Kind::Char(st.st_rdev),
        FileType::BlockDevice => Kind::Block(st.st_rdev),
        FileType::Fifo => Kind::Fifo,
        _ => Kind::File,
    }
}

fn entry_of(st: &Stat, kind: Kind) -> Entry {
    Entry {
        size: if kind == Kind::File {
            st.st_size as u64
        } else {
            0
        },
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
    }
}

/// Opens the regular file `name` of `dir` for reading, never opening anything else.
fn open_regular(
    dir: &OwnedFd,
    name: &[u8],
    place: &Place,
    shown: &[u8],
) -> Result<OwnedFd, CpError> {
    let fd = fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(place.sys("open", shown))?;
    let st = fs::fstat(&fd).map_err(place.sys("stat", shown))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(place.refused(shown, "it changed from a regular file while being copied"));
    }
    reopen(&fd).map_err(place.sys("open", shown))
}

/// Reopens an `O_PATH` fd of a regular file for reading: the same inode, whatever has
/// happened to its name since.
fn reopen(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Refuses a directory on a kernel filesystem as a place to write: creating there
/// means something else (a mkdir in cgroupfs makes a cgroup).
pub(crate) fn refuse_pseudo(fd: &impl AsFd, place: &Place, shown: &[u8]) -> Result<(), CpError> {
    if pseudo_fs(fd) {
        return Err(place.invalid(
            shown,
            "is on a kernel filesystem (proc, sysfs, cgroup...), which cp does not write to",
        ));
    }
    Ok(())
}

/// Kernel filesystems whose files lie about their sizes, or that are not data at all.
fn pseudo_fs(fd: &impl AsFd) -> bool {
    const MAGICS: &[u64] = &[
        0x9fa0,     // proc
        0x62656572, // sysfs
        0x27e0eb,   // cgroup
        0x63677270, // cgroup2
        0x1cd1,     // devpts
        0x19800202, // mqueue
        0x73636673, // securityfs
        0x64626720, // debugfs
        0x74726163, // tracefs
        0xcafe4a11, // bpf
        0xf97cff8c, // selinuxfs
        0x62656570, // configfs
        0x6165676c, // pstore
        0xde5e81e4, // efivarfs
        0x65735543, // fusectl
        0x42494e4d, // binfmt_misc
        0x6e736673, // nsfs
    ];
    fs::fstatfs(fd).is_ok_and(|s| MAGICS.contains(&(s.f_type as u64)))
}

/// Walks `src` into `sink`. Directories at the paths in `skip` (relative to the top)
/// are copied without their content (mount points of a stopped container).
pub(crate) fn walk(src: Source, skip: &[Vec<u8>], sink: &mut dyn Sink) -> Result<(), CpError> {
    let mut w = Walker {
        sink,
        skip,
        place: src.place.clone(),
        links: HashMap::new(),
    };
    match src.top {
        Top::File(fd) => w.sink.put(b"", &src.entry, &mut std::fs::File::from(fd)),
        Top::Other { .. } => w.sink.put(b"", &src.entry, &mut std::io::empty()),
        Top::Dir(fd) => {
            w.sink.put(b"", &src.entry, &mut std::io::empty())?;
            if skip.iter().any(|s| s.is_empty()) {
                return Ok(());
            }
            let dev = fs::fstat(&fd).map_err(w.place.sys("stat", b""))?.st_dev;
            w.dir(&fd, &mut Vec::new(), dev, 0)
        }
    }
}

struct Walker<'a> {
    sink: &'a mut dyn Sink,
    skip: &'a [Vec<u8>],
    place: Place,
    /// (dev, inode) of a multiply linked file → its path in the copy.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl Walker<'_> {
    fn dir(
        &mut self,
        fd: &OwnedFd,
        rel: &mut Vec<u8>,
        dev: u64,
        depth: usize,
    ) -> Result<(), CpError> {
        if depth > MAX_DEPTH {
            return Err(self.place.refused(rel, "more than 256 directories deep"));
        }
        let mut names: Vec<CString> = vec![];
        for e in fs::Dir::read_from(fd).map_err(self.place.sys("read directory", rel))? {
            let e = e.map_err(self.place.sys("read directory", rel))?;
            let n = e.file_name();
            if n != c"." && n != c".." {
                names.push(n.to_owned());
            }
        }
        names.sort();
        let len = rel.len();
        for name in names {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.to_bytes());
            let r = self.entry(fd, &name, rel, dev, depth);
            rel.truncate(len);
            r?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        dir: &OwnedFd,
        name: &CString,
        rel: &mut Vec<u8>,
        dev: u64,
        depth: usize,
    ) -> Result<(), CpError> {
        let st = match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed since the listing (a running container): not there to copy.
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.place.sys("stat", rel)(e)),
        };
        if matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Socket | FileType::Unknown
        ) {
            // A socket is an endpoint of a live process, not data (tar skips them too).
            return Ok(());
        }
        let kind = kind_of(&st);
        if kind != Kind::Dir && st.st_nlink > 1 {
            if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) {
                let e = Entry {
                    kind: Kind::Hardlink(first.clone()),
                    ..entry_of(&st, Kind::Fifo)
                };
                return self.sink.put(rel, &e, &mut std::io::empty());
            }
        }
        match kind {
            Kind::Dir => {
                let sub = match fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(self.place.sys("open", rel)(e)),
                };
                let st = fs::fstat(&sub).map_err(self.place.sys("stat", rel))?;
                self.sink
                    .put(rel, &entry_of(&st, Kind::Dir), &mut std::io::empty())?;
                let fenced = self.skip.iter().any(|s| s == rel);
                if fenced {
                    tracing::warn!(
                        path = %lossy(rel),
                        "a mount point of the stopped container: its content is not copied"
                    );
                }
                if fenced || (st.st_dev != dev && pseudo_fs(&sub)) {
                    return Ok(());
                }
                self.dir(&sub, rel, st.st_dev, depth + 1)
            }
            Kind::File => {
                let fd = open_regular(dir, name.to_bytes(), &self.place, rel)?;
                let st = fs::fstat(&fd).map_err(self.place.sys("stat", rel))?;
                self.sink.put(
                    rel,
                    &entry_of(&st, Kind::File),
                    &mut std::fs::File::from(fd),
                )?;
                if st.st_nlink > 1 {
                    self.links.insert((st.st_dev, st.st_ino), rel.clone());
                }
                Ok(())
            }
            Kind::Symlink(_) => {
                let t =
                    fs::readlinkat(dir, name, vec![]).map_err(self.place.sys("readlink", rel))?;
                let e = entry_of(&st, Kind::Symlink(t.into_bytes()));
                self.sink.put(rel, &e, &mut std::io::empty())
            }
            Kind::Char(_) | Kind::Block(_) | Kind::Fifo => {
                self.sink
                    .put(rel, &entry_of(&st, kind), &mut std::io::empty())?;
                if st.st_nlink > 1 {
                    self.links.insert((st.st_dev, st.st_ino), rel.clone());
                }
                Ok(())
            }
            Kind::Hardlink(_) => Ok(()),
        }
    }
}
