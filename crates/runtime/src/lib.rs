//! berth's OCI runtime core (runtime-spec 1.2, Linux): checks a bundle's config,
//! creates the container's init in its namespaces, cgroups and root filesystem, and
//! keeps the container's state across the separate `create`/`start`/`kill`/`delete`
//! invocations of a runc-style command line.
//!
//! Synchronous by design: the process that clones must have no other threads, and the
//! child runs only async-signal-safe code (see [`process`]) until it execs.

pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod exe;
pub mod features;
pub mod hooks;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;

pub use container::Error;
