//! Filesystem trees as comparable snapshots: type, mode, owner, size, content, symlink
//! target, device numbers, xattrs, hardlink groups and regular-file mtimes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    /// Permission bits with setuid/setgid/sticky; 0 for symlinks (always 0777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub link: Option<PathBuf>,
    pub rdev: Option<u64>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Regular files only.
    pub mtime: Option<(i64, i64)>,
    /// Regular files with other links: the smallest path of the inode's links.
    pub link_group: Option<PathBuf>,
}

/// xattrs that are not part of the content: overlayfs's own, umoci's rootless owner record.
fn ignored_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name == "user.rootlesscontainers"
}

/// Every path under `root` (relative, root itself excluded).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    walk(root, Path::new(""), &mut out, &mut inodes);
    for paths in inodes.values() {
        if paths.len() > 1 {
            let min = paths.iter().min().expect("non-empty").clone();
            for p in paths {
                if let Some(n) = out.get_mut(p) {
                    n.link_group = Some(min.clone());
                }
            }
        }
    }
    out
}

fn walk(
    root: &Path,
    rel: &Path,
    out: &mut BTreeMap<PathBuf, Node>,
    inodes: &mut HashMap<(u64, u64), Vec<PathBuf>>,
) {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}"))
        .map(|e| e.expect("dirent").file_name())
        .collect();
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let full = root.join(&r);
        let md = fs::symlink_metadata(&full).expect("lstat");
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let mut xattrs = BTreeMap::new();
        if let Ok(names) = xattr::list(&full) {
            for n in names {
                let n = n.to_string_lossy().into_owned();
                if ignored_xattr(&n) {
                    continue;
                }
                let v = xattr::get(&full, &n).expect("getxattr").unwrap_or_default();
                xattrs.insert(n, v);
            }
        }
        if kind == 'f' && md.nlink() > 1 {
            inodes
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(r.clone());
        }
        out.insert(
            r.clone(),
            Node {
                kind,
                mode: if kind == 'l' { 0 } else { md.mode() & 0o7777 },
                uid: md.uid(),
                gid: md.gid(),
                size: if kind == 'f' || kind == 'l' {
                    md.size()
                } else {
                    0
                },
                link: (kind == 'l').then(|| fs::read_link(&full).expect("readlink")),
                rdev: matches!(kind, 'c' | 'b').then(|| md.rdev()),
                xattrs,
                mtime: (kind == 'f').then(|| (md.mtime(), md.mtime_nsec())),
                link_group: None,
            },
        );
        if kind == 'd' {
            walk(root, &r, out, inodes);
        }
    }
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = match (fs::File::open(a), fs::File::open(b)) {
        (Ok(fa), Ok(fb)) => (fa, fb),
        _ => return false,
    };
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).expect("read") {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Differences between two trees, one line each; empty when they match.
pub fn diff(a_root: &Path, b_root: &Path) -> Vec<String> {
    let a = snapshot(a_root);
    let b = snapshot(b_root);
    let mut out = Vec::new();
    for (p, na) in &a {
        match b.get(p) {
            None => out.push(format!("{p:?}: only in {a_root:?}")),
            Some(nb) => {
                if na != nb {
                    out.push(format!("{p:?}: {na:?} != {nb:?}"));
                } else if na.kind == 'f' && !same_content(&a_root.join(p), &b_root.join(p)) {
                    out.push(format!("{p:?}: content differs"));
                }
            }
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            out.push(format!("{p:?}: only in {b_root:?}"));
        }
    }
    out
}
