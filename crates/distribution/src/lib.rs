//! The OCI distribution side of images: what an image is called ([`Reference`]), how its
//! content is named ([`Digest`]), and the registry client that moves it ([`Client`]).
//!
//! The client is async (tokio + reqwest with rustls) and used only at berth's edges: the
//! CLI and the CRI server drive it from their runtimes. It fetches and pushes manifests
//! and blobs; it does not store, unpack or schedule anything (berth-image does).
//!
//! # Words
//! - *endpoint*: a host and repository a request goes to: a *mirror* or the *origin*,
//!   after registries.conf rewriting ([`config`]). Pulls try mirrors in order, then the
//!   origin; pushes go to the origin only.
//! - *scope*: what a bearer token allows (`repository:NAME:pull` or `pull,push`). Tokens
//!   are cached per (host, scope) and shared by clones of a [`Client`].
//! - *attempt*: one try of one request. Connect errors, 5xx, 429 and stalls are retried
//!   with backoff up to [`ClientConfig::retries`] more times; a 401 gets one more try
//!   with a fresh token; anything else is final. Errors say how many attempts were made.
//!
//! # A pull, top to bottom
//! ```no_run
//! # use berth_distribution::*;
//! # use futures_util::StreamExt as _;
//! # async fn pull(name: &str, digest: Digest, size: u64) -> Result<(), Error> {
//! let client = Client::new(ClientConfig::load()?, Credentials::from_env())?;
//! let r: Reference = name.parse().expect("valid reference");
//! // 1. The tag's manifest or index (verified against Docker-Content-Digest).
//! let mut m = client.get_manifest(&r).await?;
//! // 2. An index: choose this host's platform, then fetch that manifest by digest.
//! if m.is_index() {
//!     let d = select_manifest(&m.bytes, &Platform::host())?;
//!     m = client.get_manifest(&r.with_digest(d.digest)).await?;
//! }
//! // 3. Each blob the manifest lists (`digest`, `size`), streamed; the caller hashes what arrives.
//! let mut blob = client.get_blob(&r, &digest, size, 0).await?;
//! let mut hasher = digest.hasher();
//! while let Some(chunk) = blob.next().await {
//!     hasher.update(&chunk?);
//! }
//! assert_eq!(hasher.finish(), digest);
//! # Ok(()) }
//! ```
//! A push is the reverse: [`Client::mount_blob`] or [`Client::push_blob`] (which skips
//! blobs the registry has) for each blob, then [`Client::put_manifest`].

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
