//! berth's own CNI caller (no mature Rust client exists; the exec protocol is small).
//!
//! - [`plugin`]: run one plugin binary (environment, stdin, stdout, error object).
//! - [`conflist`]: a network configuration list and the ADD/CHECK/DEL chains over it.
//! - [`result`]: the result and error JSON.

pub mod conflist;
pub mod plugin;
pub mod result;

pub use conflist::{AddError, ConfList, RuntimeConfig};
pub use plugin::{Command, Invocation};
pub use result::CniResult;

use std::path::PathBuf;

/// What can go wrong talking to a plugin or reading a network config. Each variant
/// names the plugin (or file) and, for config mistakes, the CNI spec rule broken.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(
        "CNI plugin {plugin:?} not found in {dirs:?} (CNI spec: `type` names a binary in CNI_PATH)"
    )]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("invalid CNI plugin type {plugin:?} (CNI spec: `type` is a binary name in CNI_PATH, not a path)")]
    InvalidPluginName { plugin: String },
    #[error("CNI plugin directories {dirs:?} cannot form CNI_PATH (a directory contains ':')")]
    InvalidPluginDir { dirs: Vec<PathBuf> },
    #[error("cannot run CNI plugin {plugin:?} ({path}): {source}")]
    Spawn {
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin:?} {command} failed: {msg}{}{details} (CNI error code {code}: {meaning})",
        if details.is_empty() { "" } else { ": " })]
    Failed {
        plugin: String,
        command: Command,
        code: u32,
        meaning: &'static str,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin:?} {command} exited with {status} without an error object (CNI spec: a failing plugin prints {{code, msg}} on stdout): {output}")]
    Crashed {
        plugin: String,
        command: Command,
        status: String,
        output: String,
    },
    #[error("CNI plugin {plugin:?} {command} printed invalid JSON (CNI spec: results are JSON on stdout): {source}: {output}")]
    BadOutput {
        plugin: String,
        command: Command,
        output: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("CNI plugin {plugin:?} {command} printed no result (CNI spec: ADD and VERSION must print a result)")]
    MissingResult { plugin: String, command: Command },
    #[error("CNI plugin {plugin:?} {command} printed a result berth cannot read (CNI spec 1.0 result types): {source}")]
    BadResult {
        plugin: String,
        command: Command,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid network config list {origin}: {reason} (CNI spec: {rule})")]
    BadConfig {
        origin: String,
        reason: String,
        rule: &'static str,
    },
}
