//! Loading and checking a bundle's config.json. Every rule here names the part of the
//! runtime spec it enforces, so a user can look up why berth refused a config.

pub mod default;
mod validate;

use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

pub use validate::validate;

/// The runtime-spec version this runtime implements (reported in `state` and `features`).
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {field}: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{field}: {problem} (runtime-spec {rule})")]
    Invalid {
        field: String,
        problem: String,
        rule: &'static str,
    },
}

impl SpecError {
    pub(crate) fn invalid(
        field: impl Into<String>,
        problem: impl Into<String>,
        rule: &'static str,
    ) -> Self {
        SpecError::Invalid {
            field: field.into(),
            problem: problem.into(),
            rule,
        }
    }
}

/// Reads `bundle/config.json`. Unknown properties are ignored, as config.md requires
/// ("runtimes MUST ignore unknown properties"); wrong types and unknown enum values are
/// errors naming the JSON path of the offending field.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&bytes).map_err(|(field, message)| SpecError::Parse {
        path,
        field,
        message,
    })
}

/// Parses config.json bytes; on failure returns (JSON path, message).
pub fn parse(bytes: &[u8]) -> Result<Spec, (String, String)> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "config.json".to_string()
        } else {
            field
        };
        (field, e.into_inner().to_string())
    })
}
