//! The bearer token flow against a fake registry and a fake token server: challenge
//! parsing, scopes per operation, token reuse across requests and clones, expiry, a fresh
//! token after a 401, credentials sent to the token server only.

mod common;

use base64::Engine as _;
use berth_distribution::{media_types, Client, Credentials, Digest, Error, Reference};
use common::{quick_config, FakeServer, Request, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("utf8");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf8")
}

fn query(req: &Request, key: &str) -> Vec<String> {
    let q = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

/// Issued tokens and the scopes each grants.
type Grants = Arc<Mutex<HashMap<String, Vec<String>>>>;

struct Setup {
    tokens: FakeServer,
    registry: FakeServer,
    grants: Grants,
}

/// A token server that issues `tok-N` for whatever scope is asked (checking basic auth
/// when sent: the only password is "pw"), answering with `token` or `access_token`, and
/// a registry that wants a token granting the repository and action a request needs.
fn setup(access_token: bool, expires_in: u64) -> Setup {
    let grants: Grants = Arc::default();
    let g = grants.clone();
    let tokens = FakeServer::start(move |req| {
        if let Some(auth) = req.header("authorization") {
            let b64 = auth.trim_start_matches("Basic ");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            if raw != b"user:pw" {
                return Response::new(401).body(r#"{"details":"incorrect username or password"}"#);
            }
        }
        let mut g = g.lock().expect("lock");
        let name = format!("tok-{}", g.len() + 1);
        g.insert(name.clone(), query(req, "scope"));
        let key = if access_token {
            "access_token"
        } else {
            "token"
        };
        Response::new(200)
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"{key}":"{name}","expires_in":{expires_in}}}"#))
    });
    let realm = format!("http://{}/token", tokens.addr);
    let g = grants.clone();
    let registry = FakeServer::start(move |req| {
        let path = req.path.split('?').next().unwrap_or("");
        let repo = path
            .trim_start_matches("/v2/")
            .split("/manifests/")
            .next()
            .unwrap_or("")
            .split("/blobs/")
            .next()
            .unwrap_or("")
            .to_string();
        let action = if req.method == "GET" || req.method == "HEAD" {
            "pull"
        } else {
            "push"
        };
        let need_mount_from = query(req, "from");
        let granted = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| g.lock().expect("lock").get(t).cloned())
            .unwrap_or_default();
        let allows = |repo: &str, action: &str| {
            granted.iter().any(|s| {
                s.strip_prefix(&format!("repository:{repo}:"))
                    .is_some_and(|acts| acts.split(',').any(|a| a == action))
            })
        };
        let ok = allows(&repo, action) && need_mount_from.iter().all(|f| allows(f, "pull"));
        if !ok {
            return Response::json_error(401, "UNAUTHORIZED", "authentication required").header(
                "WWW-Authenticate",
                format!(
                    r#"Bearer realm="{realm}",service="fake-registry",scope="repository:{repo}:{action}""#
                ),
            );
        }
        match (req.method.as_str(), path.contains("/manifests/")) {
            ("GET" | "HEAD", true) => Response::new(200)
                .header("Content-Type", media_types::OCI_MANIFEST)
                .header(
                    "Docker-Content-Digest",
                    Digest::sha256_of(MANIFEST).to_string(),
                )
                .body(MANIFEST),
            ("PUT", true) => Response::new(201),
            ("HEAD", false) => Response::new(404),
            ("POST", false) => Response::new(201),
            _ => Response::new(400),
        }
    });
    Setup {
        tokens,
        registry,
        grants,
    }
}

fn token_scopes(s: &Setup) -> Vec<Vec<String>> {
    s.tokens
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(query(r, "service"), ["fake-registry"]);
            query(r, "scope")
        })
        .collect()
}

fn unauthorized_answers(s: &Setup) -> usize {
    // A request without a token or with one that lacks its scope got a 401.
    let grants = s.grants.lock().expect("lock").clone();
    s.registry
        .requests()
        .iter()
        .filter(|r| {
            r.header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_none_or(|t| !grants.contains_key(t))
        })
        .count()
}

#[tokio::test]
async fn anonymous_tokens_are_scoped_and_reused() {
    let s = setup(false, 300);
    let c = Client::new(quick_config(), Credentials::none()).expect("client");
    let app: Reference = format!("{}/app:1", s.registry.addr).parse().expect("ref");

    // First request: 401, token for pull, retry.
    c.get_manifest(&app).await.expect("pull");
    assert_eq!(token_scopes(&s), [["repository:app:pull"]]);
    // Same scope, from this client and a clone: no new token, no new 401.
    c.get_manifest(&app).await.expect("pull again");
    c.clone()
        .head_manifest(&app)
        .await
        .expect("head")
        .expect("there");
    c.blob_exists(&app, &Digest::sha256_of(b"x"))
        .await
        .expect("exists");
    assert_eq!(s.tokens.requests().len(), 1);
    assert_eq!(unauthorized_answers(&s), 1);
    assert!(s
        .tokens
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));

    // Pushing needs pull,push: the known challenge gets that token up front.
    c.put_manifest(
        &app.with_tag("2").expect("tag"),
        media_types::OCI_MANIFEST,
        MANIFEST,
    )
    .await
    .expect("push");
    assert_eq!(token_scopes(&s)[1], ["repository:app:pull,push"]);
    assert_eq!(s.registry.count(|r| r.method == "PUT"), 1);

    // A mount asks for both repositories in one token.
    let other: Reference = format!("{}/team/other:1", s.registry.addr)
        .parse()
        .expect("ref");
    assert!(c
        .mount_blob(&other, "app", &Digest::sha256_of(b"layer"))
        .await
        .expect("mount"));
    assert_eq!(
        token_scopes(&s)[2],
        ["repository:team/other:pull,push", "repository:app:pull"]
    );

    // The registry stops honouring the tokens: one 401, one fresh token, success.
    s.grants.lock().expect("lock").clear();
    c.get_manifest(&app).await.expect("pull with a fresh token");
    assert_eq!(s.tokens.requests().len(), 4);
    assert_eq!(token_scopes(&s)[3], ["repository:app:pull"]);
}

#[tokio::test]
async fn credentials_go_to_the_token_server_and_expiry_is_honoured() {
    let s = setup(true, 1);
    let c = Client::new(
        quick_config(),
        Credentials::none().with_login(&s.registry.addr, "user", "pw"),
    )
    .expect("client");
    let app: Reference = format!("{}/app:1", s.registry.addr).parse().expect("ref");
    c.get_manifest(&app).await.expect("pull with access_token");
    let t = s.tokens.requests();
    assert!(t[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic ")));
    // The registry never sees the password.
    assert!(s.registry.requests().iter().all(|r| r
        .header("authorization")
        .is_none_or(|a| a.starts_with("Bearer "))));
    // expires_in: 1 → after a second the next request gets a new token first.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before_401s = s.registry.count(|r| r.header("authorization").is_none());
    c.get_manifest(&app).await.expect("pull after expiry");
    assert_eq!(s.tokens.requests().len(), 2);
    assert_eq!(
        s.registry.count(|r| r.header("authorization").is_none()),
        before_401s
    );

    // A wrong password: the token server's 401 is the user's Unauthorized.
    let bad = Client::new(
        quick_config(),
        Credentials::none().with_login(&s.registry.addr, "user", "nope"),
    )
    .expect("client");
    let e = bad.get_manifest(&app).await.expect_err("wrong password");
    assert!(
        matches!(
            e,
            Error::Unauthorized {
                had_credentials: true,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch() {
    let s = setup(false, 300);
    let c = Client::new(quick_config(), Credentials::none()).expect("client");
    let app: Reference = format!("{}/app:1", s.registry.addr).parse().expect("ref");
    let checks = (0..8).map(|i| {
        let (c, app) = (c.clone(), app.clone());
        tokio::spawn(async move { c.blob_exists(&app, &Digest::sha256_of(&[i])).await })
    });
    for h in futures_util::future::join_all(checks).await {
        assert_eq!(h.expect("join").expect("exists"), None);
    }
    assert_eq!(s.tokens.requests().len(), 1);
}
