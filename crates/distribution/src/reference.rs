//! Image references as docker, podman and containerd read them:
//! `[registry[:port]/]path[:tag][@digest]`, with docker's normalisation (no registry means
//! docker.io, a one-component path there means `library/`, no tag or digest means `latest`).
//! Written by hand: the grammar is distribution/reference's, and the crates that parse it
//! either pull in a regex engine or disagree with docker on edge cases (`localhost`,
//! uppercase registries, `__` separators).

use crate::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

pub const DOCKER_HUB: &str = "docker.io";
const NAME_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference {0:?}: empty")]
    Empty(String),
    #[error("invalid reference {0:?}: repository path component {1:?} must be lowercase letters and digits separated by '.', '_', '__' or '-' (distribution-spec: <name> grammar)")]
    BadComponent(String, String),
    #[error("invalid reference {0:?}: registry {1:?} is not a host name with an optional port")]
    BadRegistry(String, String),
    #[error("invalid reference {0:?}: tag {1:?} must match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}} (distribution-spec: <reference> grammar)")]
    BadTag(String, String),
    #[error("invalid reference {0:?}: the repository name is longer than 255 characters")]
    TooLong(String),
    #[error("invalid reference {0:?}: {1}")]
    Digest(String, DigestError),
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        // A bracketed IPv6 address has colons of its own.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (r, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return false;
        }
    }
    if let Some(v6) = host.strip_prefix('[') {
        return v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|x| x.is_ascii_alphanumeric() || x == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl Reference {
    /// The registry as written (docker.io for Docker Hub), with port if any.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to talk to: Docker Hub's API lives on registry-1.docker.io.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifests endpoint for: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::BadTag(self.to_string(), tag.into()));
        }
        Ok(Reference {
            tag: Some(tag.into()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to a digest (and no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Is the registry on this machine? Plain HTTP is allowed there without configuration.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// `localhost`, 127.0.0.0/8 or ::1, with or without a port.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.into()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| ReferenceError::Digest(s.into(), e))?,
                ),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/' (a port's ':' comes before one).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag(s.into(), t.into()));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !valid_registry(first) {
                    return Err(ReferenceError::BadRegistry(s.into(), first.into()));
                }
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
            return Err(ReferenceError::BadComponent(s.into(), bad.into()));
        }
        if repository.len() + registry.len() + 1 > NAME_MAX {
            return Err(ReferenceError::TooLong(s.into()));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".into()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        s.parse::<Reference>()
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(r("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(r("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(r("user/app"), "docker.io/user/app:latest");
        assert_eq!(r("index.docker.io/library/x"), "docker.io/library/x:latest");
        assert_eq!(r("localhost/app"), "localhost/app:latest");
        assert_eq!(r("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(r("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
        assert_eq!(r("[::1]:5000/busybox"), "[::1]:5000/busybox:latest");
        assert_eq!(r("ghcr.io/o/r/x__y.z-w"), "ghcr.io/o/r/x__y.z-w:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            r(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(r(&format!("q.io/b:t@{d}")), format!("q.io/b:t@{d}"));
        let x: Reference = "127.0.0.1:5000/busybox".parse().expect("valid");
        assert!(x.is_loopback());
        assert_eq!(x.manifest_reference(), "latest");
        assert_eq!(x.api_host(), "127.0.0.1:5000");
        let y: Reference = "busybox".parse().expect("valid");
        assert_eq!(y.api_host(), "registry-1.docker.io");
        assert!(!y.is_loopback());
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(r("").starts_with("ERR"));
        assert!(r("Busybox").contains("registry") || r("Busybox").contains("component"));
        assert!(r("busy--box").starts_with("docker.io"));
        assert!(r("a/B").contains("component \"B\""));
        assert!(r("busybox:-x").contains("tag"));
        assert!(r("busybox:a/b").starts_with("ERR"));
        assert!(r("a//b").contains("component"));
        assert!(r("a/b_-c").contains("component"));
        assert!(r("a/.b").contains("component"));
        assert!(r("x.io:99999/a").contains("registry"));
        assert!(r("busybox@sha256:00").contains("lowercase hex"));
        assert!(r(&format!("x/{}", "a".repeat(300))).contains("longer than 255"));
    }
}
