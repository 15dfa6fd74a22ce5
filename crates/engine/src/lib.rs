//! The composition root for containers: an image's snapshot becomes a rootfs, its config
//! and the user's options become a runtime spec, and the runtime library (in this
//! process, no runtime binary exec'd) runs it. Container records live in the metadata
//! store beside the images.
//!
//! Lifecycle of a container: **created** (record, active snapshot, bundle) → **running**
//! (runtime state under RUNROOT/runtime) → **exited** (exit code recorded) → removed
//! (record, snapshot, bundle and runtime state gone).

pub mod container;
pub mod init;
pub mod seccomp;
pub mod spec;
pub mod ulimit;
pub mod user;

pub use container::{Container, ContainerError, Engine, RunOptions};
