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
//! `unpack` does not verify anything against the image: the caller compares
//! [`Unpacked::diff_id`] with the config's `rootfs.diff_ids[i]` (and its own digest of the
//! compressed bytes with the manifest's layer descriptor), and deletes `dest` on any error.
//!
//! ```no_run
//! use berth_image::unpack::{unpack, Compression, UnpackOptions, Whiteouts};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
//! let blob = std::fs::File::open("/var/lib/berth/blobs/sha256/ab12")?;
//! let opts = UnpackOptions {
//!     whiteouts: Whiteouts::Overlay, // dest becomes one overlayfs lowerdir
//!     layer: "sha256:ab12".into(),
//!     max_size: 64 << 30,
//!     same_owner: true,
//! };
//! let dest = std::path::Path::new("/var/lib/berth/snapshots/7/fs"); // empty directory
//! let got = unpack(blob, Compression::from_media_type(media_type)?, dest, &opts)?;
//! println!("{} entries, diff_id {}", got.entries, got.diff_id);
//! # Ok(())
//! # }
//! ```
//!
//! Steps per layer, in order:
//! 1. open `dest` as a directory fd;
//! 2. decompress → count/bound, on the caller's thread, to EOF;
//! 3. on a worker thread: hash, tar framing, then each entry applied (whiteouts,
//!    replacement, creation, owner, xattrs, mode, times);
//! 4. on the worker: directory modes and times, deferred because creating children
//!    changes them;
//! 5. drain what the decompressor left of the input and report diff_id, size and entry
//!    count.

mod apply;
mod compression;
mod error;
mod meta;
mod path;
mod pipeline;
mod resolve;
mod stream;
mod whiteout;
mod xattr;

pub use compression::Compression;
pub use error::{Op, Refusal, UnpackError};

use berth_distribution::Digest;
use rustix::fs::{Mode, OFlags, CWD};
use std::io::{self, Read};
use std::path::Path;

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
    // 2. to 5.: decompression and hashing here, entries on a worker (see `pipeline`).
    let decoder = compression::Decoder::new(compression, compressed).map_err(stream_err)?;
    let mut measured = stream::Measured::new(decoder, opts.max_size);
    let (applied, read) = pipeline::run(&mut measured, root, opts)?;
    if measured.exceeded {
        return Err(UnpackError::TooLarge {
            layer: opts.layer.clone(),
            max_size: opts.max_size,
            entry: applied.last_entry,
        });
    }
    match (applied.result, read) {
        // A refusal says more than the broken stream that may follow it.
        (Err(e @ UnpackError::Refused { .. }), _) => return Err(e),
        (_, Err(source)) => {
            return Err(UnpackError::Stream {
                layer: opts.layer.clone(),
                after: applied.last_entry,
                source,
            })
        }
        (Err(e), Ok(())) => return Err(e),
        (Ok(()), Ok(())) => {}
    }
    let size = measured.bytes;
    measured.into_inner().drain_input().map_err(stream_err)?;
    Ok(Unpacked {
        diff_id: applied.hasher.finish(),
        size,
        entries: applied.entries,
    })
}
