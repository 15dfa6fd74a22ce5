//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens from the
//! registry's token server (distribution's token spec: `GET realm?service=S&scope=…`,
//! answered with `token` or `access_token` and `expires_in`), and basic auth.
//!
//! Tokens are cached per (registry host, scope set) and shared by every clone of a
//! [`Client`](crate::Client); the challenge a host sent is remembered too, so a request
//! for a new scope fetches its token up front instead of after a 401.

use crate::client::{authority, read_limited, Client};
use crate::config::Endpoint;
use crate::credentials::Login;
use crate::error::{chain, Error, Reply, Target};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Response, StatusCode, Url};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Result<Challenge, String> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest)?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Ok(Challenge::Basic),
        "bearer" => {
            let realm = params
                .get("realm")
                .cloned()
                .ok_or("a Bearer challenge without a realm")?;
            if !(realm.starts_with("https://") || realm.starts_with("http://")) {
                return Err(format!("realm {realm:?} is not an http(s) URL"));
            }
            Ok(Challenge::Bearer {
                realm,
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        }
        other => Err(format!("unsupported scheme {other:?}")),
    }
}

/// `k="v", k2=v2` with quoted strings that may hold commas and `\"` escapes (RFC 7235).
fn parse_params(s: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("parameter {key:?} has no value"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err("unterminated quoted string".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.to_ascii_lowercase(), value);
    }
}

/// What a request must be allowed to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Scope(pub Vec<String>);

impl Scope {
    pub fn none() -> Scope {
        Scope(Vec::new())
    }
    pub fn pull(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull")])
    }
    pub fn push(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull,push")])
    }
    pub fn and(mut self, other: Scope) -> Scope {
        self.0.extend(other.0);
        self
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Token> {
        let value = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        // The token spec's default lifetime is 60 s; renew 10 s early (but keep a short
        // token usable for at least a moment).
        let lifetime = self.expires_in.unwrap_or(60).max(1);
        let margin = if lifetime > 20 { 10 } else { 0 };
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime - margin),
        })
    }
}

/// The shared cache: challenges by host, tokens by (host, scope).
#[derive(Debug, Default, Clone)]
pub(crate) struct AuthCache {
    inner: Arc<Mutex<CacheInner>>,
}

#[derive(Debug, Default)]
struct CacheInner {
    challenges: HashMap<String, Challenge>,
    tokens: HashMap<(String, Scope), Token>,
    fetching: HashMap<(String, Scope), Arc<tokio::sync::Mutex<()>>>,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock cannot leave the maps inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn challenge(&self, host: &str) -> Option<Challenge> {
        self.lock().challenges.get(host).cloned()
    }

    pub fn set_challenge(&self, host: &str, c: Challenge) {
        self.lock().challenges.insert(host.into(), c);
    }

    pub fn token(&self, host: &str, scope: &Scope) -> Option<String> {
        let mut g = self.lock();
        let key = (host.to_string(), scope.clone());
        match g.tokens.get(&key) {
            Some(t) if t.expires > Instant::now() => Some(t.value.clone()),
            Some(_) => {
                g.tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn set_token(&self, host: &str, scope: &Scope, t: Token) {
        self.lock().tokens.insert((host.into(), scope.clone()), t);
    }

    /// Held while fetching a token for (host, scope).
    pub fn fetch_lock(&self, host: &str, scope: &Scope) -> Arc<tokio::sync::Mutex<()>> {
        self.lock()
            .fetching
            .entry((host.to_string(), scope.clone()))
            .or_default()
            .clone()
    }
}

impl Client {
    /// The Authorization header to send before any 401: a cached token, or a new one when
    /// the host's challenge is known, or basic auth for a basic host.
    pub(crate) async fn preemptive_auth(
        &self,
        ep: &Endpoint,
        scope: &Scope,
        login: Option<&Login>,
        target: &Target,
    ) -> Result<Option<HeaderValue>, Error> {
        match self.inner.auth.challenge(&ep.host) {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(login.map(basic_header)),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let t = self
                    .token(ep, &realm, service.as_deref(), scope, login, target, None)
                    .await?;
                Ok(Some(bearer_header(&t)))
            }
        }
    }

    /// A token for `scope`: the cached one unless it is the one just `rejected`, else a
    /// new one. One fetch per (host, scope) at a time: concurrent requests wait for it
    /// rather than each asking the token server.
    #[allow(clippy::too_many_arguments)]
    async fn token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
        login: Option<&Login>,
        target: &Target,
        rejected: Option<&str>,
    ) -> Result<String, Error> {
        let lock = self.inner.auth.fetch_lock(&ep.host, scope);
        let _guard = lock.lock().await;
        if let Some(t) = self.inner.auth.token(&ep.host, scope) {
            if Some(t.as_str()) != rejected {
                return Ok(t);
            }
        }
        self.fetch_token(ep, realm, service, scope, login, target)
            .await
    }

    /// GET realm?service=…&scope=… (with basic auth when there is a login).
    async fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
        login: Option<&Login>,
        target: &Target,
    ) -> Result<String, Error> {
        let mut url = Url::parse(realm).map_err(|e| Error::BadChallenge {
            target: target.clone(),
            header: realm.into(),
            reason: e.to_string(),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in &scope.0 {
                q.append_pair("scope", s);
            }
        }
        let authority = authority(&url);
        let t = self.transport(&authority, ep.insecure)?;
        let token_err = |status: String, detail: String| Error::Token {
            target: target.clone(),
            realm: realm.into(),
            status,
            detail,
        };
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let mut rb = t.http.get(url.clone());
            if let Some(l) = login {
                rb = rb.header(AUTHORIZATION, basic_header(l));
            }
            let result = tokio::time::timeout(self.inner.config.stall_timeout, rb.send()).await;
            let retryable = match result {
                Ok(Ok(resp))
                    if !(resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS) =>
                {
                    break resp
                }
                Ok(Ok(resp)) => resp.status().to_string(),
                Ok(Err(e)) => chain(&e),
                Err(_) => format!("no response in {:?}", self.inner.config.stall_timeout),
            };
            if attempt > self.inner.config.retries {
                return Err(token_err(format!("{attempt} attempt(s) failed"), retryable));
            }
            tokio::time::sleep(self.backoff(attempt)).await;
        };
        let status = resp.status();
        let body = read_limited(resp, 1 << 20).await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                target: target.clone(),
                reply: Reply::parse(status.as_u16(), &body),
                had_credentials: login.is_some(),
            });
        }
        if !status.is_success() {
            return Err(token_err(
                status.to_string(),
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            ));
        }
        let token = serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| {
                token_err(
                    status.to_string(),
                    "the answer has no \"token\" or \"access_token\"".into(),
                )
            })?;
        tracing::debug!(host = %ep.host, scope = ?scope.0, "new registry token");
        let value = token.value.clone();
        self.inner.auth.set_token(&ep.host, scope, token);
        Ok(value)
    }

    /// After a 401: remember the challenge and get what it asks for.
    pub(crate) async fn answer_challenge(
        &self,
        ep: &Endpoint,
        scope: &Scope,
        login: Option<&Login>,
        target: &Target,
        resp: Response,
        sent: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>, Error> {
        let header = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let Some(header) = header else {
            let body = read_limited(resp, 1 << 16).await.unwrap_or_default();
            return Err(Error::Unauthorized {
                target: target.clone(),
                reply: Reply::parse(401, &body),
                had_credentials: login.is_some(),
            });
        };
        let challenge = parse_challenge(&header).map_err(|reason| Error::BadChallenge {
            target: target.clone(),
            header: header.clone(),
            reason,
        })?;
        self.inner.auth.set_challenge(&ep.host, challenge.clone());
        match challenge {
            Challenge::Basic => match login {
                Some(l) => Ok(Some(basic_header(l))),
                None => {
                    let body = read_limited(resp, 1 << 16).await.unwrap_or_default();
                    Err(Error::Unauthorized {
                        target: target.clone(),
                        reply: Reply::parse(401, &body),
                        had_credentials: false,
                    })
                }
            },
            Challenge::Bearer { realm, service, .. } => {
                let rejected = sent
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.strip_prefix("Bearer "));
                let t = self
                    .token(
                        ep,
                        &realm,
                        service.as_deref(),
                        scope,
                        login,
                        target,
                        rejected,
                    )
                    .await?;
                Ok(Some(bearer_header(&t)))
            }
        }
    }
}

pub(crate) fn basic_header(l: &Login) -> HeaderValue {
    use base64::Engine as _;
    let v =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", l.username, l.password));
    let mut h = HeaderValue::from_str(&format!("Basic {v}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}

fn bearer_header(token: &str) -> HeaderValue {
    let mut h = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .expect("parses");
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }
        );
        let c = parse_challenge(r#"bearer realm="http://127.0.0.1:1/t", scope="a:b:pull,push", error="insufficient_scope""#)
            .expect("parses");
        assert!(
            matches!(c, Challenge::Bearer { scope: Some(s), service: None, .. } if s == "a:b:pull,push")
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Ok(Challenge::Basic)
        );
        assert!(parse_challenge("Bearer service=x").is_err());
        assert!(parse_challenge(r#"Bearer realm="file:///etc/passwd""#).is_err());
        assert!(parse_challenge(r#"Bearer realm="https://x"#).is_err());
        assert!(parse_challenge("Negotiate").is_err());
    }

    #[test]
    fn tokens_expire() {
        let t = TokenResponse {
            token: None,
            access_token: Some("a".into()),
            expires_in: Some(300),
        }
        .into_token()
        .expect("token");
        assert_eq!(t.value, "a");
        let cache = AuthCache::default();
        let s = Scope::pull("x");
        cache.set_token("h", &s, t);
        assert_eq!(cache.token("h", &s).as_deref(), Some("a"));
        assert_eq!(cache.token("h", &Scope::push("x")), None);
        cache.set_token(
            "h",
            &s,
            Token {
                value: "old".into(),
                expires: Instant::now(),
            },
        );
        assert_eq!(cache.token("h", &s), None);
        assert!(TokenResponse {
            token: Some(String::new()),
            access_token: None,
            expires_in: None
        }
        .into_token()
        .is_none());
    }
}
