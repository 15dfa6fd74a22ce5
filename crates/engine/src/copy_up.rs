//! Pre-filling a new volume from the image ("copy-up", as docker and podman do): what the
//! image has at the mount path is copied into the volume before the first container sees
//! it, keeping owners, modes, times, symlinks, hard links, device nodes, fifos and
//! extended attributes (file capabilities included). Sockets are skipped.
//!
//! The image is untrusted. The mount path is resolved inside the rootfs
//! (`openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, as the runtime resolves the
//! mount's destination, so the copy is of exactly the directory the volume will cover);
//! below it every entry is opened relative to its parent's fd with `O_NOFOLLOW`, so a
//! symlink is copied as a symlink and never followed, and nothing outside the rootfs is
//! read. The volume side is written the same way, relative to fds.

use rustix::fs::{self as fs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// Deeper trees are refused: each level holds a few fds open.
const MAX_DEPTH: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("copying {path} of the image into the volume: {op}: {source}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        source: Errno,
    },
    #[error("copying {path} of the image into the volume: more than {MAX_DEPTH} directories deep")]
    TooDeep { path: PathBuf },
}

fn sys<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> CopyError + 'a {
    move |source| CopyError::Sys {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What was copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub entries: u64,
    pub bytes: u64,
}

/// Copies the image's `target` (a path in the container) from `rootfs` into the volume
/// directory `dest`, whose own owner, mode and xattrs become those of the source
/// directory. Copies nothing when the image has no directory there.
pub fn copy_up(rootfs: &Path, target: &str, dest: &Path) -> Result<Copied, CopyError> {
    let root = fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open rootfs", rootfs))?;
    let rel = target.trim_start_matches('/');
    let src = match berth_sys::fd::open_in_root(&root, rel, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        // Nothing there (the runtime will make the directory), or not a directory.
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(Copied::default()),
        Err(e) => return Err(sys("open", Path::new(target))(e)),
    };
    let dst = fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(sys("open volume", dest))?;
    let mut c = Copier {
        dest_root: fs::openat(
            &dst,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open volume", dest))?,
        links: HashMap::new(),
        copied: Copied::default(),
    };
    let here = PathBuf::from(target);
    c.dir(&src, &dst, &here, Path::new(""), 0)?;
    let st = fs::fstat(&src).map_err(sys("stat", &here))?;
    meta(&src, &dst, &st, &here)?;
    Ok(c.copied)
}

struct Copier {
    dest_root: OwnedFd,
    /// (dev, inode) of a multiply linked file → its path in the volume.
    links: HashMap<(u64, u64), PathBuf>,
    copied: Copied,
}

impl Copier {
    /// Copies the entries of `src` into `dst`. `shown` is the path for messages, `rel`
    /// the path below the volume's root.
    fn dir(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        shown: &Path,
        rel: &Path,
        depth: usize,
    ) -> Result<(), CopyError> {
        if depth > MAX_DEPTH {
            return Err(CopyError::TooDeep { path: shown.into() });
        }
        let mut names: Vec<CString> = vec![];
        for e in fs::Dir::read_from(src).map_err(sys("read directory", shown))? {
            let e = e.map_err(sys("read directory", shown))?;
            let n = e.file_name();
            if n != c"." && n != c".." {
                names.push(n.to_owned());
            }
        }
        for name in names {
            let shown = shown.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            let rel = rel.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            self.entry(src, dst, &name, &shown, &rel, depth)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: &OwnedFd,
        dst: &OwnedFd,
        name: &CStr,
        shown: &Path,
        rel: &Path,
        depth: usize,
    ) -> Result<(), CopyError> {
        let st = fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(sys("stat", shown))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        let key = (st.st_dev, st.st_ino);
        if kind != FileType::Directory && st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                return self.link(first.clone(), dst, name, shown);
            }
        }
        self.copied.entries += 1;
        match kind {
            FileType::Directory => {
                fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).map_err(sys("mkdir", shown))?;
                let s = fs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open", shown))?;
                let d = fs::openat(
                    dst,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open in volume", shown))?;
                self.dir(&s, &d, shown, rel, depth + 1)?;
                // After the children, so their writes do not move the directory's mtime.
                let st = fs::fstat(&s).map_err(sys("stat", shown))?;
                meta(&s, &d, &st, shown)?;
            }
            FileType::RegularFile => {
                let s = fs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open", shown))?;
                let st = fs::fstat(&s).map_err(sys("stat", shown))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    // Swapped since the statat: refuse rather than copy something else.
                    return Err(sys("open", shown)(Errno::STALE));
                }
                let d = fs::openat(
                    dst,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(sys("create in volume", shown))?;
                let (mut from, mut to) = (std::fs::File::from(s), std::fs::File::from(d));
                self.copied.bytes += std::io::copy(&mut from, &mut to).map_err(|e| {
                    sys("copy", shown)(Errno::from_io_error(&e).unwrap_or(Errno::IO))
                })?;
                meta(&from, &to, &st, shown)?;
                if st.st_nlink > 1 {
                    self.links.insert(key, rel.to_path_buf());
                }
            }
            FileType::Symlink => {
                let t = fs::readlinkat(src, name, vec![]).map_err(sys("readlink", shown))?;
                fs::symlinkat(t.as_c_str(), dst, name).map_err(sys("symlink in volume", shown))?;
                owner_times_at(dst, name, &st, shown)?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                fs::mknodat(dst, name, kind, Mode::from_raw_mode(0o600), st.st_rdev)
                    .map_err(sys("mknod in volume", shown))?;
                owner_times_at(dst, name, &st, shown)?;
                // The node was made just now by us, so the name cannot be a symlink.
                fs::chmodat(
                    dst,
                    name,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(sys("chmod in volume", shown))?;
                if st.st_nlink > 1 {
                    self.links.insert(key, rel.to_path_buf());
                }
            }
            FileType::Socket | FileType::Unknown => self.copied.entries -= 1,
        }
        Ok(())
    }

    /// A hard link to a file already copied. Its parent is found below the volume's root
    /// without following symlinks (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
    fn link(
        &mut self,
        first: PathBuf,
        dst: &OwnedFd,
        name: &CStr,
        shown: &Path,
    ) -> Result<(), CopyError> {
        let parent = first
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file = first
            .file_name()
            .ok_or_else(|| sys("link", shown)(Errno::INVAL))?;
        let pfd = berth_sys::fd::openat2(
            &self.dest_root,
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(sys("link in volume", shown))?;
        fs::linkat(&pfd, file, dst, name, AtFlags::empty())
            .map_err(sys("link in volume", shown))?;
        self.copied.entries += 1;
        Ok(())
    }
}

fn times(st: &fs::Stat) -> Timestamps {
    Timestamps {
        last_access: fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Owner and times of something without an fd of its own (a symlink or device node).
fn owner_times_at(
    dst: &OwnedFd,
    name: &CStr,
    st: &fs::Stat,
    shown: &Path,
) -> Result<(), CopyError> {
    fs::chownat(
        dst,
        name,
        Some(fs::Uid::from_raw(st.st_uid)),
        Some(fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown in volume", shown))?;
    fs::utimensat(dst, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(sys("set times in volume", shown))
}

/// Owner, xattrs, mode and times, in that order: chown clears set-id bits and file
/// capabilities, so those come after it.
fn meta(src: &impl AsFd, dst: &impl AsFd, st: &fs::Stat, shown: &Path) -> Result<(), CopyError> {
    fs::fchown(
        dst,
        Some(fs::Uid::from_raw(st.st_uid)),
        Some(fs::Gid::from_raw(st.st_gid)),
    )
    .map_err(sys("chown in volume", shown))?;
    xattrs(src, dst, shown)?;
    fs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(sys("chmod in volume", shown))?;
    fs::futimens(dst, &times(st)).map_err(sys("set times in volume", shown))
}

/// Copies extended attributes. Ones the volume's filesystem cannot hold (or that need a
/// privilege berth lacks, like other LSMs' labels) are skipped: the data matters more.
fn xattrs(src: &impl AsFd, dst: &impl AsFd, shown: &Path) -> Result<(), CopyError> {
    let skip = |e: Errno| {
        matches!(
            e,
            Errno::NOTSUP | Errno::PERM | Errno::NODATA | Errno::INVAL
        )
    };
    let mut list = vec![0u8; 4096];
    let n = loop {
        match fs::flistxattr(src, &mut list[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) if list.len() < 1 << 20 => list.resize(list.len() * 4, 0),
            Err(e) if skip(e) => return Ok(()),
            Err(e) => return Err(sys("list xattrs", shown)(e)),
        }
    };
    for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        // overlayfs's own bookkeeping, should it ever show through.
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 4096];
        let len = loop {
            match fs::fgetxattr(src, cname.as_c_str(), &mut value[..]) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) if value.len() < 1 << 20 => value.resize(value.len() * 4, 0),
                Err(e) if skip(e) => break None,
                Err(e) => return Err(sys("read xattr", shown)(e)),
            }
        };
        let Some(len) = len else { continue };
        match fs::fsetxattr(
            dst,
            cname.as_c_str(),
            &value[..len],
            fs::XattrFlags::empty(),
        ) {
            Ok(()) => {}
            Err(e) if skip(e) => {}
            Err(e) => return Err(sys("write xattr", shown)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_a_tree_without_following_symlinks() {
        let root = tempfile::tempdir().expect("tempdir");
        let vol = tempfile::tempdir().expect("tempdir");
        let d = root.path().join("data");
        std::fs::create_dir_all(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("sub/f"), "hello").expect("write");
        std::fs::set_permissions(d.join("sub/f"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
        std::fs::hard_link(d.join("sub/f"), d.join("hl")).expect("link");
        std::os::unix::fs::symlink("/etc/hostname", d.join("abs")).expect("symlink");
        let f = std::fs::File::open(d.join("sub/f")).expect("open");
        let xattr = fs::fsetxattr(&f, "user.berth", b"kept", fs::XattrFlags::empty());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        let c = copy_up(root.path(), "/data", vol.path()).expect("copy");
        assert_eq!(c.bytes, 5);
        let v = vol.path();
        assert_eq!(
            std::fs::read_to_string(v.join("sub/f")).expect("read"),
            "hello"
        );
        assert_eq!(
            std::fs::metadata(v.join("sub/f")).expect("stat").mode() & 0o7777,
            0o640
        );
        assert_eq!(std::fs::metadata(v).expect("stat").mode() & 0o7777, 0o750);
        assert_eq!(
            std::fs::metadata(v.join("hl")).expect("stat").ino(),
            std::fs::metadata(v.join("sub/f")).expect("stat").ino()
        );
        assert_eq!(
            std::fs::read_link(v.join("abs")).expect("link"),
            Path::new("/etc/hostname")
        );
        // Where the test's filesystem has user xattrs, they are copied.
        if xattr.is_ok() {
            let f = std::fs::File::open(v.join("sub/f")).expect("open");
            let mut buf = [0u8; 16];
            let n = fs::fgetxattr(&f, "user.berth", &mut buf[..]).expect("xattr copied");
            assert_eq!(&buf[..n], b"kept");
        }
        // Nothing there: nothing copied, no error.
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            copy_up(root.path(), "/none", empty.path()).expect("copy"),
            Copied::default()
        );
    }

    #[test]
    fn a_symlinked_mount_path_resolves_inside_the_rootfs() {
        let root = tempfile::tempdir().expect("tempdir");
        let vol = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("etc")).expect("mkdir");
        std::fs::write(root.path().join("etc/mine"), "image").expect("write");
        std::os::unix::fs::symlink("/etc", root.path().join("data")).expect("symlink");
        copy_up(root.path(), "/data", vol.path()).expect("copy");
        let names: Vec<_> = std::fs::read_dir(vol.path())
            .expect("read")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("mine")]);
    }
}
