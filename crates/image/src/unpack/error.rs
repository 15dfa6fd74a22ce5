//! What can stop a layer from unpacking. Every variant names the layer; every variant about
//! one tar entry names that entry too, because "the pull failed" is useless without both.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer media type {media_type:?} is not a tar layer berth can unpack (image-spec media-types.md: application/vnd.oci.image.layer.v1.tar[+gzip|+zstd] or the docker rootfs.diff.tar types)")]
    UnknownMediaType { media_type: String },

    #[error("layer {layer}: cannot open the destination {dest:?}")]
    Dest {
        layer: String,
        dest: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("layer {layer}: cannot start the unpack worker thread")]
    Thread {
        layer: String,
        #[source]
        source: io::Error,
    },

    #[error("layer {layer}: reading the layer stream (decompression or tar framing){}", after_entry(.after))]
    Stream {
        layer: String,
        /// The last entry that was read before the stream broke, if any.
        after: Option<String>,
        #[source]
        source: io::Error,
    },

    #[error("layer {layer}: uncompressed content exceeds the limit of {max_size} bytes (decompression bomb?){}", in_entry(.entry))]
    TooLarge {
        layer: String,
        max_size: u64,
        /// The entry being read when the limit was crossed, if any.
        entry: Option<String>,
    },

    #[error("layer {layer}: entry {entry:?} {refusal}")]
    Refused {
        layer: String,
        entry: String,
        refusal: Refusal,
    },

    #[error("layer {layer}: entry {entry:?}: {op}")]
    Io {
        layer: String,
        entry: String,
        op: Op,
        #[source]
        source: io::Error,
    },
}

fn in_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" in entry {e:?}"),
        None => String::new(),
    }
}

fn after_entry(after: &Option<String>) -> String {
    match after {
        Some(e) => format!(" after entry {e:?}"),
        None => String::new(),
    }
}

/// Why an entry of a hostile or broken tar is refused. The layer is then unusable: the
/// caller deletes the partial destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("leaves the layer root")]
    LeavesRoot,
    #[error("is an absolute path (layer.md: entries are relative to the layer root)")]
    Absolute,
    #[error("has an empty path")]
    EmptyPath,
    #[error("resolves through a symlink that leaves the layer root")]
    SymlinkEscape,
    #[error("is a hardlink to {target:?}, which leaves the layer root")]
    HardlinkLeavesRoot { target: String },
    #[error("is a hardlink to {target:?}, which does not exist in this layer")]
    HardlinkMissing { target: String },
    #[error("is a hardlink to {target:?}, which is a directory")]
    HardlinkToDirectory { target: String },
    #[error("is a hardlink without a target")]
    HardlinkNoTarget,
    #[error("is a symlink without a target")]
    SymlinkNoTarget,
    #[error("is a whiteout of {name:?}, which does not name a sibling file (layer.md#whiteouts)")]
    BadWhiteout { name: String },
    #[error("whites out the layer root (layer.md#whiteouts)")]
    WhiteoutRoot,
    #[error("has an unusable {field} value")]
    BadHeader { field: &'static str },
    #[error("has tar type {kind:?}, which a layer may not contain (layer.md#file-types)")]
    UnsupportedType { kind: char },
    #[error("has a parent path that exists but is not a directory")]
    ParentNotDirectory,
}

/// The filesystem operation that failed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ResolveParent,
    CreateParent,
    Remove,
    CreateFile,
    WriteFile,
    CreateDir,
    Symlink,
    Hardlink,
    Mknod,
    Chown,
    Chmod,
    SetXattr,
    SetTimes,
    Whiteout,
    Opaque,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::ResolveParent => "resolving its parent directory",
            Op::CreateParent => "creating its missing parent directory",
            Op::Remove => "removing what was there before",
            Op::CreateFile => "creating the file",
            Op::WriteFile => "writing the file",
            Op::CreateDir => "creating the directory",
            Op::Symlink => "creating the symlink",
            Op::Hardlink => "creating the hardlink",
            Op::Mknod => "creating the device node or fifo",
            Op::Chown => "changing the owner",
            Op::Chmod => "changing the mode",
            Op::SetXattr => "setting an extended attribute",
            Op::SetTimes => "setting the times",
            Op::Whiteout => "applying the whiteout",
            Op::Opaque => "marking the directory opaque",
        })
    }
}
