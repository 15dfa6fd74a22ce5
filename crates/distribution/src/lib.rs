//! The OCI distribution side of images: what an image is called ([`Reference`]), how its
//! content is named ([`Digest`]), and the registry client that moves it ([`Client`]).
//!
//! The client is async (tokio + reqwest with rustls) and used only at berth's edges: the
//! CLI and the CRI server drive it from their runtimes. It fetches and pushes manifests
//! and blobs; it does not store, unpack or schedule anything (berth-image does).
//!
//! Words: an *endpoint* is a host and repository a request goes to, a mirror or the
//! *origin* after registries.conf rewriting; a *scope* is what a token allows
//! (`repository:NAME:pull`).

mod auth;
pub mod blob;
mod client;
pub mod config;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod platform;
pub mod reference;

pub use auth::{parse_challenge, Challenge};
pub use blob::{BlobStream, PushedBlob};
pub use client::Client;
pub use config::{ClientConfig, HostOptions, Mirror, RegistryConfig};
pub use credentials::{Credentials, Login};
pub use digest::{Digest, DigestError, Hasher};
pub use error::{Error, ErrorKind, RegistryError, Reply, Target};
pub use manifest::{media_types, Manifest, MANIFEST_LIMIT};
pub use platform::{select_manifest, Descriptor, Platform};
pub use reference::{Reference, ReferenceError};

/// Tests that change the process environment hold this lock.
#[cfg(test)]
pub(crate) static TEST_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
