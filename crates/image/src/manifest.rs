//! Image manifests: OCI (image-spec manifest.md) and Docker schema 2, which share a shape.

use berth_distribution::Digest;
use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {digest}: not a valid image manifest (image-spec manifest.md): {source}")]
    Parse {
        digest: Digest,
        source: serde_json::Error,
    },
    #[error("manifest {digest}: schemaVersion {version}, but image manifests MUST have 2 (image-spec manifest.md#image-manifest-property-descriptions)")]
    Version { digest: Digest, version: u32 },
    #[error("manifest {digest}: mediaType field {inner:?} differs from the {outer:?} it was served as (image-spec manifest.md: mediaType)")]
    MediaType {
        digest: Digest,
        inner: String,
        outer: String,
    },
    #[error("manifest {digest}: config media type {0:?} is not an image config; berth runs container images only (artifacts are not runnable)", .media_type)]
    NotAnImage { digest: Digest, media_type: String },
}

impl Manifest {
    pub fn parse(
        digest: &Digest,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Manifest, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse {
            digest: digest.clone(),
            source,
        })?;
        if m.schema_version != 2 {
            return Err(ManifestError::Version {
                digest: digest.clone(),
                version: m.schema_version,
            });
        }
        if let Some(inner) = &m.media_type {
            if inner != media_type {
                return Err(ManifestError::MediaType {
                    digest: digest.clone(),
                    inner: inner.clone(),
                    outer: media_type.into(),
                });
            }
        }
        if m.config.media_type != OCI_CONFIG && m.config.media_type != DOCKER_CONFIG {
            return Err(ManifestError::NotAnImage {
                digest: digest.clone(),
                media_type: m.config.media_type.clone(),
            });
        }
        Ok(m)
    }
}
