//! Choosing a manifest from an OCI index or Docker manifest list by platform, the way
//! containerd's platforms matcher does: names are normalised (x86_64 → amd64, aarch64 →
//! arm64, armhf → arm/v7), arm64's default variant is v8 and arm's is v7, and a platform
//! also runs older variants of its architecture (arm/v7 runs v6 and v5; amd64/v3 runs v2
//! and v1), preferring the newest.

use crate::digest::Digest;
use crate::error::Error;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform berth runs on (from the compile target).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "arm" => "arm",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.into(),
            architecture: arch.into(),
            variant: None,
        }
        .normalised()
    }

    /// containerd's normalisation: canonical arch names and default variants.
    pub fn normalised(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (arch, variant) = match (self.architecture.to_ascii_lowercase().as_str(), variant) {
            ("i386" | "i686", _) => ("386".to_string(), None),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_string(), v.filter(|v| v != "v1")),
            ("aarch64" | "arm64", v) => (
                "arm64".to_string(),
                match v.as_deref() {
                    None | Some("8") | Some("v8") | Some("") => Some("v8".to_string()),
                    _ => v,
                },
            ),
            ("armhf", _) => ("arm".to_string(), Some("v7".to_string())),
            ("armel", _) => ("arm".to_string(), Some("v6".to_string())),
            ("arm", v) => (
                "arm".to_string(),
                match v.as_deref() {
                    None | Some("") | Some("7") => Some("v7".to_string()),
                    Some("5") => Some("v5".to_string()),
                    Some("6") => Some("v6".to_string()),
                    Some("8") => Some("v8".to_string()),
                    _ => v,
                },
            ),
            (a, v) => (a.to_string(), v.filter(|v| !v.is_empty())),
        };
        Platform {
            os,
            architecture: arch,
            variant,
        }
    }

    /// Platforms this one runs, best first (itself, then older variants).
    fn compatible(&self) -> Vec<Platform> {
        let me = self.normalised();
        let older: &[&str] = match (me.architecture.as_str(), me.variant.as_deref()) {
            ("arm", Some("v8")) => &["v8", "v7", "v6", "v5"],
            ("arm", Some("v7")) => &["v7", "v6", "v5"],
            ("arm", Some("v6")) => &["v6", "v5"],
            ("amd64", Some("v4")) => &["v4", "v3", "v2", ""],
            ("amd64", Some("v3")) => &["v3", "v2", ""],
            ("amd64", Some("v2")) => &["v2", ""],
            _ => return vec![me],
        };
        older
            .iter()
            .map(|v| Platform {
                variant: (!v.is_empty()).then(|| v.to_string()),
                ..me.clone()
            })
            .collect()
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

impl FromStr for Platform {
    type Err = Error;

    /// `os/arch[/variant]`, or just `arch` for the host's OS.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::BadPlatform(s.into());
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let p = match parts.as_slice() {
            [arch] => Platform {
                os: std::env::consts::OS.into(),
                architecture: (*arch).into(),
                variant: None,
            },
            [os, arch] => Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            },
            [os, arch, variant] => Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*variant).into()),
            },
            _ => return Err(bad()),
        };
        Ok(p.normalised())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An index entry: what [`select_manifest`] returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<WirePlatform>,
    #[serde(default)]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A platform as an index spells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct WirePlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl From<&WirePlatform> for Platform {
    fn from(w: &WirePlatform) -> Platform {
        Platform {
            os: w.os.clone(),
            architecture: w.architecture.clone(),
            variant: w.variant.clone(),
        }
        .normalised()
    }
}

/// The manifest in an OCI index or Docker manifest list that best fits `platform`.
pub fn select_manifest(index_bytes: &[u8], platform: &Platform) -> Result<Descriptor, Error> {
    #[derive(serde::Deserialize)]
    struct Index {
        manifests: Vec<Descriptor>,
    }
    let index: Index = serde_json::from_slice(index_bytes).map_err(|e| Error::BadIndex {
        reason: e.to_string(),
    })?;
    for want in platform.compatible() {
        let found = index.manifests.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| Platform::from(p) == want)
        });
        if let Some(d) = found {
            return Ok(d.clone());
        }
    }
    Err(Error::NoMatchingPlatform {
        platform: platform.normalised().to_string(),
        available: index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| Platform::from(p).to_string()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
        let manifests: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    p["variant"] = (*v).into();
                }
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": Digest::sha256_of(&[i as u8]).to_string(),
                    "size": 100 + i,
                    "platform": p,
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .expect("json")
    }

    fn pick(idx: &[u8], p: &str) -> String {
        match select_manifest(idx, &p.parse().expect("platform")) {
            Ok(d) => d.size.to_string(),
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn parse_and_normalise() {
        let p: Platform = "linux/aarch64".parse().expect("ok");
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let p: Platform = "linux/x86_64".parse().expect("ok");
        assert_eq!(p.to_string(), "linux/amd64");
        let p: Platform = "linux/arm".parse().expect("ok");
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!("linux//x".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(Platform::host().to_string(), "linux/amd64");
        }
    }

    #[test]
    fn matching_like_containerd() {
        let idx = index(&[
            ("linux", "amd64", None),
            ("linux", "arm64", Some("v8")),
            ("linux", "arm", Some("v6")),
            ("unknown", "unknown", None),
            ("windows", "amd64", None),
        ]);
        assert_eq!(pick(&idx, "linux/amd64"), "100");
        assert_eq!(pick(&idx, "linux/arm64"), "101");
        assert_eq!(pick(&idx, "linux/arm64/v8"), "101");
        // arm/v7 runs arm/v6 images.
        assert_eq!(pick(&idx, "linux/arm/v7"), "102");
        assert_eq!(pick(&idx, "windows/amd64"), "104");
        assert_eq!(pick(&idx, "linux/amd64/v3"), "100");
        let e = pick(&idx, "linux/s390x");
        assert!(
            e.contains("linux/s390x") && e.contains("linux/arm64/v8"),
            "{e}"
        );
        // An arm64 image without a variant is v8.
        let idx = index(&[("linux", "arm", Some("v7")), ("linux", "arm64", None)]);
        assert_eq!(pick(&idx, "linux/arm64/v8"), "101");
        assert_eq!(pick(&idx, "linux/arm/v5"), format!("ERR no manifest for platform linux/arm/v5 in the index (it has: linux/arm/v7, linux/arm64/v8)"));
        assert!(select_manifest(b"{}", &Platform::host()).is_err());
    }
}
