//! berth's per-container monitor and the log format it writes.
//!
//! One small process per container (like conmon, a fraction of its size) that outlives
//! the CLI which started it:
//!
//! ```text
//! berth run -d ──spawn──▶ berth-monitor (forks once, setsid, child subreaper)
//!                            │ 1. `berth internal start ID` with stdout/stderr = pipes to us:
//!                            │    creates the container in-process, reports "started PID",
//!                            │    exits; the init is re-parented to us (subreaper)
//!    ◀── "started PID" ──────┤ 2. the CLI returns (`-d`) or keeps reading (foreground)
//!                            │ 3. pipes → CRI log file (rotated), and our stdout/stderr with --tee
//!                            │ 4. reap the init; write the exit file
//!                            │ 5. `berth internal cleanup ID --exit-code N`: runtime state,
//!                            │    network, mounts, record, --rm; answers "restart MS" or "done"
//!    ◀── "exited N" ─────────┤ 6. restart after the backoff (back to 1), or exit
//! ```
//!
//! The container's lifecycle logic (policies, the store, the runtime) lives in the
//! `berth` helper it runs, not here: the monitor only moves bytes and reaps, so it
//! links nothing but std, rustix and berth-sys and stays around 1 MiB of RSS.

pub mod crilog;
pub mod monitor;
pub mod time;

pub use crilog::{LogLine, LogWriter, Rotation, Stream};
