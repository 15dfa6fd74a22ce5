//! Seccomp profiles for `berth run`: berth's own default (`seccomp/default.json`) and
//! profiles the user gives with `--security-opt seccomp=PATH`, both in docker's profile
//! format (which also reads the OCI `linux.seccomp` shape). A profile is resolved for one
//! container — its capability bounding set, this host's architecture and kernel — into
//! the runtime spec's `linux.seccomp`, which berth-runtime compiles with libseccomp.
//!
//! Docker's format on top of OCI's: `archMap` (the native architecture with its
//! sub-architectures, picked for this host), `name` as well as `names`, and per rule
//! `includes`/`excludes` on `caps` (all listed must be in the bounding set / any listed
//! excludes), `arches` (docker's names: amd64, arm64, ...) and `minKernel` ("4.8").
//! Unknown fields are refused rather than ignored, so a misspelt key cannot silently
//! drop a rule.

use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Which filter a container gets.
#[derive(Debug, Clone, Default)]
pub enum Policy {
    /// berth's default profile (docs/SECCOMP.md), or none with `--privileged`.
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A user's profile; it applies even with `--privileged`.
    Custom(Box<Profile>),
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("reading seccomp profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("seccomp profile: {field}: {message}")]
    Json { field: String, message: String },
    #[error("seccomp profile: {field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("seccomp profile does not compile: {0}")]
    Compile(#[from] berth_runtime::seccomp::SeccompError),
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ProfileError {
    ProfileError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The `linux.seccomp` for a container with bounding set `caps`, or None for no filter:
/// `--privileged` without a profile of its own runs unconfined, as with docker.
pub(crate) fn for_container(policy: &Policy, privileged: bool, caps: &[String]) -> Option<Value> {
    match policy {
        Policy::Default if privileged => None,
        Policy::Default => Some(Profile::berth_default().resolve(caps, &Host::current())),
        Policy::Unconfined => None,
        Policy::Custom(p) => Some(p.resolve(caps, &Host::current())),
    }
}

/// A profile in docker's format.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    architectures: Option<Vec<Arch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    syscalls: Option<Vec<Rule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listener_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listener_metadata: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<Arg>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    includes: Option<Filter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    excludes: Option<Filter>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: LinuxSeccompOperator,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_kernel: Option<String>,
}

/// The architecture berth was built for, which is the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeArch {
    X86_64,
    Aarch64,
    Riscv64,
    S390x,
    Ppc64le,
    /// Anything else: no architecture list, so libseccomp uses the native one alone.
    Other,
}

impl NativeArch {
    pub fn current() -> NativeArch {
        if cfg!(target_arch = "x86_64") {
            NativeArch::X86_64
        } else if cfg!(target_arch = "aarch64") {
            NativeArch::Aarch64
        } else if cfg!(target_arch = "riscv64") {
            NativeArch::Riscv64
        } else if cfg!(target_arch = "s390x") {
            NativeArch::S390x
        } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
            NativeArch::Ppc64le
        } else {
            NativeArch::Other
        }
    }

    fn scmp(self) -> Option<Arch> {
        Some(match self {
            NativeArch::X86_64 => Arch::ScmpArchX86_64,
            NativeArch::Aarch64 => Arch::ScmpArchAarch64,
            NativeArch::Riscv64 => Arch::ScmpArchRiscv64,
            NativeArch::S390x => Arch::ScmpArchS390x,
            NativeArch::Ppc64le => Arch::ScmpArchPpc64le,
            NativeArch::Other => return None,
        })
    }

    /// Names `includes.arches` may use for this architecture: docker's (Go's) and the kernel's.
    fn names(self) -> &'static [&'static str] {
        match self {
            NativeArch::X86_64 => &["amd64", "x86_64"],
            NativeArch::Aarch64 => &["arm64", "aarch64"],
            NativeArch::Riscv64 => &["riscv64"],
            NativeArch::S390x => &["s390x"],
            NativeArch::Ppc64le => &["ppc64le"],
            NativeArch::Other => &[],
        }
    }
}

/// What a profile is resolved against besides the capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub arch: NativeArch,
    /// Kernel (major, minor); (0, 0) when unknown, which fails every `minKernel`.
    pub kernel: (u32, u32),
}

impl Host {
    pub fn current() -> Host {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        Host {
            arch: NativeArch::current(),
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }
}

/// "6.1.0-13-amd64" → (6, 1); "4.8" → (4, 8).
fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().filter(|m| !m.is_empty()).unwrap_or("0");
    Some((major, minor.parse().ok()?))
}

const DEFAULT_JSON: &str = include_str!("seccomp/default.json");

static DEFAULT: std::sync::LazyLock<Profile> = std::sync::LazyLock::new(|| {
    Profile::parse(DEFAULT_JSON.as_bytes())
        .expect("berth's default seccomp profile is checked by the unit tests")
});

impl Profile {
    /// berth's default profile (docs/SECCOMP.md).
    pub fn berth_default() -> &'static Profile {
        &DEFAULT
    }

    /// The default profile's text, a starting point for a custom profile.
    pub fn berth_default_json() -> &'static str {
        DEFAULT_JSON
    }

    /// Parses and checks a profile: types and field names (errors give the JSON path),
    /// then the rules docker's format adds (one of `name`/`names`, one of
    /// `architectures`/`archMap`, argument indexes, capability names, kernel versions).
    pub fn parse(bytes: &[u8]) -> Result<Profile, ProfileError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let p: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ProfileError::Json {
                field: if field == "." {
                    "(document)".into()
                } else {
                    field
                },
                message: e.into_inner().to_string(),
            }
        })?;
        p.validate()?;
        Ok(p)
    }

    /// Reads, parses and test-compiles a profile file for this host, so a profile that
    /// libseccomp would refuse fails before any container is made.
    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let bytes = std::fs::read(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let p = Profile::parse(&bytes)?;
        p.check_compiles(&Host::current())?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), ProfileError> {
        if self.architectures.is_some() && self.arch_map.is_some() {
            return Err(invalid(
                "archMap",
                "give either architectures or archMap, not both",
            ));
        }
        for (i, r) in self.syscalls.iter().flatten().enumerate() {
            let at = |f: &str| format!("syscalls[{i}].{f}");
            match (&r.name, &r.names) {
                (Some(_), Some(_)) => {
                    return Err(invalid(at("name"), "give either name or names, not both"))
                }
                (None, None) => return Err(invalid(at("names"), "missing")),
                (None, Some(n)) if n.is_empty() => return Err(invalid(at("names"), "empty")),
                _ => {}
            }
            for (j, n) in r.names.iter().flatten().chain(&r.name).enumerate() {
                let ok = !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !ok {
                    return Err(invalid(
                        format!("syscalls[{i}].names[{j}]"),
                        format!("{n:?} is not a syscall name"),
                    ));
                }
            }
            for (j, a) in r.args.iter().flatten().enumerate() {
                if a.index > 5 {
                    return Err(invalid(
                        format!("syscalls[{i}].args[{j}].index"),
                        format!(
                            "{} is out of range: syscalls have arguments 0 to 5",
                            a.index
                        ),
                    ));
                }
            }
            for (which, f) in [("includes", &r.includes), ("excludes", &r.excludes)] {
                let Some(f) = f else { continue };
                for (j, c) in f.caps.iter().flatten().enumerate() {
                    if !berth_runtime::capabilities::NAMES.contains(&c.as_str()) {
                        return Err(invalid(
                            format!("syscalls[{i}].{which}.caps[{j}]"),
                            format!("unknown capability {c:?} (names look like CAP_SYS_ADMIN)"),
                        ));
                    }
                }
                if let Some(k) = &f.min_kernel {
                    if !k.starts_with(|c: char| c.is_ascii_digit()) || parse_kernel(k).is_none() {
                        return Err(invalid(
                            format!("syscalls[{i}].{which}.minKernel"),
                            format!("{k:?} is not a kernel version like \"4.8\""),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Compiles the profile as it resolves with no capabilities and with every one, so
    /// what libseccomp refuses is reported now and not by the runtime later.
    pub fn check_compiles(&self, host: &Host) -> Result<(), ProfileError> {
        let all: Vec<String> = berth_runtime::capabilities::NAMES
            .iter()
            .map(|c| c.to_string())
            .collect();
        for caps in [&[][..], &all[..]] {
            let oci: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_value(self.resolve(caps, host)).map_err(|e| {
                    invalid(
                        "(resolved profile)",
                        format!("not a valid OCI profile: {e}"),
                    )
                })?;
            berth_runtime::seccomp::compile(&oci)?;
        }
        Ok(())
    }

    /// The OCI `linux.seccomp` for a container whose bounding set is `caps`, on `host`.
    pub fn resolve(&self, caps: &[String], host: &Host) -> Value {
        let mut out = json!({ "defaultAction": self.default_action });
        if let Some(e) = self.default_errno_ret {
            out["defaultErrnoRet"] = json!(e);
        }
        let arches: Vec<Arch> = match (&self.architectures, &self.arch_map) {
            (Some(a), _) => a.clone(),
            (None, Some(map)) => map
                .iter()
                .filter(|m| Some(m.architecture) == host.arch.scmp())
                .flat_map(|m| {
                    std::iter::once(m.architecture)
                        .chain(m.sub_architectures.iter().flatten().copied())
                })
                .collect(),
            (None, None) => vec![],
        };
        if !arches.is_empty() {
            out["architectures"] = json!(arches);
        }
        if let Some(f) = &self.flags {
            out["flags"] = json!(f);
        }
        if let Some(p) = &self.listener_path {
            out["listenerPath"] = json!(p);
        }
        if let Some(m) = &self.listener_metadata {
            out["listenerMetadata"] = json!(m);
        }
        let syscalls: Vec<Value> = self
            .syscalls
            .iter()
            .flatten()
            .filter(|r| r.applies(caps, host))
            .map(|r| {
                let names: Vec<&String> = r.names.iter().flatten().chain(&r.name).collect();
                let mut s = json!({ "names": names, "action": r.action });
                if let Some(e) = r.errno_ret {
                    s["errnoRet"] = json!(e);
                }
                if let Some(args) = r.args.as_ref().filter(|a| !a.is_empty()) {
                    s["args"] = json!(args
                        .iter()
                        .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                        .collect::<Vec<_>>());
                }
                s
            })
            .collect();
        out["syscalls"] = json!(syscalls);
        out
    }
}

impl Rule {
    fn applies(&self, caps: &[String], host: &Host) -> bool {
        let has = |c: &String| caps.contains(c);
        let on_arch = |a: &Vec<String>| a.iter().any(|n| host.arch.names().contains(&n.as_str()));
        let kernel_at_least = |k: &String| {
            parse_kernel(k).is_some_and(|min| host.kernel >= min && host.kernel != (0, 0))
        };
        if let Some(inc) = &self.includes {
            if inc
                .arches
                .as_ref()
                .is_some_and(|a| !a.is_empty() && !on_arch(a))
                || inc.caps.iter().flatten().any(|c| !has(c))
                || inc.min_kernel.as_ref().is_some_and(|k| !kernel_at_least(k))
            {
                return false;
            }
        }
        if let Some(exc) = &self.excludes {
            if exc.arches.as_ref().is_some_and(on_arch)
                || exc.caps.iter().flatten().any(has)
                || exc.min_kernel.as_ref().is_some_and(kernel_at_least)
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
#[path = "seccomp/tests.rs"]
mod tests;
