//! The container's root filesystem. The parent turns the spec into a [`RootfsPlan`]
//! (every path split, every string NUL-terminated, every option classified); the
//! container's init then carries it out with raw syscalls only ([`setup`]).
//!
//! Every path inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT) from an fd
//! of the rootfs, and every mount is attached to an fd (move_mount), never to a path
//! string: a symlink in the image, or one swapped in while berth works, can at worst
//! point somewhere else *inside* the rootfs, never outside it.

pub mod options;
mod path;
mod plan;
pub(crate) mod setup;

pub use path::RootPath;
pub use plan::{build, CgroupMount, DevicePlan, MountKind, MountPlan, PlanError, RootfsPlan};
