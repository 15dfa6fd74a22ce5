//! Layer tars built entry by entry: honest ones with the `tar` crate's headers, hostile
//! ones by writing header fields raw (the builder's path setters refuse `..` and `/abs`).

use std::io::Write;
use tar::{EntryType, Header};

/// A fixed mtime so that trees compare; tests that care set their own.
pub const MTIME: u64 = 1_600_000_000;

/// A data region of a sparse file: offset and bytes.
pub type Region = (u64, Vec<u8>);

#[derive(Clone, Debug)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub data: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub dev: (u32, u32),
    pub pax: Vec<(String, Vec<u8>)>,
    /// GNU sparse: logical size and data regions; `data` is ignored.
    pub sparse: Option<(u64, Vec<Region>)>,
}

impl Entry {
    fn new(path: &str, kind: EntryType, mode: u32) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            data: Vec::new(),
            link: None,
            dev: (0, 0),
            pax: Vec::new(),
            sparse: None,
        }
    }
    pub fn file(path: &str, data: &[u8]) -> Entry {
        let mut e = Entry::new(path, EntryType::Regular, 0o644);
        e.data = data.to_vec();
        e
    }
    pub fn dir(path: &str) -> Entry {
        Entry::new(path, EntryType::Directory, 0o755)
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        let mut e = Entry::new(path, EntryType::Symlink, 0o777);
        e.link = Some(target.as_bytes().to_vec());
        e
    }
    pub fn hardlink(path: &str, target: &str) -> Entry {
        let mut e = Entry::new(path, EntryType::Link, 0o644);
        e.link = Some(target.as_bytes().to_vec());
        e
    }
    pub fn node(path: &str, kind: EntryType, major: u32, minor: u32) -> Entry {
        let mut e = Entry::new(path, kind, 0o666);
        e.dev = (major, minor);
        e
    }
    pub fn sparse(path: &str, size: u64, regions: Vec<Region>) -> Entry {
        let mut e = Entry::new(path, EntryType::GNUSparse, 0o644);
        e.sparse = Some((size, regions));
        e
    }
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }
    pub fn xattr(self, name: &str, value: &[u8]) -> Entry {
        self.pax(&format!("SCHILY.xattr.{name}"), value)
    }
    pub fn pax(mut self, key: &str, value: &[u8]) -> Entry {
        self.pax.push((key.to_owned(), value.to_vec()));
        self
    }
}

pub struct Layer {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            tar: tar::Builder::new(Vec::new()),
        }
    }

    pub fn add(&mut self, e: Entry) -> &mut Layer {
        let mut pax = e.pax.clone();
        if e.path.len() > 99 {
            pax.push(("path".into(), e.path.clone()));
        }
        if let Some(l) = &e.link {
            if l.len() > 99 {
                pax.push(("linkpath".into(), l.clone()));
            }
        }
        if !pax.is_empty() {
            self.tar
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .expect("pax");
        }
        let mut h = if e.sparse.is_some() {
            Header::new_gnu()
        } else {
            Header::new_ustar()
        };
        let name = &mut h.as_old_mut().name;
        let n = e.path.len().min(99);
        name[..n].copy_from_slice(&e.path[..n]);
        if let Some(l) = &e.link {
            let ln = &mut h.as_old_mut().linkname;
            let n = l.len().min(99);
            ln[..n].copy_from_slice(&l[..n]);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(e.dev.0).expect("major");
            h.set_device_minor(e.dev.1).expect("minor");
        }
        let data = if let Some((size, regions)) = &e.sparse {
            let mut regions = regions.clone();
            // GNU tar ends the map at the logical size with an empty region.
            let end = regions.last().map_or(0, |(o, d)| o + d.len() as u64);
            if end < *size {
                regions.push((*size, Vec::new()));
            }
            assert!(regions.len() <= 4, "only inline sparse maps");
            let gnu = h.as_gnu_mut().expect("gnu header");
            let mut data = Vec::new();
            for (i, (off, bytes)) in regions.iter().enumerate() {
                gnu.sparse[i].set_offset(*off);
                gnu.sparse[i].set_length(bytes.len() as u64);
                data.extend_from_slice(bytes);
            }
            gnu.set_real_size(*size);
            data
        } else {
            e.data.clone()
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.tar.append(&h, &data[..]).expect("append");
        self
    }

    pub fn dir(&mut self, path: &str) -> &mut Layer {
        self.add(Entry::dir(path))
    }
    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Layer {
        self.add(Entry::file(path, data))
    }
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Layer {
        self.add(Entry::symlink(path, target))
    }
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Layer {
        self.add(Entry::hardlink(path, target))
    }
    /// `.wh.NAME` beside `path`.
    pub fn whiteout(&mut self, path: &str) -> &mut Layer {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.add(Entry::file(&wh, b"").mode(0o600))
    }
    /// `.wh..wh..opq` in `dir`.
    pub fn opaque(&mut self, dir: &str) -> &mut Layer {
        let p = if dir.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        self.add(Entry::file(&p, b"").mode(0o600))
    }

    /// The finished tar (with its end-of-archive blocks).
    pub fn tar(&mut self) -> Vec<u8> {
        self.tar.finish().expect("finish");
        self.tar.get_mut().clone()
    }
}

pub fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(tar).expect("gzip");
    enc.finish().expect("gzip")
}

pub fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).expect("zstd")
}
