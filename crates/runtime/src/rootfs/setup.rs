//! Child side: carries out a [`RootfsPlan`] between clone and exec. Raw syscalls on
//! pre-built data only: no allocation, no formatting, errors as [`Failure`] frames.

// A Failure is returned by value on purpose: boxing it would allocate between clone and exec.
#![allow(clippy::result_large_err)]

use super::{MountKind, MountPlan, RootPath, RootfsPlan};
use crate::process::channel::{Failure, Step};
use berth_sys::mount::{mount_setattr, Attr, AT_EMPTY_PATH, AT_RECURSIVE, MOUNT_ATTR_RDONLY};
use berth_sys::Errno;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

type R<T> = Result<T, Failure>;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

fn fail(step: Step, index: usize) -> impl Fn(Errno) -> Failure {
    move |e| Failure::new(step, index as u32, e)
}

fn open_in_root(root: BorrowedFd, path: &CStr, flags: OFlags) -> Result<OwnedFd, Errno> {
    berth_sys::fd::open_in_root(root, path, flags)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    No,
    Dir,
    File,
}

/// Opens `p` (O_PATH) inside the root, creating missing directories (and, with
/// `Create::File`, an empty final file).
fn resolve(root: BorrowedFd, p: &RootPath, create: Create) -> Result<OwnedFd, Errno> {
    match open_in_root(root, p.full(), OFlags::PATH) {
        Err(Errno::NOENT) if create != Create::No => {}
        r => return r,
    }
    walk_creating(root, &p.prefixes, &p.names, create == Create::File)
}

/// Opens the parent directory of `p`, creating it if needed.
fn resolve_parent(root: BorrowedFd, p: &RootPath) -> Result<OwnedFd, Errno> {
    let n = p.names.len();
    if n <= 1 {
        return rustix::io::fcntl_dupfd_cloexec(root, 0);
    }
    walk_creating(root, &p.prefixes[..n - 1], &p.names[..n - 1], false)
}

/// Walks a pre-split path one component at a time, each resolved anew from the root
/// (so no symlink can lead out of it), creating what is missing: directories, and an
/// empty file for the last component when `last_is_file`.
fn walk_creating(
    root: BorrowedFd,
    prefixes: &[std::ffi::CString],
    names: &[std::ffi::CString],
    last_is_file: bool,
) -> Result<OwnedFd, Errno> {
    let n = names.len();
    let mut parent: Option<OwnedFd> = None;
    for i in 0..n {
        match open_in_root(root, &prefixes[i], OFlags::PATH) {
            Ok(fd) => {
                parent = Some(fd);
                continue;
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        let dir = parent.as_ref().map(|f| f.as_fd()).unwrap_or(root);
        let made = if i + 1 == n && last_is_file {
            rustix::fs::openat(
                dir,
                &names[i],
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(dir, &names[i], Mode::from_raw_mode(0o755))
        };
        match made {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        parent = Some(open_in_root(root, &prefixes[i], OFlags::PATH)?);
    }
    parent.ok_or(Errno::NOENT)
}

fn attach(tree: &OwnedFd, target: &OwnedFd) -> Result<(), Errno> {
    move_mount(
        tree,
        c"",
        target,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

fn clone_tree(fd: BorrowedFd, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    open_tree(fd, c"", flags)
}

/// Step 1: keep the container's mounts from propagating to the host, then make the
/// rootfs a mount of its own (pivot_root needs one). Returns an fd of the new root.
pub(crate) fn prepare(plan: &RootfsPlan) -> R<OwnedFd> {
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::from_bits_retain(plan.initial_propagation as u32),
    )
    .map_err(fail(Step::RootPropagation, 0))?;
    let tree = open_tree(
        CWD,
        plan.rootfs.as_c_str(),
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(fail(Step::RootfsBind, 0))?;
    move_mount(
        &tree,
        c"",
        CWD,
        plan.rootfs.as_c_str(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(fail(Step::RootfsBind, 0))?;
    Ok(tree)
}

fn fs_failure(step: Step, index: usize, fs: &OwnedFd, e: Errno) -> Failure {
    // The kernel explains fsconfig refusals in the context's log ("e tmpfs: Bad value…").
    let mut buf = [0u8; 192];
    let n = rustix::io::read(fs, &mut buf).unwrap_or(0);
    Failure::new(step, index as u32, e).with_detail(&buf[..n])
}

fn mount_one(root: BorrowedFd, index: usize, m: &MountPlan) -> R<()> {
    let target = resolve(
        root,
        &m.dest,
        if m.file { Create::File } else { Create::Dir },
    )
    .map_err(fail(Step::MountTarget, index))?;
    let tree = match &m.kind {
        MountKind::SetAttr => {
            return mount_setattr(&target, c"", AT_EMPTY_PATH, m.attr)
                .map_err(fail(Step::MountAttr, index));
        }
        MountKind::Bind { source, recursive } => {
            let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
            if *recursive {
                flags |= OpenTreeFlags::AT_RECURSIVE;
            }
            let tree =
                open_tree(CWD, source.as_c_str(), flags).map_err(fail(Step::MountSource, index))?;
            if m.attr.set | m.attr.clear != 0 {
                let a = Attr {
                    propagation: 0,
                    ..m.attr
                };
                mount_setattr(&tree, c"", AT_EMPTY_PATH, a)
                    .map_err(fail(Step::MountAttr, index))?;
            }
            tree
        }
        MountKind::Fs {
            fstype,
            source,
            flags,
            params,
        } => {
            let fs = fsopen(fstype.as_c_str(), FsOpenFlags::FSOPEN_CLOEXEC)
                .map_err(fail(Step::MountCreate, index))?;
            let configure = || -> Result<(), Errno> {
                fsconfig_set_string(&fs, c"source", source.as_c_str())?;
                for f in flags {
                    fsconfig_set_flag(&fs, f.as_c_str())?;
                }
                for (k, v) in params {
                    fsconfig_set_string(&fs, k.as_c_str(), v.as_c_str())?;
                }
                fsconfig_create(&fs)
            };
            configure().map_err(|e| fs_failure(Step::MountCreate, index, &fs, e))?;
            fsmount(
                &fs,
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::from_bits_retain(m.attr.set as u32),
            )
            .map_err(|e| fs_failure(Step::MountCreate, index, &fs, e))?
        }
    };
    if m.recursive_attr.set | m.recursive_attr.clear != 0 {
        mount_setattr(&tree, c"", AT_EMPTY_PATH | AT_RECURSIVE, m.recursive_attr)
            .map_err(fail(Step::MountAttr, index))?;
    }
    attach(&tree, &target).map_err(fail(Step::MountAttach, index))?;
    if m.attr.propagation != 0 {
        let rec = m.attr.propagation & libc::MS_REC != 0;
        let a = Attr {
            set: 0,
            clear: 0,
            propagation: m.attr.propagation & !libc::MS_REC,
            userns_fd: -1,
        };
        mount_setattr(
            &tree,
            c"",
            AT_EMPTY_PATH | if rec { AT_RECURSIVE } else { 0 },
            a,
        )
        .map_err(fail(Step::MountAttr, index))?;
    }
    Ok(())
}

/// Step 2: the spec's mounts, in order.
pub(crate) fn mounts(root: BorrowedFd, plan: &RootfsPlan) -> R<()> {
    for (i, m) in plan.mounts.iter().enumerate() {
        mount_one(root, i, m)?;
    }
    Ok(())
}

/// Step 3: device nodes (mknod, or binds of the host's nodes in a user namespace),
/// the /dev symlinks, and the working directory.
pub(crate) fn devices(root: BorrowedFd, plan: &RootfsPlan) -> R<()> {
    for (i, d) in plan.devices.iter().enumerate() {
        let err = fail(Step::Device, i);
        if let Some(host) = &d.bind_from {
            let target = resolve(root, &d.path, Create::File).map_err(&err)?;
            let tree = open_tree(
                CWD,
                host.as_c_str(),
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(&err)?;
            attach(&tree, &target).map_err(&err)?;
            continue;
        }
        let parent = resolve_parent(root, &d.path).map_err(&err)?;
        let name = d.path.name();
        let ftype = FileType::from_raw_mode(d.mode);
        let mode = Mode::from_raw_mode(d.mode & 0o7777);
        match rustix::fs::mknodat(&parent, name, ftype, mode, d.dev) {
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(&parent, name, AtFlags::empty()).map_err(&err)?;
                rustix::fs::mknodat(&parent, name, ftype, mode, d.dev).map_err(&err)?;
            }
            r => r.map_err(&err)?,
        }
        if d.uid != 0 || d.gid != 0 {
            rustix::fs::chownat(
                &parent,
                name,
                Some(rustix::fs::Uid::from_raw(d.uid)),
                Some(rustix::fs::Gid::from_raw(d.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(&err)?;
        }
    }
    for (i, (target, link)) in plan.dev_symlinks.iter().enumerate() {
        let parent = resolve_parent(root, link).map_err(fail(Step::DevSymlink, i))?;
        match rustix::fs::symlinkat(target.as_c_str(), &parent, link.name()) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(Failure::new(Step::DevSymlink, i as u32, e)),
        }
    }
    resolve(root, &plan.cwd, Create::Dir).map_err(fail(Step::Cwd, 0))?;
    Ok(())
}

/// Writes one sysctl through an fd that is verified to be on procfs (a bind or symlink
/// planted over /proc/sys must not redirect the write).
pub(crate) fn sysctl(root: BorrowedFd, index: usize, path: &RootPath, value: &CStr) -> R<()> {
    let err = fail(Step::Sysctl, index);
    let fd = berth_sys::fd::openat2(
        root,
        path.full(),
        OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
    )
    .map_err(&err)?;
    require_fs(&fd, PROC_SUPER_MAGIC).map_err(&err)?;
    rustix::io::write(&fd, value.to_bytes()).map_err(&err)?;
    Ok(())
}

fn require_fs(fd: &OwnedFd, magic: i64) -> Result<(), Errno> {
    let st = rustix::fs::fstatfs(fd)?;
    if st.f_type as i64 != magic {
        return Err(Errno::XDEV);
    }
    Ok(())
}

/// The container's terminal: a pty from the container's own devpts instance, its master
/// sent to the console socket, its peer bound on /dev/console. Returns the peer.
pub(crate) fn console(
    root: BorrowedFd,
    ptmx: &RootPath,
    console: &RootPath,
    socket: &OwnedFd,
) -> R<OwnedFd> {
    let err = fail(Step::Console, 0);
    let peer = pty(root, ptmx, socket)?;
    let target = resolve(root, console, Create::File).map_err(&err)?;
    let tree = clone_tree(peer.as_fd(), false).map_err(&err)?;
    attach(&tree, &target).map_err(&err)?;
    Ok(peer)
}

/// A new pty from the devpts at `ptmx` (which must really be devpts): the master goes
/// to `socket` over SCM_RIGHTS, the peer is returned. Also used by `exec --tty`.
pub(crate) fn pty(root: BorrowedFd, ptmx: &RootPath, socket: &OwnedFd) -> R<OwnedFd> {
    let err = fail(Step::Console, 0);
    let master = open_in_root(root, ptmx.full(), OFlags::RDWR | OFlags::NOCTTY).map_err(&err)?;
    require_fs(&master, DEVPTS_SUPER_MAGIC).map_err(&err)?;
    rustix::pty::unlockpt(&master).map_err(&err)?;
    let peer = rustix::pty::ioctl_tiocgptpeer(
        &master,
        rustix::pty::OpenptFlags::RDWR
            | rustix::pty::OpenptFlags::NOCTTY
            | rustix::pty::OpenptFlags::CLOEXEC,
    )
    .map_err(&err)?;
    {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        use std::mem::MaybeUninit;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = SendAncillaryBuffer::new(&mut space);
        let fds = [master.as_fd()];
        cmsg.push(SendAncillaryMessage::ScmRights(&fds));
        let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
        rustix::net::sendmsg(socket, &iov, &mut cmsg, SendFlags::NOSIGNAL)
            .map_err(fail(Step::ConsoleSend, 0))?;
    }
    Ok(peer)
}

/// Step 4: masked paths (a read-only tmpfs over directories, the host's /dev/null over
/// files) and read-only paths (a read-only bind of themselves). Paths under /proc must
/// land on procfs.
pub(crate) fn mask_and_protect(root: BorrowedFd, plan: &RootfsPlan) -> R<()> {
    for (i, p) in plan.masked.iter().enumerate() {
        let err = fail(Step::MaskPath, i);
        let fd = match open_in_root(root, p.full(), OFlags::PATH) {
            Err(Errno::NOENT) => continue,
            r => r.map_err(&err)?,
        };
        if p.under_proc() {
            require_fs(&fd, PROC_SUPER_MAGIC).map_err(&err)?;
        }
        let st = rustix::fs::fstat(&fd).map_err(&err)?;
        let tree = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let fs = fsopen(c"tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(&err)?;
            fsconfig_set_string(&fs, c"size", c"0").map_err(&err)?;
            fsconfig_create(&fs).map_err(&err)?;
            fsmount(
                &fs,
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::MOUNT_ATTR_RDONLY,
            )
            .map_err(&err)?
        } else {
            // The host's /dev/null, not the container's: an image can plant anything there.
            open_tree(
                CWD,
                c"/dev/null",
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(&err)?
        };
        attach(&tree, &fd).map_err(&err)?;
    }
    for (i, p) in plan.readonly.iter().enumerate() {
        let err = fail(Step::ReadonlyPath, i);
        let fd = match open_in_root(root, p.full(), OFlags::PATH) {
            Err(Errno::NOENT) => continue,
            r => r.map_err(&err)?,
        };
        if p.under_proc() {
            require_fs(&fd, PROC_SUPER_MAGIC).map_err(&err)?;
        }
        let tree = clone_tree(fd.as_fd(), true).map_err(&err)?;
        let ro = Attr {
            set: MOUNT_ATTR_RDONLY,
            clear: MOUNT_ATTR_RDONLY,
            propagation: 0,
            userns_fd: -1,
        };
        mount_setattr(&tree, c"", AT_EMPTY_PATH | AT_RECURSIVE, ro).map_err(&err)?;
        attach(&tree, &fd).map_err(&err)?;
    }
    Ok(())
}

/// Step 5: make the rootfs the root (pivot_root, or MS_MOVE + chroot with --no-pivot),
/// detach the old root, then apply root.readonly and rootfsPropagation.
pub(crate) fn enter(root: OwnedFd, plan: &RootfsPlan) -> R<()> {
    let err = fail(Step::PivotRoot, 0);
    rustix::process::fchdir(&root).map_err(&err)?;
    drop(root);
    if plan.no_pivot {
        rustix::mount::mount_move(c".", c"/").map_err(&err)?;
        rustix::process::chroot(c".").map_err(&err)?;
    } else {
        rustix::process::pivot_root(c".", c".").map_err(&err)?;
        // The old root is stacked under the new one at "."; make sure its unmount
        // cannot propagate to the host, then detach it.
        rustix::mount::mount_change(
            c".",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )
        .map_err(&err)?;
        rustix::mount::unmount(c".", UnmountFlags::DETACH).map_err(&err)?;
    }
    rustix::process::chdir(c"/").map_err(&err)?;
    if plan.readonly_root {
        let ro = Attr {
            set: MOUNT_ATTR_RDONLY,
            clear: MOUNT_ATTR_RDONLY,
            propagation: 0,
            userns_fd: -1,
        };
        mount_setattr(CWD, c"/", 0, ro).map_err(fail(Step::ReadonlyRoot, 0))?;
    }
    if let Some(p) = plan.final_propagation {
        rustix::mount::mount_change(c"/", MountPropagationFlags::from_bits_retain(p as u32))
            .map_err(fail(Step::FinalPropagation, 0))?;
    }
    Ok(())
}
