//! A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) serving
//! 127.0.0.1 on a free port, with filesystem storage in a temporary directory, killed on
//! drop. [`Registry::start_tls_basic`] adds TLS (a CA and server certificate made here
//! with the openssl CLI) and htpasswd basic auth (bcrypt, `htpasswd -Bbn`).
//!
//! Tests that need it call [`Registry::start_or_skip`] (or the TLS twin), which returns
//! `None` after printing why when `docker-registry` is not installed.

use anyhow::{bail, Context as _};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
    ca: Option<PathBuf>,
}

/// Why registry tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !Path::new(DOCKER_REGISTRY).exists() {
        return Some(format!(
            "{DOCKER_REGISTRY} is missing: install the docker-registry package"
        ));
    }
    None
}

struct Tls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Registry {
    /// A plain-HTTP registry without auth.
    pub fn start() -> anyhow::Result<Registry> {
        Registry::launch(None, None)
    }

    /// A registry over TLS (certificate for 127.0.0.1 and localhost, signed by a CA at
    /// [`Registry::ca_path`]) with htpasswd basic auth for `user`/`password`.
    pub fn start_tls_basic(user: &str, password: &str) -> anyhow::Result<Registry> {
        Registry::launch(Some((user, password)), Some(()))
    }

    /// [`Registry::start`], or `None` with a printed reason when docker-registry is missing.
    pub fn start_or_skip() -> Option<Registry> {
        if let Some(why) = skip_reason() {
            eprintln!("skipping: {why}");
            return None;
        }
        Some(Registry::start().expect("start docker-registry"))
    }

    /// [`Registry::start_tls_basic`], or `None` with a printed reason.
    pub fn start_tls_basic_or_skip(user: &str, password: &str) -> Option<Registry> {
        if let Some(why) = skip_reason() {
            eprintln!("skipping: {why}");
            return None;
        }
        for tool in ["openssl", "htpasswd"] {
            if which(tool).is_none() {
                eprintln!("skipping: {tool} is missing (packages openssl, apache2-utils)");
                return None;
            }
        }
        Some(Registry::start_tls_basic(user, password).expect("start docker-registry with TLS"))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The CA that signed the server certificate (TLS registries only).
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The registry's storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn launch(auth: Option<(&str, &str)>, tls: Option<()>) -> anyhow::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()?;
        let tls = match tls {
            Some(()) => Some(make_certs(dir.path())?),
            None => None,
        };
        let htpasswd = match auth {
            Some((user, password)) => Some(make_htpasswd(dir.path(), user, password)?),
            None => None,
        };
        // The free port can be taken between our probe and the registry's bind; retry.
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                config_yaml(dir.path(), &addr, tls.as_ref(), htpasswd.as_deref()),
            )?;
            let log = std::fs::File::create(dir.path().join("registry.log"))?;
            let mut child = Command::new(DOCKER_REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("spawn {DOCKER_REGISTRY}"))?;
            match wait_ready(&mut child, &addr, tls.is_none()) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        addr,
                        ca: tls.map(|t| t.ca),
                        dir,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!(
                        "{e:#}; log:\n{}",
                        std::fs::read_to_string(dir.path().join("registry.log"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        bail!("docker-registry did not start: {last}")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_yaml(dir: &Path, addr: &str, tls: Option<&Tls>, htpasswd: Option<&Path>) -> String {
    let mut y = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: berth-test-secret
",
        storage = dir.join("storage").display()
    );
    if let Some(t) = tls {
        y += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            t.cert.display(),
            t.key.display()
        );
    }
    if let Some(h) = htpasswd {
        y += &format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            h.display()
        );
    }
    y
}

/// Until the port accepts and (for plain HTTP) /v2/ answers with a status line.
fn wait_ready(child: &mut Child, addr: &str, plain: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("docker-registry exited with {status}");
        }
        if let Ok(mut s) = TcpStream::connect(addr) {
            if !plain {
                return Ok(());
            }
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{addr} did not answer within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// A CA, and a server certificate it signs for 127.0.0.1 and localhost (P-256 keys: quick
/// to make).
fn make_certs(dir: &Path) -> anyhow::Result<Tls> {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
        ])
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")))?;
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("server.ext"))
        .arg("-out")
        .arg(p("server.crt")))?;
    Ok(Tls {
        cert: p("server.crt"),
        key: p("server.key"),
        ca: p("ca.crt"),
    })
}

fn make_htpasswd(dir: &Path, user: &str, password: &str) -> anyhow::Result<PathBuf> {
    let line = run(Command::new("htpasswd").args(["-Bbn", user, password]))?;
    let path = dir.join("htpasswd");
    std::fs::write(&path, line)?;
    Ok(path)
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}
