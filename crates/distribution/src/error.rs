//! The registry client's errors. Each names what was being done to what (registry,
//! repository, object), and carries the registry's own error codes
//! (distribution-spec "Error Codes") when it sent any, so the CLI can both print a useful
//! line and map the failure to an exit code ([`Error::kind`]).

use crate::digest::Digest;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What a request was about: `registry/repository: object`, plus the section of the
/// distribution spec that defines the exchange. Boxed, so errors stay small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(Box<TargetFields>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFields {
    /// The host the request went to (a mirror's host when a mirror answered).
    pub registry: String,
    /// Empty for registry-wide requests (`GET /v2/`).
    pub repository: String,
    /// "manifest latest", "blob sha256:…", "upload sha256:…", "API version check".
    pub object: String,
    /// "pulling manifests", "pushing blobs", … (distribution-spec section).
    pub spec: &'static str,
}

impl Target {
    pub fn new(registry: &str, repository: &str, object: String, spec: &'static str) -> Target {
        Target(Box::new(TargetFields {
            registry: registry.into(),
            repository: repository.into(),
            object,
            spec,
        }))
    }
}

impl std::ops::Deref for Target {
    type Target = TargetFields;
    fn deref(&self) -> &TargetFields {
        &self.0
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repository.is_empty() {
            write!(f, "{}: {}", self.registry, self.object)
        } else {
            write!(f, "{}/{}: {}", self.registry, self.repository, self.object)
        }
    }
}

/// One entry of a registry's `{"errors": [{"code", "message", "detail"}]}` body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RegistryError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The registry's errors, or the bare HTTP status when it sent none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub errors: Vec<RegistryError>,
}

impl Reply {
    pub(crate) fn parse(status: u16, body: &[u8]) -> Reply {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<RegistryError>,
        }
        let mut errors = serde_json::from_slice::<Body>(body)
            .map(|b| b.errors)
            .unwrap_or_default();
        // Go's net/http answers plain HTTP on a TLS port with this 400: say what it means.
        if status == 400
            && errors.is_empty()
            && String::from_utf8_lossy(body).contains("HTTP request to an HTTPS server")
        {
            errors.push(RegistryError {
                code: "HTTPS_ONLY".into(),
                message: "the registry speaks HTTPS, but berth used plain HTTP (the rule for loopback and insecure registries without a CA of their own): put its CA in certs.d (/etc/berth/certs.d/HOST:PORT/ca.crt or $BERTH_CERTS_DIR) to use HTTPS".into(),
            });
        }
        Reply { status, errors }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            let reason = reqwest::StatusCode::from_u16(self.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            return write!(f, "HTTP {} {}", self.status, reason);
        }
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.code, e.message)?;
        }
        Ok(())
    }
}

/// Broad classes of failure, for exit codes and for deciding whether to try elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Unauthorized,
    Denied,
    /// Could not reach the registry, or it kept failing (5xx, 429, stalls) until the
    /// retries ran out.
    Unavailable,
    /// The registry sent something other than what was asked for (digest mismatch,
    /// oversize, unsupported format).
    Integrity,
    /// Local configuration, credentials or files.
    Local,
    /// The registry answered in a way the protocol does not allow.
    Protocol,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{target}: {reply} (distribution-spec: {})", target.spec)]
    NotFound { target: Target, reply: Reply },
    #[error("{target}: unauthorized: {reply}{} (distribution-spec: {})",
        if *.had_credentials { " (credentials were sent)" } else { " (no credentials for this registry; try `berth login`)" },
        target.spec)]
    Unauthorized {
        target: Target,
        reply: Reply,
        had_credentials: bool,
    },
    #[error("{target}: access denied: {reply} (distribution-spec: {})", target.spec)]
    Denied { target: Target, reply: Reply },
    #[error("{target}: {reply} after {attempts} attempt(s) (distribution-spec: {})", target.spec)]
    Status {
        target: Target,
        reply: Reply,
        attempts: u32,
    },
    #[error("{target}: cannot reach {url} after {attempts} attempt(s): {detail}")]
    Connect {
        target: Target,
        url: String,
        attempts: u32,
        detail: String,
    },
    #[error("{target}: no data for {timeout:?} after {received} bytes, {attempts} attempt(s)")]
    Stalled {
        target: Target,
        received: u64,
        timeout: Duration,
        attempts: u32,
    },
    #[error("{target}: the content hashes to {actual}, not {expected}{} (distribution-spec: content digests)",
        if *.from_header { " as the Docker-Content-Digest header says" } else { "" })]
    DigestMismatch {
        target: Target,
        expected: Digest,
        actual: Digest,
        from_header: bool,
    },
    #[error("{target}: more than {limit} bytes (distribution-spec: pulling manifests limits manifests to 4 MiB)")]
    ManifestTooLarge { target: Target, limit: u64 },
    #[error("{target}: the registry sent more than the {expected} bytes the descriptor gives")]
    BlobTooLarge { target: Target, expected: u64 },
    #[error("{target}: media type {media_type:?} is not supported (Docker schema 1 manifests are deprecated; repush the image with a current client)")]
    UnsupportedManifest { target: Target, media_type: String },
    #[error("{target}: invalid response: {reason}")]
    Protocol { target: Target, reason: String },
    #[error("{target}: bad authentication challenge {header:?}: {reason}")]
    BadChallenge {
        target: Target,
        header: String,
        reason: String,
    },
    #[error("{target}: token server {realm} answered {status}{}", if .detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Token {
        target: Target,
        realm: String,
        status: String,
        detail: String,
    },
    #[error("registry {registry} is blocked by {source_file}")]
    Blocked {
        registry: String,
        source_file: String,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    RegistriesConf {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {reason} (containers-registries.conf(5))")]
    RegistriesConfEntry { path: PathBuf, reason: String },
    #[error("{path}: not a certificate bundle in PEM form: {source}")]
    Certificate {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("{path}: {reason} (containers-auth.json(5))")]
    AuthFile { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client for {registry}: {source}")]
    HttpClient {
        registry: String,
        source: reqwest::Error,
    },
    #[error("invalid image index: {reason} (image-spec image-index.md)")]
    BadIndex { reason: String },
    #[error("no manifest for platform {platform} in the index (it has: {})", if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    NoMatchingPlatform {
        platform: String,
        available: Vec<String>,
    },
    #[error(
        "invalid platform {0:?}: expected os/arch[/variant] (image-spec image-index.md platform)"
    )]
    BadPlatform(String),
    #[error("{target}: registry {registry:?} is not a host name with an optional port")]
    BadRegistryName { target: Target, registry: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Unauthorized { .. } | Error::Token { .. } => ErrorKind::Unauthorized,
            Error::Denied { .. } | Error::Blocked { .. } => ErrorKind::Denied,
            Error::Status { .. } | Error::Connect { .. } | Error::Stalled { .. } => {
                ErrorKind::Unavailable
            }
            Error::DigestMismatch { .. }
            | Error::ManifestTooLarge { .. }
            | Error::BlobTooLarge { .. }
            | Error::UnsupportedManifest { .. } => ErrorKind::Integrity,
            Error::Protocol { .. } | Error::BadChallenge { .. } | Error::BadIndex { .. } => {
                ErrorKind::Protocol
            }
            Error::ReadFile { .. }
            | Error::WriteFile { .. }
            | Error::RegistriesConf { .. }
            | Error::RegistriesConfEntry { .. }
            | Error::Certificate { .. }
            | Error::AuthFile { .. }
            | Error::HttpClient { .. }
            | Error::NoMatchingPlatform { .. }
            | Error::BadPlatform(_)
            | Error::BadRegistryName { .. } => ErrorKind::Local,
        }
    }

    /// The request's target, when the error came from talking to a registry.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Error::NotFound { target, .. }
            | Error::Unauthorized { target, .. }
            | Error::Denied { target, .. }
            | Error::Status { target, .. }
            | Error::Connect { target, .. }
            | Error::Stalled { target, .. }
            | Error::DigestMismatch { target, .. }
            | Error::ManifestTooLarge { target, .. }
            | Error::BlobTooLarge { target, .. }
            | Error::UnsupportedManifest { target, .. }
            | Error::Protocol { target, .. }
            | Error::BadChallenge { target, .. }
            | Error::Token { target, .. }
            | Error::BadRegistryName { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The HTTP status the registry answered with, if that is what failed.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NotFound { reply, .. }
            | Error::Unauthorized { reply, .. }
            | Error::Denied { reply, .. }
            | Error::Status { reply, .. } => Some(reply.status),
            _ => None,
        }
    }
}

/// A reqwest error with its causes, which is where rustls says why a certificate failed.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
