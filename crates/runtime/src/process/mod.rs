//! Creating the container's init. [`plan::InitPlan`] is built in the parent from the
//! spec; [`spawn::spawn`] clones once (namespaces as clone flags, no intermediate
//! process) and runs the numbered handshake of [`channel`]; [`init`] is the child side,
//! which runs only async-signal-safe code on the plan's pre-built data until exec.

pub mod attrs;
pub mod channel;
pub(crate) mod child;
pub(crate) mod init;
pub mod join;
pub mod plan;
pub mod spawn;
