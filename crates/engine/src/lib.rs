//! The composition root for containers: an image's snapshot becomes a rootfs, its config
//! and the user's options become a runtime spec, and the runtime library (in this
//! process, no runtime binary exec'd) runs it. Container records live in the metadata
//! store beside the images.
//!
//! Lifecycle of a container: **created** (record, active snapshot, bundle) → **running**
//! (runtime state under RUNROOT/runtime) → **exited** (exit code recorded) → removed
//! (record, snapshot, bundle and runtime state gone).

mod cgroup_warm;
pub mod container;
mod container_volumes;
pub mod copy_up;
pub mod cp;
pub mod events;
pub mod exec;
pub mod init;
pub mod inspect;
pub mod lifecycle;
pub mod mounts;
pub mod network;
pub mod prune;
mod rename;
pub mod restart;
pub mod seccomp;
pub mod spec;
pub mod stats;
pub mod top;
mod trash;
pub mod ulimit;
pub mod user;
pub mod volume;

pub use container::{Container, ContainerError, Engine, RunOptions, Status};
pub use container_volumes::Attached;
pub use exec::{ExecOptions, ExecOutcome};
pub use lifecycle::{Attach, Helpers, Life, Next};
pub use restart::RestartPolicy;
