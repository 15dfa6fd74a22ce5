//! Layer unpacking: one OCI/docker layer tar (plain, gzip or zstd) applied to a directory,
//! following image-spec layer.md.
//!
//! The tar is treated as hostile. Paths are cleaned lexically and refused when they leave
//! the root; parent directories are resolved by the kernel beneath a directory fd of the
//! destination (openat2 `RESOLVE_BENEATH`), and final components are never followed, so no
//! symlink — from this layer or, in [`Whiteouts::Apply`] mode, from a parent layer — can
//! carry a write outside the destination. A refused layer leaves a partial destination,
//! which the caller deletes.
//!
//! The stream is read to its end (past tar's end-of-archive blocks), so the caller's hash of
//! the compressed bytes and [`Unpacked::diff_id`] both cover the whole blob.
//!
//! Steps per layer, in order:
//! 1. open `dest` as a directory fd;
//! 2. decompress → hash/count/bound → tar framing;
//! 3. apply each entry (whiteouts, replacement, creation, owner, xattrs, mode, times);
//! 4. set directory modes and times, deferred because creating children changes them;
//! 5. drain the stream to EOF and report diff_id, size and entry count.

mod apply;
mod compression;
mod error;
mod meta;
mod path;
mod resolve;
mod stream;
mod whiteout;

pub use compression::Compression;
pub use error::{Op, Refusal, UnpackError};

use berth_distribution::Digest;
use rustix::fs::{Mode, OFlags, CWD};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Buffer between the decompressor and the tar reader: headers are read 512 bytes at a
/// time, so they come from here; file data is read in bigger chunks that bypass it.
const TAR_BUF: usize = 256 * 1024;

/// How a layer's whiteouts are represented in the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// `dest` is an empty dir that becomes one overlayfs lower layer: `.wh.NAME` → char
    /// device 0:0 NAME; `.wh..wh..opq` → xattr trusted.overlay.opaque="y" on its directory.
    Overlay,
    /// `dest` already holds the parent layers' merged content (plain-copy snapshots):
    /// whiteouts delete. An opaque directory loses the parent layers' children but keeps
    /// what this layer puts in it, wherever the marker sits in the tar.
    Apply,
}

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub whiteouts: Whiteouts,
    /// The layer digest, named in every error message.
    pub layer: String,
    /// Bound on the uncompressed stream and on the bytes of files (holes of sparse files
    /// included); an error when exceeded (decompression bombs).
    pub max_size: u64,
    /// Give entries the owners the tar names (needs root); false: the caller owns them.
    pub same_owner: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// sha256 of the whole uncompressed stream (image-spec config.md rootfs.diff_ids).
    pub diff_id: Digest,
    /// Bytes in the uncompressed stream.
    pub size: u64,
    /// Tar entries applied, whiteouts included.
    pub entries: u64,
}

/// Unpacks one layer into `dest`, streaming. See the module documentation.
pub fn unpack<R: Read>(
    compressed: R,
    compression: Compression,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<Unpacked, UnpackError> {
    let stream_err = |source: io::Error| UnpackError::Stream {
        layer: opts.layer.clone(),
        after: None,
        source,
    };
    // 1.
    let root = rustix::fs::openat(
        CWD,
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Dest {
        layer: opts.layer.clone(),
        dest: dest.to_owned(),
        source: e.into(),
    })?;
    // 2.
    let decoder = compression::Decoder::new(compression, compressed).map_err(stream_err)?;
    let measured = stream::Measured::new(decoder, opts.max_size);
    let mut archive = tar::Archive::new(BufReader::with_capacity(TAR_BUF, measured));
    // 3. and 4.
    let mut unpacker = apply::Unpacker::new(root, opts);
    let applied = unpacker.run(&mut archive);
    // 5.
    let mut buffered = archive.into_inner();
    let drained = applied.and_then(|()| drain(&mut buffered).map_err(stream_err));
    let measured = buffered.into_inner();
    if measured.exceeded {
        return Err(UnpackError::TooLarge {
            layer: opts.layer.clone(),
            max_size: opts.max_size,
            entry: unpacker.current_entry(),
        });
    }
    drained?;
    let size = measured.bytes;
    let (decoder, hasher) = measured.into_parts();
    decoder.drain_input().map_err(stream_err)?;
    Ok(Unpacked {
        diff_id: hasher.finish(),
        size,
        entries: unpacker.entries(),
    })
}

fn drain(r: &mut impl BufRead) -> io::Result<()> {
    loop {
        let n = r.fill_buf()?.len();
        if n == 0 {
            return Ok(());
        }
        r.consume(n);
    }
}
