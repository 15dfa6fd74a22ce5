//! berth's per-container monitor and the log format it writes.
//!
//! One small process per container (like conmon, a fraction of its size) that outlives
//! the CLI which started it:
//!
//! ```text
//! berth run ──spawn──▶ berth-monitor (forks once, setsid, child subreaper)
//!    (socket)            │ 1. `berth internal start ID` with stdout/stderr = pipes to us:
//!                        │    creates the container in-process, reports "started PID",
//!                        │    exits; the init is re-parented to us (subreaper)
//!    ◀── "started PID" ──┤ 2. the CLI records the start and answers "recorded", then
//!    ── "recorded" ────▶ │    returns (`-d`) or keeps reading (foreground)
//!                        │ 3. pipes → CRI log file (rotated), and our stdout/stderr with --tee;
//!                        │    with --terminal, a pty master nobody attached (`run -dt`)
//!                        │    → the log too, received on a console socket of ours
//!                        │ 4. reap the init; write the exit file
//!    ◀── "exited N" ─────┤ 5. with --peer-cleanup the waiting CLI cleans up itself and
//!    ── "done" ────────▶ │    answers "done" or "restart MS"; otherwise (or if it went
//!                        │    away) `berth internal cleanup ID --exit-code N` does: runtime
//!                        │    state, network, mounts, record, --rm; "restart MS" or "done"
//!                        │ 6. restart after the backoff (`internal start --restart`, which
//!                        │    records itself; back to 3), or exit
//! ```
//!
//! The container's lifecycle logic (policies, the store, the runtime) lives in the
//! `berth` helper it runs, not here: the monitor only moves bytes and reaps, so it
//! links nothing but std, rustix and berth-sys and stays around 1 MiB of RSS.

pub mod crilog;
pub mod monitor;
pub mod time;

pub use crilog::{LogLine, LogWriter, Rotation, Stream};
