//! The content store: blobs (layers, configs, manifests, indexes) named by their digest.
//!
//! A blob is written to `ingest/`, hashed as it is written, and renamed into `blobs/ALG/HEX`
//! only once its digest and size match, so everything under `blobs/` is verified and no
//! reader ever sees a torn file. Each ingest holds an exclusive lock on its partial file:
//! two pulls of the same blob serialise, and the second finds the blob present. A partial
//! file left by a killed pull is resumed (its bytes re-hashed) by the next one.

use berth_distribution::{Digest, Hasher};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("content store: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blob {digest}: content hashes to {actual} (image-spec descriptor.md#digests: content MUST match its digest)")]
    DigestMismatch { digest: Digest, actual: Digest },
    #[error("blob {digest}: {actual} bytes where the descriptor says {expected} (image-spec descriptor.md: size MUST match)")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} is not in the content store")]
    NotFound(Digest),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// What [`ContentStore::ingest`] found.
pub enum Ingest {
    /// The blob is already in the store (perhaps written by a concurrent pull just now).
    Present,
    /// Write the blob with this writer, starting at [`Writer::offset`].
    Write(Writer),
}

pub struct Writer {
    file: File,
    path: PathBuf,
    final_path: PathBuf,
    hasher: Hasher,
    written: u64,
    digest: Digest,
    size: u64,
}

impl ContentStore {
    pub fn new(root: impl Into<PathBuf>) -> ContentStore {
        ContentStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    /// The size of the blob if present.
    pub fn size(&self, d: &Digest) -> Option<u64> {
        std::fs::metadata(self.path(d)).ok().map(|m| m.len())
    }

    pub fn open(&self, d: &Digest) -> Result<File, ContentError> {
        let path = self.path(d);
        File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ContentError::NotFound(d.clone()),
            _ => ContentError::Io {
                op: "open",
                path,
                source: e,
            },
        })
    }

    /// A small blob (manifest, config), read whole and checked against its digest again:
    /// these steer everything else, so a corrupted store must not go unnoticed.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut bytes = Vec::new();
        let path = self.path(d);
        self.open(d)?
            .read_to_end(&mut bytes)
            .map_err(io("read", &path))?;
        let mut h = d.hasher();
        h.update(&bytes);
        let actual = h.finish();
        if &actual != d {
            return Err(ContentError::DigestMismatch {
                digest: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Writes a blob held in memory (manifests, configs), verified first.
    pub fn write(&self, d: &Digest, bytes: &[u8]) -> Result<(), ContentError> {
        match self.ingest(d, bytes.len() as u64)? {
            Ingest::Present => Ok(()),
            Ingest::Write(mut w) => {
                if w.offset() != 0 {
                    w.restart()?;
                }
                w.write_all_checked(bytes)?;
                w.commit()
            }
        }
    }

    /// Starts (or resumes) writing blob `d` of `size` bytes. Blocks while another process
    /// writes the same blob.
    pub fn ingest(&self, d: &Digest, size: u64) -> Result<Ingest, ContentError> {
        if self.size(d).is_some() {
            return Ok(Ingest::Present);
        }
        let dir = self.root.join("ingest");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let final_path = self.path(d);
        let blobs = final_path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(blobs).map_err(io("create", blobs))?;
        let path = dir.join(format!("{}-{}", d.algorithm().name(), d.hex()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        file.lock().map_err(io("lock", &path))?;
        // The holder before us may have finished it.
        if self.size(d).is_some() {
            return Ok(Ingest::Present);
        }
        // Resume: re-hash what a killed pull left behind.
        let mut hasher = d.hasher();
        let mut written = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        file.seek(SeekFrom::Start(0)).map_err(io("seek", &path))?;
        loop {
            let n = file.read(&mut buf).map_err(io("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            written += n as u64;
        }
        let mut w = Writer {
            file,
            path,
            final_path,
            hasher,
            written,
            digest: d.clone(),
            size,
        };
        if written > size {
            w.restart()?;
        }
        Ok(Ingest::Write(w))
    }

    /// Removes a blob (garbage collection). Missing is fine.
    pub fn remove(&self, d: &Digest) -> Result<(), ContentError> {
        let path = self.path(d);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ContentError::Io {
                op: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Every blob in the store.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("list", &dir)(e)),
            };
            for e in rd {
                let e = e.map_err(io("list", &dir))?;
                if let Ok(d) = format!("{alg}:{}", e.file_name().to_string_lossy()).parse() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Removes partial files no pull is writing (their locks are free).
    pub fn clean_ingest(&self) -> Result<(), ContentError> {
        let dir = self.root.join("ingest");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let p = e.path();
            if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                if f.try_lock().is_ok() {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        Ok(())
    }
}

impl Writer {
    /// Bytes already present (a resumed ingest starts here).
    pub fn offset(&self) -> u64 {
        self.written
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Drops what was written and starts from byte 0.
    pub fn restart(&mut self) -> Result<(), ContentError> {
        self.file.set_len(0).map_err(io("truncate", &self.path))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io("seek", &self.path))?;
        self.hasher = self.digest.hasher();
        self.written = 0;
        Ok(())
    }

    /// Appends bytes, refusing to grow past the descriptor's size.
    pub fn write_all_checked(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        let total = self.written + bytes.len() as u64;
        if total > self.size {
            return Err(ContentError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: total,
            });
        }
        self.file
            .write_all(bytes)
            .map_err(io("write", &self.path))?;
        self.hasher.update(bytes);
        self.written = total;
        Ok(())
    }

    /// Verifies and moves the blob into place. On a mismatch the partial file is deleted,
    /// so the next attempt starts clean.
    pub fn commit(self) -> Result<(), ContentError> {
        let actual = self.hasher.clone().finish();
        let bad = if self.written != self.size {
            Some(ContentError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: self.written,
            })
        } else if actual != self.digest {
            Some(ContentError::DigestMismatch {
                digest: self.digest.clone(),
                actual,
            })
        } else {
            None
        };
        if let Some(e) = bad {
            let _ = std::fs::remove_file(&self.path);
            return Err(e);
        }
        self.file.sync_all().map_err(io("sync", &self.path))?;
        std::fs::rename(&self.path, &self.final_path).map_err(io("rename", &self.path))?;
        if let Some(dir) = self.final_path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync", dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_write_resume_and_refusals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cs = ContentStore::new(dir.path());
        let data = b"hello blob".to_vec();
        let d = Digest::sha256_of(&data);
        // Resume: a first writer stops half-way (dropped), the second continues from there.
        match cs.ingest(&d, data.len() as u64).expect("ingest") {
            Ingest::Write(mut w) => w.write_all_checked(&data[..4]).expect("write"),
            Ingest::Present => panic!("empty store"),
        }
        match cs.ingest(&d, data.len() as u64).expect("ingest") {
            Ingest::Write(mut w) => {
                assert_eq!(w.offset(), 4);
                w.write_all_checked(&data[4..]).expect("write");
                w.commit().expect("commit");
            }
            Ingest::Present => panic!("not committed yet"),
        }
        assert!(matches!(
            cs.ingest(&d, 10).expect("ingest"),
            Ingest::Present
        ));
        assert_eq!(cs.read(&d).expect("read"), data);
        assert_eq!(cs.list().expect("list"), vec![d.clone()]);
        // Wrong content: refused, nothing lands under blobs/.
        let other = Digest::sha256_of(b"other");
        let e = cs.write(&other, b"nope!").expect_err("mismatch");
        assert!(e.to_string().contains("hashes to"), "{e}");
        assert!(cs.size(&other).is_none());
        // Too many bytes: refused while writing.
        let Ingest::Write(mut w) = cs.ingest(&other, 5).expect("ingest") else {
            panic!("absent")
        };
        let e = w.write_all_checked(b"other and more").expect_err("size");
        assert!(matches!(e, ContentError::SizeMismatch { .. }), "{e}");
        // A blob corrupted on disk is noticed on read.
        std::fs::write(cs.path(&d), b"tampered").expect("tamper");
        assert!(matches!(
            cs.read(&d),
            Err(ContentError::DigestMismatch { .. })
        ));
        cs.remove(&d).expect("remove");
        assert!(cs.list().expect("list").is_empty());
    }
}
