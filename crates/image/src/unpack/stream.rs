//! The uncompressed stream as the unpacker reads it: hashed (diff_id), counted (size) and
//! bounded (decompression bombs).

use berth_distribution::digest::{Algorithm, Hasher};
use std::io::{self, Read};

pub(crate) struct Measured<R> {
    inner: R,
    hasher: Hasher,
    pub(crate) bytes: u64,
    max: u64,
    /// Set when `max` was crossed; the tar reader then sees an I/O error, which the
    /// unpacker turns back into `UnpackError::TooLarge` by looking here.
    pub(crate) exceeded: bool,
}

impl<R: Read> Measured<R> {
    pub(crate) fn new(inner: R, max: u64) -> Measured<R> {
        Measured {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            bytes: 0,
            max,
            exceeded: false,
        }
    }

    pub(crate) fn into_parts(self) -> (R, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<R: Read> Read for Measured<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("uncompressed size limit exceeded"));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.max {
            self.exceeded = true;
            return Err(io::Error::other("uncompressed size limit exceeded"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
