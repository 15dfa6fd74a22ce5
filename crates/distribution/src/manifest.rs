//! Manifests and indexes: fetch (verified against the digest asked for or the
//! Docker-Content-Digest header), check (HEAD) and push (distribution-spec "Pulling
//! manifests", "Pushing manifests").

use crate::auth::Scope;
use crate::client::{
    endpoint_target, expect_success, is_not_found, read_limited_within, Client, Patience,
    ReadError, Req,
};
use crate::config::Endpoint;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Target};
use crate::reference::Reference;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;

pub mod media_types {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// Is this an index (OCI) or manifest list (Docker)?
    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }
}

use media_types::*;

/// The distribution spec lets registries refuse manifests over 4 MiB; berth refuses to read
/// more than that too.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A manifest or index as the registry sent it, with its verified digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        is_index(&self.media_type)
    }
}

fn manifest_target(ep: &Endpoint, reference: &str, spec: &'static str) -> Target {
    endpoint_target(ep, format!("manifest {reference}"), spec)
}

fn accept_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(ACCEPT_ALL));
    h
}

/// The media type from Content-Type, or from the body when the registry sent a generic
/// one (old registries say application/json).
fn media_type(content_type: Option<&str>, body: &[u8]) -> String {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| c.starts_with("application/vnd."));
    if let Some(ct) = ct {
        return ct;
    }
    #[derive(serde::Deserialize)]
    struct Sniff {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Sniff>(body) {
        Ok(Sniff {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Sniff {
            schema_version: Some(1),
            ..
        }) => DOCKER_SCHEMA1.into(),
        Ok(Sniff {
            manifests: Some(_), ..
        }) => OCI_INDEX.into(),
        Ok(Sniff {
            layers: Some(_), ..
        }) => OCI_MANIFEST.into(),
        _ => content_type.unwrap_or("").to_string(),
    }
}

fn header_digest(h: &HeaderMap, target: &Target) -> Result<Option<Digest>, Error> {
    let Some(v) = h.get("docker-content-digest") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    s.parse().map(Some).map_err(|e| Error::Protocol {
        target: target.clone(),
        reason: format!("Docker-Content-Digest {s:?}: {e}"),
    })
}

fn hash_with(alg_of: &Digest, bytes: &[u8]) -> Digest {
    let mut h: Hasher = alg_of.hasher();
    h.update(bytes);
    h.finish()
}

impl Client {
    /// GET the manifest or index `r` names (tag or digest), from the mirrors in order and
    /// then the origin. Verifies by-digest fetches hash to the digest, and by-tag fetches
    /// to the Docker-Content-Digest header when there is one. Refuses schema 1 and
    /// anything over [`MANIFEST_LIMIT`].
    pub async fn get_manifest(&self, r: &Reference) -> Result<Manifest, Error> {
        let reference = r.manifest_reference();
        self.on_pull_endpoints(r, "manifest", |ep| {
            let reference = reference.clone();
            async move { self.get_manifest_from(&ep, r, &reference).await }
        })
        .await
    }

    async fn get_manifest_from(
        &self,
        ep: &Endpoint,
        r: &Reference,
        reference: &str,
    ) -> Result<Manifest, Error> {
        let target = manifest_target(ep, reference, "pulling manifests");
        let path = format!("/v2/{}/manifests/{reference}", ep.repository);
        let mut attempt = 0;
        let (headers, bytes) = loop {
            attempt += 1;
            let resp = self
                .send(Req {
                    method: Method::GET,
                    endpoint: ep,
                    path: &path,
                    headers: accept_headers(),
                    body: None,
                    scope: Scope::pull(&ep.repository),
                    target: &target,
                    retry: true,
                    patience: Patience::Head,
                })
                .await?;
            let resp = expect_success(resp, &target).await?;
            let too_large = Error::ManifestTooLarge {
                target: target.clone(),
                limit: MANIFEST_LIMIT,
            };
            if resp.content_length().is_some_and(|l| l > MANIFEST_LIMIT) {
                return Err(too_large);
            }
            let headers = resp.headers().clone();
            match read_limited_within(resp, MANIFEST_LIMIT as usize, self.config().stall_timeout)
                .await
            {
                Ok(b) => break (headers, b),
                Err(ReadError::TooLong) => return Err(too_large),
                Err(e) if attempt > self.config().retries => {
                    return Err(Error::Connect {
                        target,
                        url: path,
                        attempts: attempt,
                        detail: e.detail(),
                    })
                }
                Err(e) => {
                    tracing::debug!(error = %e.detail(), "manifest body failed; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
            }
        };
        let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let media_type = media_type(ct, &bytes);
        if media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED {
            return Err(Error::UnsupportedManifest { target, media_type });
        }
        let digest = match (r.digest(), header_digest(&headers, &target)?) {
            (Some(want), _) => {
                let actual = hash_with(want, &bytes);
                if &actual != want {
                    return Err(Error::DigestMismatch {
                        target,
                        expected: want.clone(),
                        actual,
                        from_header: false,
                    });
                }
                actual
            }
            (None, Some(said)) => {
                let actual = hash_with(&said, &bytes);
                if actual != said {
                    return Err(Error::DigestMismatch {
                        target,
                        expected: said,
                        actual,
                        from_header: true,
                    });
                }
                actual
            }
            (None, None) => Digest::sha256_of(&bytes),
        };
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// HEAD the manifest: its digest, media type and size without the body, or `None` if
    /// the registry does not have it. A registry that omits Docker-Content-Digest on HEAD
    /// costs a GET.
    pub async fn head_manifest(
        &self,
        r: &Reference,
    ) -> Result<Option<(Digest, String, u64)>, Error> {
        let reference = r.manifest_reference();
        let result = self
            .on_pull_endpoints(r, "manifest (HEAD)", |ep| {
                let reference = reference.clone();
                async move { self.head_manifest_at(&ep, r, &reference).await }
            })
            .await;
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn head_manifest_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        reference: &str,
    ) -> Result<(Digest, String, u64), Error> {
        let target = manifest_target(ep, reference, "checking if content exists in the registry");
        let path = format!("/v2/{}/manifests/{reference}", ep.repository);
        let resp = self
            .send(Req {
                method: Method::HEAD,
                endpoint: ep,
                path: &path,
                headers: accept_headers(),
                body: None,
                scope: Scope::pull(&ep.repository),
                target: &target,
                retry: true,
                patience: Patience::Head,
            })
            .await?;
        let resp = expect_success(resp, &target).await?;
        let h = resp.headers();
        let media_type = h
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        let size = h
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let digest = header_digest(h, &target)?;
        match (digest, media_type, size) {
            (Some(d), Some(mt), Some(size)) if mt.starts_with("application/vnd.") => {
                if let Some(want) = r.digest() {
                    if &d != want {
                        return Err(Error::DigestMismatch {
                            target,
                            expected: want.clone(),
                            actual: d,
                            from_header: true,
                        });
                    }
                }
                if mt == DOCKER_SCHEMA1 || mt == DOCKER_SCHEMA1_SIGNED {
                    return Err(Error::UnsupportedManifest {
                        target,
                        media_type: mt,
                    });
                }
                Ok((d, mt, size))
            }
            _ => {
                let m = self.get_manifest_from(ep, r, reference).await?;
                let size = m.bytes.len() as u64;
                Ok((m.digest, m.media_type, size))
            }
        }
    }

    /// PUT a manifest or index under `r`'s tag (or digest); returns its digest (sha256 of
    /// `bytes`, checked against the registry's Docker-Content-Digest when it sends one).
    pub async fn put_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let ep = self
            .endpoints(r, false)?
            .pop()
            .ok_or_else(|| Error::Blocked {
                registry: r.name(),
                source_file: "the configuration (no endpoints)".into(),
            })?;
        let reference = r.manifest_reference();
        let target = manifest_target(&ep, &reference, "pushing manifests");
        let digest = match r.digest() {
            Some(d) => {
                let actual = hash_with(d, bytes);
                if &actual != d {
                    return Err(Error::DigestMismatch {
                        target,
                        expected: d.clone(),
                        actual,
                        from_header: false,
                    });
                }
                actual
            }
            None => Digest::sha256_of(bytes),
        };
        let ct = HeaderValue::from_str(media_type).map_err(|_| Error::UnsupportedManifest {
            target: target.clone(),
            media_type: media_type.into(),
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, ct);
        let body = bytes.to_vec();
        let body_fn = move || Ok(reqwest::Body::from(body.clone()));
        let path = format!("/v2/{}/manifests/{reference}", ep.repository);
        let resp = self
            .send(Req {
                method: Method::PUT,
                endpoint: &ep,
                path: &path,
                headers,
                body: Some(&body_fn),
                scope: Scope::push(&ep.repository),
                target: &target,
                retry: true,
                patience: Patience::Head,
            })
            .await?;
        let resp = expect_success(resp, &target).await?;
        if let Some(said) = header_digest(resp.headers(), &target)? {
            if said.algorithm() == digest.algorithm() && said != digest {
                return Err(Error::DigestMismatch {
                    target,
                    expected: digest,
                    actual: said,
                    from_header: true,
                });
            }
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_or_body() {
        assert_eq!(
            media_type(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b"{}"
            ),
            OCI_INDEX
        );
        assert_eq!(
            media_type(
                Some("application/json"),
                br#"{"schemaVersion":2,"layers":[]}"#
            ),
            OCI_MANIFEST
        );
        assert_eq!(
            media_type(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            OCI_INDEX
        );
        assert_eq!(
            media_type(
                Some("application/json"),
                br#"{"schemaVersion":1,"fsLayers":[]}"#
            ),
            DOCKER_SCHEMA1
        );
        assert_eq!(
            media_type(
                None,
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            DOCKER_MANIFEST
        );
    }
}
