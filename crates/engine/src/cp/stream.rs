//! Tar streams (`-` on either side), with the `tar` crate: entries from a walk become a
//! stream on stdout, and a stream from stdin becomes entries for the writer. The
//! stream in is untrusted like the container: names are cleaned and refused when they
//! climb out of the destination, hard links must name something already in it, and
//! only files, directories, links, nodes and fifos are accepted.

use super::path::{clean_entry, join, lossy, BadName};
use super::{Copied, CpError, Entry, Kind, Place, Sink};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// Writes entries as a tar stream. Names start with `top` (the source's name, or `.`
/// for a directory's content).
pub(crate) struct TarSink<'w> {
    b: tar::Builder<&'w mut dyn Write>,
    top: Vec<u8>,
    copied: Copied,
}

impl<'w> TarSink<'w> {
    pub(crate) fn new(out: &'w mut dyn Write, top: Vec<u8>) -> TarSink<'w> {
        TarSink {
            b: tar::Builder::new(out),
            top,
            copied: Copied::default(),
        }
    }

    fn name(&self, path: &[u8]) -> Vec<u8> {
        match (&self.top[..], path.is_empty()) {
            (b".", true) => b"./".to_vec(),
            (b".", false) => path.to_vec(),
            (top, _) => join(top, path),
        }
    }
}

fn as_path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

impl Sink for TarSink<'_> {
    fn put(&mut self, path: &[u8], e: &Entry, data: &mut dyn Read) -> Result<(), CpError> {
        use tar::EntryType as T;
        let mut name = self.name(path);
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid.into());
        h.set_gid(e.gid.into());
        h.set_mtime(e.mtime.max(0) as u64);
        h.set_size(0);
        let mut exact = Exact {
            inner: data,
            left: 0,
            err: None,
        };
        let r = match &e.kind {
            Kind::File => {
                h.set_entry_type(T::Regular);
                h.set_size(e.size);
                // The header's size is written before the data: a file that shrinks
                // meanwhile (a running container) is padded, one that grows cut.
                exact.left = e.size;
                self.copied.bytes += e.size;
                self.b.append_data(&mut h, as_path(&name), &mut exact)
            }
            Kind::Dir => {
                h.set_entry_type(T::Directory);
                if !name.ends_with(b"/") {
                    name.push(b'/');
                }
                self.b.append_data(&mut h, as_path(&name), io::empty())
            }
            Kind::Symlink(t) => {
                h.set_entry_type(T::Symlink);
                self.b.append_link(&mut h, as_path(&name), as_path(t))
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(T::Link);
                let target = self.name(t);
                self.b.append_link(&mut h, as_path(&name), as_path(&target))
            }
            Kind::Char(dev) | Kind::Block(dev) => {
                h.set_entry_type(if matches!(e.kind, Kind::Char(_)) {
                    T::Char
                } else {
                    T::Block
                });
                let dev = *dev;
                let set = h
                    .set_device_major(rustix::fs::major(dev))
                    .and_then(|()| h.set_device_minor(rustix::fs::minor(dev)));
                set.and_then(|()| self.b.append_data(&mut h, as_path(&name), io::empty()))
            }
            Kind::Fifo => {
                h.set_entry_type(T::Fifo);
                self.b.append_data(&mut h, as_path(&name), io::empty())
            }
        };
        if let Some(source) = exact.err {
            return Err(CpError::Read {
                path: lossy(&name),
                source,
            });
        }
        r.map_err(|source| CpError::Stream {
            op: "write",
            after: Some(lossy(&name)),
            source,
        })?;
        self.copied.entries += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<Copied, CpError> {
        let stream = |source| CpError::Stream {
            op: "write",
            after: None,
            source,
        };
        self.b.finish().map_err(stream)?;
        self.b.get_mut().flush().map_err(stream)?;
        Ok(self.copied)
    }
}

/// Exactly `left` bytes of `inner`: zeros after an early end, nothing past `left`. A
/// read error is kept aside, so that it is reported as the source's, not the stream's.
struct Exact<'a> {
    inner: &'a mut dyn Read,
    left: u64,
    err: Option<io::Error>,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                buf[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return self.read(buf),
            Err(e) => {
                let shown = io::Error::new(e.kind(), e.to_string());
                self.err = Some(e);
                return Err(shown);
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads a tar stream into `sink`, entry by entry. Refusals stop the copy; what was
/// written before stays, as with docker.
pub(crate) fn read_tar(
    input: &mut dyn Read,
    place: &Place,
    sink: &mut dyn Sink,
) -> Result<(), CpError> {
    use tar::EntryType as T;
    let mut ar = tar::Archive::new(input);
    let mut last: Option<String> = None;
    let entries = ar.entries().map_err(|source| CpError::Stream {
        op: "read",
        after: None,
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| CpError::Stream {
            op: "read",
            after: last.clone(),
            source,
        })?;
        let h = entry.header();
        let ty = h.entry_type();
        if ty.is_pax_global_extensions() {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let path = clean_entry(&raw).map_err(|b| place.refused(&raw, bad_name(b)))?;
        let h = entry.header();
        // Empty numeric fields read as 0, as Go's archive/tar (docker's) reads them.
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let uid = h.uid().unwrap_or(0);
        let gid = h.gid().unwrap_or(0);
        let mtime = h.mtime().unwrap_or(0);
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(place.refused(&raw, "a uid or gid above 2^32"));
        };
        let dev = || -> Result<u64, CpError> {
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            Ok(rustix::fs::makedev(major, minor))
        };
        let link = || -> Result<Vec<u8>, CpError> {
            match entry.link_name_bytes() {
                Some(t) if !t.is_empty() && !t.contains(&0) => Ok(t.into_owned()),
                _ => Err(place.refused(&raw, "a link without a target")),
            }
        };
        let kind = match ty {
            T::Regular | T::Continuous if raw.ends_with(b"/") => Kind::Dir,
            T::Regular | T::Continuous | T::GNUSparse => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink(link()?),
            T::Link => Kind::Hardlink(clean_entry(&link()?).map_err(|b| {
                place.refused(
                    &raw,
                    match b {
                        BadName::Climbs => "a hard link to something outside the destination",
                        BadName::Nul => "a NUL in the link's target",
                    },
                )
            })?),
            T::Char => Kind::Char(dev()?),
            T::Block => Kind::Block(dev()?),
            T::Fifo => Kind::Fifo,
            _ => return Err(place.refused(&raw, "an entry type cp does not copy")),
        };
        let e = Entry {
            size: if kind == Kind::File { entry.size() } else { 0 },
            kind,
            mode,
            uid,
            gid,
            mtime: i64::try_from(mtime).unwrap_or(i64::MAX),
            mtime_nsec: 0,
        };
        sink.put(&path, &e, &mut entry)?;
        last = Some(lossy(&path));
    }
    Ok(())
}

fn bad_name(b: BadName) -> &'static str {
    match b {
        BadName::Climbs => "the name climbs out of the destination ('..')",
        BadName::Nul => "a NUL in the name",
    }
}
