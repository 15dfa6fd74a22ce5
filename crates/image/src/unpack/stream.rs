//! The uncompressed stream as the caller's thread reads it: counted (size) and bounded
//! (decompression bombs). Hashing (diff_id) happens on the worker, off this thread.

use std::io::{self, Read};

pub(crate) struct Measured<R> {
    inner: R,
    pub(crate) bytes: u64,
    max: u64,
    /// Set when `max` was crossed; reading then fails, and the unpacker reports
    /// `UnpackError::TooLarge` by looking here.
    pub(crate) exceeded: bool,
}

impl<R: Read> Measured<R> {
    pub(crate) fn new(inner: R, max: u64) -> Measured<R> {
        Measured {
            inner,
            bytes: 0,
            max,
            exceeded: false,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
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
        Ok(n)
    }
}
