//! Per-registry options: where a name is really served from (location, mirrors), whether
//! plain HTTP or unverified TLS is allowed, extra CAs, and the client's timeouts and retry
//! budget.
//!
//! The file format is the subset of containers-registries.conf(5) podman users have:
//!
//! ```toml
//! [[registry]]
//! prefix = "docker.io"            # host[:port][/path]; defaults to location
//! location = "docker.io"          # where the prefix is served from (may add a path)
//! insecure = false                # plain HTTP, or HTTPS without verification
//! blocked = false                 # refuse to pull or push
//! [[registry.mirror]]
//! location = "mirror.example.com/dockerhub"
//! insecure = false
//! ```
//!
//! plus the old v1 tables `[registries.insecure] registries = [...]` and
//! `[registries.block] registries = [...]`. Other keys are ignored.
//!
//! ## Which scheme
//! HTTPS always, except plain HTTP for a host that is loopback (`localhost`, 127.0.0.0/8,
//! `::1`) or configured `insecure`, and has no CA of its own (a CA file configured here or
//! found in a certs.d directory means the host speaks TLS). `insecure` HTTPS hosts are
//! reached without certificate verification only when [`HostOptions::plain_http`] is set to
//! `Some(false)`. Deterministic on purpose: no HTTPS-then-HTTP probing.

use crate::error::Error;
use crate::reference::is_loopback_host;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One `[[registry]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `host[:port][/path]` this entry applies to (longest match wins).
    pub prefix: String,
    /// Where the prefix is served from; `None` = the prefix itself.
    pub location: Option<String>,
    pub insecure: bool,
    pub blocked: bool,
    /// Tried in order before the origin, for pulls only.
    pub mirrors: Vec<Mirror>,
    /// Which file said so (for error messages).
    pub source_file: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
}

/// Transport options for one host (`host[:port]`), set by berth's callers and tests
/// rather than by registries.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// Extra CA certificates (PEM) to trust for this host, beside the system roots and
    /// any certs.d directory.
    pub ca_files: Vec<PathBuf>,
    /// Force the scheme: `Some(true)` plain HTTP, `Some(false)` HTTPS; `None` follows the
    /// rule in the module documentation.
    pub plain_http: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub registries: Vec<RegistryConfig>,
    /// Per-host transport options, keyed by `host[:port]`.
    pub hosts: std::collections::BTreeMap<String, HostOptions>,
    /// Directories holding `HOST[:PORT]/*.crt` CA files, searched in order.
    pub certs_dirs: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// No bytes for this long, while waiting for a response or reading a body, counts as a
    /// failed attempt (and a blob download resumes from where it got to).
    pub stall_timeout: Duration,
    /// Further attempts after the first, for connect errors, 5xx, 429 and stalls.
    pub retries: u32,
    /// First backoff delay; doubles each attempt (with up to 50% jitter), capped by
    /// `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Upload blobs in PATCH chunks of this size instead of one PUT. A monolithic PUT
    /// refused with 413 also falls back to chunks of 16 MiB.
    pub chunk_size: Option<u64>,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            registries: Vec::new(),
            hosts: Default::default(),
            certs_dirs: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
            retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            chunk_size: None,
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

pub const SYSTEM_REGISTRIES_CONF: &str = "/etc/containers/registries.conf";
pub const SYSTEM_REGISTRIES_CONF_D: &str = "/etc/containers/registries.conf.d";
pub const BERTH_REGISTRIES_CONF: &str = "/etc/berth/registries.conf";
pub const CERTS_DIRS: &[&str] = &[
    "/etc/berth/certs.d",
    "/etc/containers/certs.d",
    "/etc/docker/certs.d",
];

/// Where a repository is fetched from: a mirror or the origin, after prefix rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]` to connect to.
    pub host: String,
    pub repository: String,
    pub insecure: bool,
    pub mirror: bool,
    /// The name credentials are stored under (docker.io for Docker Hub's API host).
    pub auth_host: String,
}

impl ClientConfig {
    /// CAs from `$BERTH_CERTS_DIR` and the standard certs.d directories; then
    /// the system's registries.conf (`$CONTAINERS_REGISTRIES_CONF` or
    /// /etc/containers/registries.conf, then, for the default path, the drop-ins in
    /// /etc/containers/registries.conf.d/*.conf in name order), then berth's
    /// (`$BERTH_REGISTRIES_CONF` or /etc/berth/registries.conf); a later entry for the same
    /// prefix replaces an earlier one. Also the standard certs.d directories. Missing
    /// files are fine.
    pub fn load() -> Result<Self, Error> {
        // $BERTH_CERTS_DIR (a certs.d-shaped directory) comes first: per-user and test CAs
        // without touching /etc.
        let certs_dirs = std::env::var_os("BERTH_CERTS_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain(CERTS_DIRS.iter().map(PathBuf::from))
            .collect();
        let mut config = ClientConfig {
            certs_dirs,
            ..Default::default()
        };
        let mut files = Vec::new();
        match std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
            Some(p) => files.push(PathBuf::from(p)),
            None => {
                files.push(PathBuf::from(SYSTEM_REGISTRIES_CONF));
                if let Ok(rd) = std::fs::read_dir(SYSTEM_REGISTRIES_CONF_D) {
                    let mut dropins: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                        .collect();
                    dropins.sort();
                    files.extend(dropins);
                }
            }
        }
        files.push(
            std::env::var_os("BERTH_REGISTRIES_CONF")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(BERTH_REGISTRIES_CONF)),
        );
        for path in &files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Error::ReadFile {
                        path: path.clone(),
                        source,
                    })
                }
            };
            for entry in parse_registries_conf(path, &text)? {
                config.registries.retain(|r| r.prefix != entry.prefix);
                config.registries.push(entry);
            }
        }
        Ok(config)
    }

    /// The entry whose prefix is the longest match for `name` (`host[/path]`), matching
    /// whole path components.
    pub fn registry_for(&self, name: &str) -> Option<&RegistryConfig> {
        self.registries
            .iter()
            .filter(|r| {
                name == r.prefix
                    || name
                        .strip_prefix(r.prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|r| r.prefix.len())
    }

    /// Endpoints for `registry`/`repository`: mirrors first (when `pull`), then the origin.
    pub(crate) fn endpoints(
        &self,
        registry: &str,
        api_host: &str,
        repository: &str,
        pull: bool,
    ) -> Result<Vec<Endpoint>, Error> {
        let name = format!("{registry}/{repository}");
        let Some(entry) = self.registry_for(&name) else {
            return Ok(vec![Endpoint {
                host: api_host.into(),
                repository: repository.into(),
                insecure: self.host_insecure(api_host),
                mirror: false,
                auth_host: registry.into(),
            }]);
        };
        if entry.blocked {
            return Err(Error::Blocked {
                registry: name,
                source_file: entry.source_file.clone(),
            });
        }
        let rest = &name[entry.prefix.len()..];
        let mut out = Vec::new();
        if pull {
            for m in &entry.mirrors {
                let (host, repo) = split_location(&m.location, rest);
                out.push(Endpoint {
                    insecure: m.insecure || self.host_insecure(&host),
                    host: host.clone(),
                    repository: repo,
                    mirror: true,
                    auth_host: host,
                });
            }
        }
        match &entry.location {
            Some(loc) if loc != &entry.prefix => {
                let (host, repo) = split_location(loc, rest);
                let host = if host == crate::reference::DOCKER_HUB {
                    "registry-1.docker.io".to_string()
                } else {
                    host
                };
                out.push(Endpoint {
                    insecure: entry.insecure || self.host_insecure(&host),
                    auth_host: normalise_hub(&host),
                    host,
                    repository: repo,
                    mirror: false,
                });
            }
            _ => out.push(Endpoint {
                host: api_host.into(),
                repository: repository.into(),
                insecure: entry.insecure || self.host_insecure(api_host),
                mirror: false,
                auth_host: registry.into(),
            }),
        }
        Ok(out)
    }

    /// Is some entry for exactly this host marked insecure?
    fn host_insecure(&self, host: &str) -> bool {
        self.registry_for(host).is_some_and(|r| r.insecure)
    }

    /// CA files for `host`: configured ones, then `*.crt` in each certs.d/HOST directory.
    pub(crate) fn ca_files(&self, host: &str) -> Vec<PathBuf> {
        let mut out = self
            .hosts
            .get(host)
            .map(|h| h.ca_files.clone())
            .unwrap_or_default();
        for dir in &self.certs_dirs {
            let Ok(rd) = std::fs::read_dir(dir.join(host)) else {
                continue;
            };
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect();
            found.sort();
            out.extend(found);
        }
        out
    }

    /// Plain HTTP for `host`? See the module documentation.
    pub(crate) fn plain_http(&self, host: &str, insecure: bool, has_ca: bool) -> bool {
        if let Some(forced) = self.hosts.get(host).and_then(|h| h.plain_http) {
            return forced;
        }
        (insecure || is_loopback_host(host)) && !has_ca
    }
}

fn normalise_hub(host: &str) -> String {
    match host {
        "registry-1.docker.io" | "index.docker.io" => crate::reference::DOCKER_HUB.into(),
        h => h.into(),
    }
}

/// `location` + the rest of the name after the prefix → (host, repository).
fn split_location(location: &str, rest: &str) -> (String, String) {
    let full = format!("{}{}", location.trim_end_matches('/'), rest);
    match full.split_once('/') {
        Some((h, r)) => (h.to_string(), r.to_string()),
        None => (full, String::new()),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct ConfFile {
    #[serde(default)]
    registry: Vec<ConfRegistry>,
    #[serde(default)]
    registries: Option<ConfV1>,
}

#[derive(serde::Deserialize, Default)]
struct ConfRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<ConfMirror>,
}

#[derive(serde::Deserialize, Default)]
struct ConfMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

#[derive(serde::Deserialize, Default)]
struct ConfV1 {
    insecure: Option<ConfV1List>,
    block: Option<ConfV1List>,
}

#[derive(serde::Deserialize, Default)]
struct ConfV1List {
    #[serde(default)]
    registries: Vec<String>,
}

/// Parses one registries.conf.
pub fn parse_registries_conf(path: &Path, text: &str) -> Result<Vec<RegistryConfig>, Error> {
    let file: ConfFile = toml::from_str(text).map_err(|e| Error::RegistriesConf {
        path: path.into(),
        source: Box::new(e),
    })?;
    let source_file = path.display().to_string();
    let mut out: Vec<RegistryConfig> = Vec::new();
    for r in file.registry {
        let prefix = match (&r.prefix, &r.location) {
            (Some(p), _) => p.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => {
                return Err(Error::RegistriesConfEntry {
                    path: path.into(),
                    reason: "a [[registry]] needs a prefix or a location".into(),
                })
            }
        };
        if prefix.starts_with("*.") {
            // Wildcard subdomain prefixes are a podman feature berth does not implement;
            // ignoring the entry is safer than matching it wrongly.
            tracing::warn!(file = %source_file, %prefix, "wildcard registry prefixes are not supported; entry ignored");
            continue;
        }
        let prefix = prefix.trim_end_matches('/').to_string();
        out.push(RegistryConfig {
            prefix,
            location: r.location.map(|l| l.trim_end_matches('/').to_string()),
            insecure: r.insecure,
            blocked: r.blocked,
            mirrors: r
                .mirror
                .into_iter()
                .map(|m| Mirror {
                    location: m.location,
                    insecure: m.insecure,
                })
                .collect(),
            source_file: source_file.clone(),
        });
    }
    if let Some(v1) = file.registries {
        let mut v1_entry = |host: &str, insecure: bool, blocked: bool| {
            if let Some(e) = out.iter_mut().find(|e| e.prefix == host) {
                e.insecure |= insecure;
                e.blocked |= blocked;
            } else {
                out.push(RegistryConfig {
                    prefix: host.into(),
                    insecure,
                    blocked,
                    source_file: source_file.clone(),
                    ..Default::default()
                });
            }
        };
        for h in v1.insecure.map(|l| l.registries).unwrap_or_default() {
            v1_entry(&h, true, false);
        }
        for h in v1.block.map(|l| l.registries).unwrap_or_default() {
            v1_entry(&h, false, true);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.example.com/hub"
[[registry.mirror]]
location = "10.0.0.5:5000"
insecure = true

[[registry]]
location = "10.1.1.1:5000"
insecure = true

[[registry]]
prefix = "example.com/team"
location = "internal.example.com/mirror/team"

[[registry]]
prefix = "bad.example.com"
blocked = true

[registries.insecure]
registries = ["old.example.com"]
"#;

    fn config() -> ClientConfig {
        ClientConfig {
            registries: parse_registries_conf(Path::new("/r.conf"), CONF).expect("parses"),
            ..Default::default()
        }
    }

    #[test]
    fn mirrors_then_origin_with_rewriting() {
        let c = config();
        let e = c
            .endpoints("docker.io", "registry-1.docker.io", "library/busybox", true)
            .expect("ok");
        let hosts: Vec<_> = e
            .iter()
            .map(|e| format!("{}/{} {}", e.host, e.repository, e.insecure))
            .collect();
        assert_eq!(
            hosts,
            [
                "mirror.example.com/hub/library/busybox false",
                "10.0.0.5:5000/library/busybox true",
                "registry-1.docker.io/library/busybox false"
            ]
        );
        assert_eq!(e[2].auth_host, "docker.io");
        // Pushes skip mirrors.
        let e = c
            .endpoints(
                "docker.io",
                "registry-1.docker.io",
                "library/busybox",
                false,
            )
            .expect("ok");
        assert_eq!(e.len(), 1);
        let e = c
            .endpoints("example.com", "example.com", "team/app", true)
            .expect("ok");
        assert_eq!(e[0].host, "internal.example.com");
        assert_eq!(e[0].repository, "mirror/team/app");
        // A prefix matches whole components only.
        let e = c
            .endpoints("example.com", "example.com", "teamx/app", true)
            .expect("ok");
        assert_eq!(e[0].host, "example.com");
        assert!(
            c.endpoints("10.1.1.1:5000", "10.1.1.1:5000", "a", true)
                .expect("ok")[0]
                .insecure
        );
        assert!(
            c.endpoints("old.example.com", "old.example.com", "a", true)
                .expect("ok")[0]
                .insecure
        );
        let err = c
            .endpoints("bad.example.com", "bad.example.com", "x", true)
            .expect_err("blocked");
        assert!(err.to_string().contains("blocked by /r.conf"), "{err}");
    }

    #[test]
    fn scheme_rule() {
        let mut c = config();
        assert!(c.plain_http("127.0.0.1:5000", false, false));
        assert!(c.plain_http("localhost", false, false));
        assert!(!c.plain_http("127.0.0.1:5000", false, true));
        assert!(!c.plain_http("example.com", false, false));
        assert!(c.plain_http("10.1.1.1:5000", true, false));
        c.hosts.insert(
            "127.0.0.1:5000".into(),
            HostOptions {
                plain_http: Some(false),
                ..Default::default()
            },
        );
        assert!(!c.plain_http("127.0.0.1:5000", false, false));
    }

    #[test]
    fn load_reads_both_files_berth_last() {
        let _g = crate::TEST_ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("tmp");
        let system = dir.path().join("system.conf");
        let berth = dir.path().join("berth.conf");
        std::fs::write(&system, CONF).expect("write");
        std::fs::write(
            &berth,
            "[[registry]]\nprefix = \"docker.io\"\nblocked = true\n",
        )
        .expect("write");
        std::env::set_var("CONTAINERS_REGISTRIES_CONF", &system);
        std::env::set_var("BERTH_REGISTRIES_CONF", &berth);
        let c = ClientConfig::load();
        std::env::remove_var("CONTAINERS_REGISTRIES_CONF");
        std::env::remove_var("BERTH_REGISTRIES_CONF");
        let c = c.expect("load");
        let hub = c.registry_for("docker.io/library/x").expect("entry");
        assert!(hub.blocked && hub.mirrors.is_empty());
        assert!(hub.source_file.ends_with("berth.conf"));
        assert!(c.registry_for("10.1.1.1:5000/a").expect("entry").insecure);
        assert_eq!(c.certs_dirs[0], Path::new("/etc/berth/certs.d"));
    }

    #[test]
    fn certs_d_files_are_found_per_host() {
        let dir = tempfile::tempdir().expect("tmp");
        let host = dir.path().join("reg.example:5000");
        std::fs::create_dir_all(&host).expect("mkdir");
        std::fs::write(host.join("ca.crt"), "x").expect("write");
        std::fs::write(host.join("client.cert"), "x").expect("write");
        let c = ClientConfig {
            certs_dirs: vec![dir.path().into()],
            ..Default::default()
        };
        assert_eq!(c.ca_files("reg.example:5000"), [host.join("ca.crt")]);
        assert!(c.ca_files("reg.example").is_empty());
    }

    #[test]
    fn bad_files_name_themselves() {
        let e = parse_registries_conf(Path::new("/x.conf"), "[[registry]]\ninsecure = 1\n")
            .expect_err("type error");
        assert!(e.to_string().starts_with("/x.conf"), "{e}");
        let e = parse_registries_conf(Path::new("/x.conf"), "[[registry]]\ninsecure = true\n")
            .expect_err("no prefix");
        assert!(e.to_string().contains("prefix or a location"), "{e}");
    }
}
