//! The registry client's transport: one place that sends a request to a registry with
//! authentication (bearer token or basic, one retry after a 401 with a fresh token),
//! retries with backoff (connect errors, 5xx, 429 with Retry-After, no response within the
//! stall timeout) and redirects (the Authorization header goes only to the registry's own
//! scheme, host and port). The operations (manifests, blobs, uploads) are in their own
//! modules and build on [`Client::send`].

use crate::auth::{AuthCache, Scope};
use crate::config::{ClientConfig, Endpoint};
use crate::credentials::{Credentials, Login};
use crate::error::{chain, Error, ErrorKind, Reply, Target};
use crate::reference::Reference;
use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode, Url};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A registry client. Cheap to clone: clones share the HTTP connection pools and the token
/// cache.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: ClientConfig,
    pub credentials: Credentials,
    pub auth: AuthCache,
    /// HTTP clients by (host, insecure): each host may trust its own CAs.
    http: Mutex<HashMap<(String, bool), Transport>>,
}

#[derive(Clone)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub plain: bool,
}

/// A request body that can be made again for a retry (a file is reopened).
pub(crate) type BodyFn<'a> = &'a (dyn Fn() -> Result<reqwest::Body, Error> + Send + Sync);

/// One request to a registry endpoint.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub endpoint: &'a Endpoint,
    /// A path below the endpoint (`/v2/...`) or an absolute URL the registry gave.
    pub path: &'a str,
    pub headers: HeaderMap,
    pub body: Option<BodyFn<'a>>,
    pub scope: Scope,
    pub target: &'a Target,
    /// Retry on connect errors, 5xx and 429. Off for requests that must not be repeated.
    pub retry: bool,
    pub patience: Patience<'a>,
}

/// How long a request may go without progress.
pub(crate) enum Patience<'a> {
    /// The response head must come within the stall timeout.
    Head,
    /// An upload: the body must keep moving, and then the head come, each within the
    /// stall timeout of the last chunk sent. (reqwest's own read timeout runs from the
    /// start of the request, which would cut off any upload longer than it.)
    Upload(&'a Progress),
}

/// When an upload body last handed a chunk to the connection.
#[derive(Clone)]
pub(crate) struct Progress(Arc<Mutex<std::time::Instant>>);

impl Progress {
    pub fn new() -> Progress {
        Progress(Arc::new(Mutex::new(std::time::Instant::now())))
    }
    pub fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
    }
    fn idle(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// Awaits an upload's response while its body keeps moving.
async fn watch_upload<T>(
    progress: &Progress,
    stall: Duration,
    fut: impl std::future::Future<Output = reqwest::Result<T>>,
) -> Result<T, SendError> {
    let mut fut = std::pin::pin!(fut);
    let tick = stall.min(Duration::from_millis(500));
    loop {
        match tokio::time::timeout(tick, &mut fut).await {
            Ok(r) => return r.map_err(SendError::Http),
            Err(_) if progress.idle() > stall => return Err(SendError::Stall),
            Err(_) => {}
        }
    }
}

const MAX_REDIRECTS: u32 = 10;
/// Retry-After beyond this is not waited for: the attempt fails instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Client {
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<Client, Error> {
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                credentials,
                auth: AuthCache::default(),
                http: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// GET /v2/ on `registry` with the stored credentials: Ok if they are accepted (or
    /// none are needed), [`Error::Unauthorized`] if not.
    pub async fn check_login(&self, registry: &str) -> Result<(), Error> {
        let bad = || Error::BadRegistryName {
            target: Target::new(
                registry,
                "",
                "API version check".into(),
                "determining support",
            ),
            registry: registry.into(),
        };
        // Parse as a reference to share its host rules and Docker Hub's naming; a name
        // that does not parse back as the registry (no dot, port or localhost) is no host.
        let probe: Reference = format!("{registry}/probe").parse().map_err(|_| bad())?;
        if probe.registry() != registry
            && !(probe.registry() == crate::reference::DOCKER_HUB
                && matches!(registry, "index.docker.io" | "registry-1.docker.io"))
        {
            return Err(bad());
        }
        let endpoint = Endpoint {
            host: probe.api_host().into(),
            repository: String::new(),
            insecure: false,
            mirror: false,
            auth_host: probe.registry().into(),
        };
        let endpoint = self
            .inner
            .config
            .endpoints(probe.registry(), probe.api_host(), "probe", false)?
            .into_iter()
            .next()
            .map(|e| Endpoint {
                repository: String::new(),
                ..e
            })
            .unwrap_or(endpoint);
        let target = endpoint_target(&endpoint, "API version check".into(), "determining support");
        let resp = self
            .send(Req {
                method: Method::GET,
                endpoint: &endpoint,
                path: "/v2/",
                headers: HeaderMap::new(),
                body: None,
                scope: Scope::none(),
                target: &target,
                retry: true,
                patience: Patience::Head,
            })
            .await?;
        expect_success(resp, &target).await.map(drop)
    }

    /// Endpoints for a pull (mirrors, then the origin) or a push (the origin).
    pub(crate) fn endpoints(&self, r: &Reference, pull: bool) -> Result<Vec<Endpoint>, Error> {
        self.inner
            .config
            .endpoints(r.registry(), r.api_host(), r.repository(), pull)
    }

    /// Runs `op` against each pull endpoint in order until one succeeds; mirror failures
    /// are logged and the next endpoint tried, the origin's failure is returned.
    pub(crate) async fn on_pull_endpoints<T, F, Fut>(
        &self,
        r: &Reference,
        what: &str,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Endpoint) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let endpoints = self.endpoints(r, true)?;
        let last = endpoints.len().saturating_sub(1);
        for (i, ep) in endpoints.into_iter().enumerate() {
            let (mirror, host) = (ep.mirror, ep.host.clone());
            match op(ep).await {
                Ok(v) => {
                    if mirror {
                        tracing::info!(mirror = %host, reference = %r, what, "served by mirror");
                    }
                    return Ok(v);
                }
                Err(e) if i < last => {
                    tracing::warn!(endpoint = %host, reference = %r, what, error = %e, "trying the next endpoint");
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Blocked {
            registry: r.name(),
            source_file: "the configuration (no endpoints)".into(),
        })
    }

    pub(crate) fn transport(&self, host: &str, insecure: bool) -> Result<Transport, Error> {
        let mut map = self.inner.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = map.get(&(host.to_string(), insecure)) {
            return Ok(t.clone());
        }
        let config = &self.inner.config;
        let cas = config.ca_files(host);
        let plain = config.plain_http(host, insecure, !cas.is_empty());
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(config.user_agent.clone());
        for path in &cas {
            let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                Error::Certificate {
                    path: path.clone(),
                    source,
                }
            })?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        let http = b.build().map_err(|source| Error::HttpClient {
            registry: host.into(),
            source,
        })?;
        let t = Transport { http, plain };
        map.insert((host.to_string(), insecure), t.clone());
        Ok(t)
    }

    pub(crate) fn base_url(&self, ep: &Endpoint) -> Result<Url, Error> {
        let t = self.transport(&ep.host, ep.insecure)?;
        let scheme = if t.plain { "http" } else { "https" };
        Url::parse(&format!("{scheme}://{}/", ep.host)).map_err(|e| Error::Protocol {
            target: endpoint_target(ep, "base URL".into(), "API"),
            reason: e.to_string(),
        })
    }

    /// `path` (absolute, or relative to the endpoint as registries' Location headers
    /// are) as a URL.
    pub(crate) fn resolve(&self, ep: &Endpoint, path: &str, target: &Target) -> Result<Url, Error> {
        self.base_url(ep)?.join(path).map_err(|e| Error::Protocol {
            target: target.clone(),
            reason: format!("bad URL {path:?}: {e}"),
        })
    }

    fn login(&self, ep: &Endpoint) -> Result<Option<Login>, Error> {
        self.inner.credentials.lookup(&ep.auth_host, &ep.repository)
    }

    /// Exponential backoff with jitter: base·2^(attempt-1), capped, times 0.5–1.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let c = &self.inner.config;
        let exp = c
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        exp.min(c.backoff_max).mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Sends `req`, handling authentication, retries and redirects. Returns the response
    /// whatever its status, except that a 401 that survives a fresh token and 5xx/429 or
    /// connection failures that survive the retries become errors.
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<Response, Error> {
        let config = &self.inner.config;
        let ep = req.endpoint;
        let login = self.login(ep)?;
        let base = self.base_url(ep)?;
        let mut url = self.resolve(ep, req.path, req.target)?;
        let mut auth = self
            .preemptive_auth(ep, &req.scope, login.as_ref(), req.target)
            .await?;
        let mut auth_retried = false;
        let mut redirects = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let same_origin = same_origin(&url, &base);
            let transport = if same_origin {
                self.transport(&ep.host, ep.insecure)?
            } else {
                self.transport(&authority(&url), ep.insecure)?
            };
            let mut rb = transport
                .http
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            if let (true, Some(a)) = (same_origin, &auth) {
                rb = rb.header(AUTHORIZATION, a.clone());
            }
            if let Some(body) = req.body {
                rb = rb.body(body()?);
            }
            let sent = match req.patience {
                Patience::Head => {
                    match tokio::time::timeout(config.stall_timeout, rb.send()).await {
                        Ok(r) => r.map_err(SendError::Http),
                        Err(_) => Err(SendError::Stall),
                    }
                }
                Patience::Upload(p) => {
                    p.touch();
                    watch_upload(p, config.stall_timeout, rb.send()).await
                }
            };
            let failure = match sent {
                Err(e) => {
                    let detail = if matches!(e, SendError::Stall) {
                        format!("no response within {:?}", config.stall_timeout)
                    } else {
                        chain(e.inner())
                    };
                    // TLS and DNS failures do not get better by retrying.
                    if !req.retry || is_permanent(e.inner()) || attempt > config.retries {
                        return Err(Error::Connect {
                            target: req.target.clone(),
                            url: url.to_string(),
                            attempts: attempt,
                            detail,
                        });
                    }
                    tracing::debug!(%url, attempt, %detail, "request failed; retrying");
                    None
                }
                Ok(resp) => Some(resp),
            };
            let Some(resp) = failure else {
                tokio::time::sleep(self.backoff(attempt)).await;
                continue;
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && same_origin {
                if auth_retried {
                    return Err(Error::Unauthorized {
                        target: req.target.clone(),
                        reply: Reply::parse(
                            401,
                            &read_limited(resp, 1 << 16).await.unwrap_or_default(),
                        ),
                        had_credentials: login.is_some(),
                    });
                }
                auth_retried = true;
                attempt -= 1;
                auth = self
                    .answer_challenge(
                        ep,
                        &req.scope,
                        login.as_ref(),
                        req.target,
                        resp,
                        auth.as_ref(),
                    )
                    .await?;
                continue;
            }
            if req.retry
                && (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt <= config.retries
            {
                let wait = retry_after(resp.headers())
                    .filter(|d| *d <= MAX_RETRY_AFTER)
                    .unwrap_or_else(|| self.backoff(attempt));
                tracing::debug!(%url, %status, attempt, ?wait, "registry busy or failing; retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                let body = read_limited(resp, 1 << 16).await.unwrap_or_default();
                return Err(Error::Status {
                    target: req.target.clone(),
                    reply: Reply::parse(status.as_u16(), &body),
                    attempts: attempt,
                });
            }
            let follow = status.is_redirection()
                && (req.method == Method::GET || req.method == Method::HEAD)
                && status != StatusCode::NOT_MODIFIED;
            if follow {
                redirects += 1;
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| Error::Protocol {
                        target: req.target.clone(),
                        reason: format!("{status} without a Location"),
                    })?;
                if redirects > MAX_REDIRECTS {
                    return Err(Error::Protocol {
                        target: req.target.clone(),
                        reason: format!("more than {MAX_REDIRECTS} redirects"),
                    });
                }
                url = url.join(loc).map_err(|e| Error::Protocol {
                    target: req.target.clone(),
                    reason: format!("redirect to a bad URL {loc:?}: {e}"),
                })?;
                if url.scheme() != "https" && url.scheme() != "http" {
                    return Err(Error::Protocol {
                        target: req.target.clone(),
                        reason: format!("redirect to {url}"),
                    });
                }
                tracing::debug!(to = %url, "following redirect");
                attempt -= 1;
                continue;
            }
            return Ok(resp);
        }
    }
}

/// Why no response came.
enum SendError {
    /// Nothing within the stall timeout.
    Stall,
    Http(reqwest::Error),
}

impl SendError {
    fn inner(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            SendError::Stall => &StallError,
            SendError::Http(e) => e,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no response")]
struct StallError;

/// Errors that retrying will not fix: certificate problems and unknown hosts.
fn is_permanent(e: &(dyn std::error::Error + 'static)) -> bool {
    let text = chain(e).to_ascii_lowercase();
    text.contains("certificate")
        || text.contains("invalid peer")
        || text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("builder error")
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

pub(crate) fn authority(u: &Url) -> String {
    let host = u.host_str().unwrap_or_default();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Retry-After as delta-seconds or an HTTP date.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

pub(crate) fn endpoint_target(ep: &Endpoint, object: String, spec: &'static str) -> Target {
    Target::new(&ep.host, &ep.repository, object, spec)
}

/// How long an error or token body may stall.
const SMALL_BODY_STALL: Duration = Duration::from_secs(10);

/// Reads at most `limit` bytes of a small body (an error, a token).
pub(crate) async fn read_limited(resp: Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    read_limited_within(resp, limit, SMALL_BODY_STALL).await
}

/// Reads at most `limit` bytes of a body, each chunk within `stall`.
pub(crate) async fn read_limited_within(
    mut resp: Response,
    limit: usize,
    stall: Duration,
) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(stall, resp.chunk()).await {
            Err(_) => return Err(ReadError::Stall),
            Ok(r) => r.map_err(ReadError::Http)?,
        };
        let Some(chunk) = chunk else { break };
        if out.len() + chunk.len() > limit {
            return Err(ReadError::TooLong);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Http(reqwest::Error),
    Stall,
    TooLong,
}

impl ReadError {
    pub fn detail(&self) -> String {
        match self {
            ReadError::Http(e) => chain(e),
            ReadError::Stall => "the body stalled".into(),
            ReadError::TooLong => "the body is too long".into(),
        }
    }
}

/// A 2xx response, or the error its status and body describe.
pub(crate) async fn expect_success(resp: Response, target: &Target) -> Result<Response, Error> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(status_error(resp, target).await)
}

pub(crate) async fn status_error(resp: Response, target: &Target) -> Error {
    let status = resp.status().as_u16();
    let body = read_limited(resp, 1 << 16).await.unwrap_or_default();
    let reply = Reply::parse(status, &body);
    let target = target.clone();
    const NOT_FOUND: &[&str] = &["NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"];
    if status == 404 || NOT_FOUND.iter().any(|c| reply.has_code(c)) {
        Error::NotFound { target, reply }
    } else if status == 403 || reply.has_code("DENIED") {
        Error::Denied { target, reply }
    } else if status == 401 || reply.has_code("UNAUTHORIZED") {
        Error::Unauthorized {
            target,
            reply,
            had_credentials: true,
        }
    } else {
        Error::Status {
            target,
            reply,
            attempts: 1,
        }
    }
}

/// Whether to try the next endpoint makes sense after this error.
pub(crate) fn is_not_found(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn origins_and_retry_after() {
        let a = Url::parse("http://127.0.0.1:5000/v2/x").expect("url");
        let b = Url::parse("http://127.0.0.1:5000/").expect("url");
        let c = Url::parse("http://127.0.0.1:5001/v2/x").expect("url");
        let d = Url::parse("https://127.0.0.1:5000/v2/x").expect("url");
        assert!(same_origin(&a, &b));
        assert!(!same_origin(&c, &b));
        assert!(!same_origin(&d, &b));
        assert_eq!(authority(&c), "127.0.0.1:5001");
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn uploads_wait_while_the_body_moves() {
        let stall = Duration::from_millis(300);
        let p = Progress::new();
        // A request that takes three stall timeouts but keeps sending: fine.
        let p2 = p.clone();
        let slow = async move {
            for _ in 0..9 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                p2.touch();
            }
            Ok(7)
        };
        assert!(matches!(watch_upload(&p, stall, slow).await, Ok(7)));
        // One that goes quiet: a stall.
        let quiet = std::future::pending::<reqwest::Result<u32>>();
        let start = std::time::Instant::now();
        p.touch();
        assert!(matches!(
            watch_upload(&p, stall, quiet).await,
            Err(SendError::Stall)
        ));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let client = Client::new(ClientConfig::default(), Credentials::none()).expect("client");
        let d1 = client.backoff(1);
        assert!(d1 >= Duration::from_millis(250) && d1 <= Duration::from_millis(500));
        let d10 = client.backoff(10);
        assert!(d10 <= Duration::from_secs(10) && d10 >= Duration::from_secs(5));
    }
}
