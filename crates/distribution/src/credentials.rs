//! Registry credentials from the files users already have, in docker's format
//! (containers-auth.json(5)): `{"auths": {"host[/path]": {"auth": base64("user:pass")}}}`.
//!
//! Lookup order, first file with a matching entry wins:
//! 1. berth's own: `$BERTH_AUTH_FILE` or `~/.config/berth/auth.json` (what `berth login`
//!    writes, see [`Credentials::store`]);
//! 2. podman's: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//!    `~/.config/containers/auth.json`;
//! 3. docker's: `~/.docker/config.json`.
//!
//! Within a file the most specific key wins (`host/ns/repo` over `host/ns` over `host`), as
//! podman does. Credential helpers (`credsStore`, `credHelpers`) are not supported: berth
//! logs that it saw them and goes on without.

use crate::error::Error;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The credential sources, read when asked (so a `berth login` in another process is
/// seen), plus fixed entries given in code (`--creds`, tests).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    files: Vec<PathBuf>,
    /// Where `store`/`erase` write; `None` for fixed-only credentials.
    own_file: Option<PathBuf>,
    fixed: BTreeMap<String, Login>,
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(
        rename = "credsStore",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    creds_store: Option<String>,
    #[serde(
        rename = "credHelpers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    cred_helpers: Option<serde_json::Value>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

impl Credentials {
    /// No credentials at all: anonymous access only.
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// The standard files (see the module documentation), from the environment.
    pub fn from_env() -> Credentials {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let own = std::env::var_os("BERTH_AUTH_FILE")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config/berth/auth.json")));
        let mut files = Vec::new();
        files.extend(own.clone());
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(p.into());
        }
        if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(p).join("containers/auth.json"));
        }
        if let Some(h) = &home {
            files.push(h.join(".config/containers/auth.json"));
            files.push(h.join(".docker/config.json"));
        }
        Credentials {
            files,
            own_file: own,
            fixed: BTreeMap::new(),
        }
    }

    /// Explicit files, the first being the one `store`/`erase` write.
    pub fn from_files(files: Vec<PathBuf>) -> Credentials {
        Credentials {
            own_file: files.first().cloned(),
            files,
            fixed: BTreeMap::new(),
        }
    }

    /// Adds a fixed login for `registry` (`host[:port]`), which wins over the files.
    pub fn with_login(mut self, registry: &str, username: &str, password: &str) -> Credentials {
        self.fixed.insert(
            normalise_key(registry),
            Login {
                username: username.into(),
                password: password.into(),
            },
        );
        self
    }

    /// The login for `registry`/`repository` (`repository` may be empty).
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Login>, Error> {
        let registry = normalise_key(registry);
        if let Some(l) = best_match(&self.fixed, &registry, repository) {
            return Ok(Some(l.clone()));
        }
        for path in &self.files {
            let Some(file) = read_auth_file(path)? else {
                continue;
            };
            if file.creds_store.is_some() || file.cred_helpers.is_some() {
                tracing::info!(path = %path.display(), "credential helpers (credsStore/credHelpers) are not supported; using only the file's \"auths\"");
            }
            let entries: BTreeMap<String, &AuthEntry> = file
                .auths
                .iter()
                .map(|(k, v)| (normalise_key(k), v))
                .collect();
            if let Some(entry) = best_match(&entries, &registry, repository) {
                if let Some(login) = decode_entry(path, entry)? {
                    return Ok(Some(login));
                }
            }
        }
        Ok(None)
    }

    /// Saves a login for `registry` in berth's file, atomically and with mode 0600.
    pub fn store(&self, registry: &str, username: &str, password: &str) -> Result<(), Error> {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.update(|file| {
            let entry = file.auths.entry(normalise_key(registry)).or_default();
            entry.auth = Some(auth);
            true
        })
    }

    /// Removes `registry`'s login from berth's file. `Ok(false)` if there was none.
    pub fn erase(&self, registry: &str) -> Result<bool, Error> {
        let key = normalise_key(registry);
        let mut removed = false;
        self.update(|file| {
            let before = file.auths.len();
            file.auths.retain(|k, _| normalise_key(k) != key);
            removed = file.auths.len() != before;
            removed
        })?;
        Ok(removed)
    }

    fn update(&self, f: impl FnOnce(&mut AuthFile) -> bool) -> Result<(), Error> {
        let Some(path) = &self.own_file else {
            return Err(Error::AuthFile {
                path: PathBuf::new(),
                reason: "no credentials file to write (HOME and BERTH_AUTH_FILE are unset)".into(),
            });
        };
        let mut file = read_auth_file(path)?.unwrap_or_default();
        if !f(&mut file) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::AuthFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_private_atomic(path, &bytes)
    }
}

/// Docker Hub is stored under several names; URLs carry a scheme and a path.
fn normalise_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let k = k.strip_suffix("/v1").or(k.strip_suffix("/v2")).unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => crate::reference::DOCKER_HUB.into(),
        _ => k
            .strip_prefix("index.docker.io/")
            .or(k.strip_prefix("registry-1.docker.io/"))
            .map(|rest| format!("docker.io/{rest}"))
            .unwrap_or_else(|| k.to_string()),
    }
}

/// `registry/a/b/c`, then `registry/a/b`, …, then `registry`.
fn best_match<'a, V>(map: &'a BTreeMap<String, V>, registry: &str, repo: &str) -> Option<&'a V> {
    let mut name = if repo.is_empty() {
        registry.to_string()
    } else {
        format!("{registry}/{repo}")
    };
    loop {
        if let Some(v) = map.get(&name) {
            return Some(v);
        }
        if name.len() <= registry.len() {
            return None;
        }
        match name.rfind('/') {
            Some(i) => name.truncate(i),
            None => return None,
        }
    }
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, Error> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Some(AuthFile::default())),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::AuthFile {
                path: path.into(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::ReadFile {
            path: path.into(),
            source,
        }),
    }
}

fn decode_entry(path: &Path, entry: &AuthEntry) -> Result<Option<Login>, Error> {
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        if entry.rest.contains_key("identitytoken") {
            tracing::info!(path = %path.display(), "identity tokens in auth files are not supported");
        }
        return Ok(None);
    };
    let bad = |reason: &str| Error::AuthFile {
        path: path.into(),
        reason: reason.into(),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("an \"auth\" value is not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| bad("an \"auth\" value is not UTF-8"))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| bad("an \"auth\" value is not base64(\"user:password\")"))?;
    Ok(Some(Login {
        username: u.into(),
        password: p.into(),
    }))
}

/// Write to a temporary file in the same directory (created 0600), fsync, rename.
fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let werr = |p: &Path, source| Error::WriteFile {
        path: p.into(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth.json".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TEST_ENV as ENV;
    use std::os::unix::fs::PermissionsExt as _;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn keys_normalise() {
        assert_eq!(normalise_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_key("registry-1.docker.io"), "docker.io");
        assert_eq!(normalise_key("http://localhost:5000"), "localhost:5000");
        assert_eq!(normalise_key("quay.io/org"), "quay.io/org");
    }

    #[test]
    fn order_and_specificity() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let home = tempfile::tempdir().expect("tmp");
        let h = home.path();
        std::fs::create_dir_all(h.join(".docker")).expect("mkdir");
        std::fs::create_dir_all(h.join(".config/containers")).expect("mkdir");
        std::fs::write(
            h.join(".docker/config.json"),
            format!(
                r#"{{"credsStore":"desktop","auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"d.io":{{"auth":"{}"}}}}}}"#,
                b64("hub:pw"),
                b64("docker:pw")
            ),
        )
        .expect("write");
        std::fs::write(
            h.join(".config/containers/auth.json"),
            format!(
                r#"{{"auths":{{"d.io":{{"auth":"{}"}},"q.io/org":{{"auth":"{}"}},"q.io":{{"auth":"{}"}}}}}}"#,
                b64("podman:pw"),
                b64("org:pw"),
                b64("any:pw")
            ),
        )
        .expect("write");
        std::env::set_var("HOME", h);
        std::env::remove_var("BERTH_AUTH_FILE");
        std::env::remove_var("REGISTRY_AUTH_FILE");
        std::env::remove_var("XDG_RUNTIME_DIR");
        let c = Credentials::from_env();
        let user = |reg: &str, repo: &str| {
            c.lookup(reg, repo)
                .expect("lookup")
                .map(|l| l.username)
                .unwrap_or_default()
        };
        assert_eq!(user("docker.io", "library/busybox"), "hub");
        assert_eq!(user("d.io", "x"), "podman");
        assert_eq!(user("q.io", "org/app"), "org");
        assert_eq!(user("q.io", "other/app"), "any");
        assert_eq!(user("none.io", "x"), "");

        // berth login writes its own file, which wins; logout removes only that.
        c.store("d.io", "berth", "secret:with:colons")
            .expect("store");
        let own = h.join(".config/berth/auth.json");
        let mode = std::fs::metadata(&own).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let login = c.lookup("d.io", "").expect("lookup").expect("some");
        assert_eq!(login.username, "berth");
        assert_eq!(login.password, "secret:with:colons");
        assert!(c.erase("d.io").expect("erase"));
        assert!(!c.erase("d.io").expect("erase again"));
        assert_eq!(user("d.io", "x"), "podman");

        // Fixed logins win over every file.
        let c = c.with_login("d.io", "flag", "pw");
        assert_eq!(
            c.lookup("d.io", "")
                .expect("lookup")
                .expect("some")
                .username,
            "flag"
        );
    }

    #[test]
    fn env_overrides_and_bad_files() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("tmp");
        let own = dir.path().join("mine.json");
        let podman = dir.path().join("podman.json");
        std::fs::write(
            &podman,
            format!(r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#, b64("p:q")),
        )
        .expect("write");
        std::env::set_var("HOME", dir.path().join("nohome"));
        std::env::set_var("BERTH_AUTH_FILE", &own);
        std::env::set_var("REGISTRY_AUTH_FILE", &podman);
        std::env::remove_var("XDG_RUNTIME_DIR");
        let c = Credentials::from_env();
        assert_eq!(
            c.lookup("r.io", "a").expect("ok").expect("some").username,
            "p"
        );
        c.store("r.io", "me", "x").expect("store");
        assert!(own.exists());
        assert_eq!(
            c.lookup("r.io", "a").expect("ok").expect("some").username,
            "me"
        );
        std::fs::write(&own, "{not json").expect("write");
        let e = c.lookup("r.io", "a").expect_err("bad json");
        assert!(e.to_string().contains("mine.json"), "{e}");
        std::fs::write(&own, r#"{"auths":{"r.io":{"auth":"!!!"}}}"#).expect("write");
        let e = c.lookup("r.io", "a").expect_err("bad base64");
        assert!(e.to_string().contains("base64"), "{e}");
        std::env::remove_var("BERTH_AUTH_FILE");
        std::env::remove_var("REGISTRY_AUTH_FILE");
    }
}
