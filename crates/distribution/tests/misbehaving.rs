//! Registries that fail, stall, lie and redirect, played by a scripted fake server: the
//! client must retry, resume, refuse and keep its Authorization header at home.

mod common;

use berth_distribution::{
    media_types, Client, ClientConfig, Credentials, Digest, Error, ErrorKind, Mirror, Reference,
    RegistryConfig,
};
use common::{client, noise, quick_config, FakeServer, Response};
use futures_util::StreamExt as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn manifest_ok() -> Response {
    Response::new(200)
        .header("Content-Type", media_types::OCI_MANIFEST)
        .header(
            "Docker-Content-Digest",
            Digest::sha256_of(MANIFEST).to_string(),
        )
        .body(MANIFEST)
}

fn reference(server: &FakeServer, rest: &str) -> Reference {
    format!("{}/{rest}", server.addr)
        .parse()
        .expect("reference")
}

async fn collect(client: &Client, r: &Reference, d: &Digest, size: u64) -> Result<Vec<u8>, Error> {
    let mut s = client.get_blob(r, d, size, 0).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

#[tokio::test]
async fn retries_a_500_then_succeeds() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let server = FakeServer::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) < 2 {
            Response::new(500)
        } else {
            manifest_ok()
        }
    });
    let m = client()
        .get_manifest(&reference(&server, "app:1"))
        .await
        .expect("third attempt works");
    assert_eq!(m.bytes, MANIFEST);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn gives_up_after_the_retries_saying_how_often() {
    let server = FakeServer::start(|_| Response::json_error(503, "UNAVAILABLE", "down for a bit"));
    let e = client()
        .get_manifest(&reference(&server, "app:1"))
        .await
        .expect_err("always 503");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        e.to_string(),
        format!(
            "{}/app: manifest 1: UNAVAILABLE: down for a bit after 3 attempt(s) (distribution-spec: pulling manifests)",
            server.addr
        )
    );
    assert_eq!(server.requests().len(), 3);

    // Nobody listening: connect errors, retried, then named.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let r: Reference = format!("{addr}/app:1").parse().expect("ref");
    let e = client().get_manifest(&r).await.expect_err("closed port");
    assert!(matches!(e, Error::Connect { attempts: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("cannot reach http://"), "{e}");
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let server = FakeServer::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            Response::new(429).header("Retry-After", "1")
        } else {
            manifest_ok()
        }
    });
    let start = Instant::now();
    client()
        .get_manifest(&reference(&server, "app:1"))
        .await
        .expect("after waiting");
    // The configured backoff is 10 ms: only Retry-After explains a second's wait.
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_blob_resumes_with_range_and_hashes_right() {
    let data = Arc::new(noise(1 << 20, 7));
    let digest = Digest::sha256_of(&data);
    let d2 = data.clone();
    let server = FakeServer::start(move |req| {
        match req.header("range") {
            // First try: a third of the body, then silence past the stall timeout.
            None => Response::new(200)
                .body(d2.to_vec())
                .cut(350_000, Duration::from_secs(3)),
            Some(range) => {
                let start: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .expect("range start");
                Response::new(206)
                    .header(
                        "Content-Range",
                        format!("bytes {start}-{}/{}", d2.len() - 1, d2.len()),
                    )
                    .body(d2[start..].to_vec())
            }
        }
    });
    let r = reference(&server, "app");
    let got = collect(&client(), &r, &digest, data.len() as u64)
        .await
        .expect("download");
    assert_eq!(Digest::sha256_of(&got), digest);
    let ranges: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let start: usize = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .expect("n");
    assert!(start > 0 && start <= 350_000, "{start}");
}

#[tokio::test]
async fn a_server_ignoring_range_is_skipped_through() {
    let data = Arc::new(noise(600_000, 3));
    let digest = Digest::sha256_of(&data);
    let n = Arc::new(AtomicUsize::new(0));
    let (d2, n2) = (data.clone(), n.clone());
    let server = FakeServer::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            // The connection drops after 200 kB.
            Response::new(200)
                .body(d2.to_vec())
                .cut(200_000, Duration::ZERO)
        } else {
            // Range or not: the whole body again.
            Response::new(200).body(d2.to_vec())
        }
    });
    let r = reference(&server, "app");
    let got = collect(&client(), &r, &digest, data.len() as u64)
        .await
        .expect("download");
    assert_eq!(got.len(), data.len());
    assert_eq!(Digest::sha256_of(&got), digest);
    assert!(server.requests()[1].header("range").is_some());
}

#[tokio::test]
async fn a_blob_that_never_comes_fails_as_stalled() {
    let server = FakeServer::start(|_| {
        Response::new(200)
            .body(vec![1; 1000])
            .cut(0, Duration::from_secs(3))
    });
    let mut config = quick_config();
    config.retries = 1;
    let c = Client::new(config, Credentials::none()).expect("client");
    let d = Digest::sha256_of(&[1; 1000]);
    let e = collect(&c, &reference(&server, "app"), &d, 1000)
        .await
        .expect_err("stalls");
    assert!(
        matches!(
            e,
            Error::Stalled {
                received: 0,
                attempts: 2,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn more_than_the_descriptor_size_is_refused() {
    let server = FakeServer::start(|_| Response::new(200).body(vec![7; 5000]));
    let d = Digest::sha256_of(&[7; 4000]);
    let e = collect(&client(), &reference(&server, "app"), &d, 4000)
        .await
        .expect_err("too much");
    assert!(
        matches!(e, Error::BlobTooLarge { expected: 4000, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn digests_that_lie_are_caught() {
    let server = FakeServer::start(|req| {
        let other = Digest::sha256_of(b"something else").to_string();
        Response::new(200)
            .header("Content-Type", media_types::OCI_MANIFEST)
            .header(
                "Docker-Content-Digest",
                if req.path.contains("sha256:") {
                    Digest::sha256_of(MANIFEST).to_string()
                } else {
                    other
                },
            )
            .body(MANIFEST)
    });
    let e = client()
        .get_manifest(&reference(&server, "app:1"))
        .await
        .expect_err("header lies");
    assert!(
        matches!(
            e,
            Error::DigestMismatch {
                from_header: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("Docker-Content-Digest"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Integrity);
    // By digest, the bytes must hash to the digest asked for, whatever the header says.
    let want = Digest::sha256_of(b"the manifest I asked for");
    let r = reference(&server, "app").with_digest(want.clone());
    let e = client().get_manifest(&r).await.expect_err("wrong bytes");
    assert!(
        matches!(&e, Error::DigestMismatch { expected, from_header: false, .. } if *expected == want),
        "{e:?}"
    );
}

#[tokio::test]
async fn manifests_over_4_mib_and_schema_1_are_refused() {
    let server = FakeServer::start(|req| {
        if req.path.ends_with("/big") {
            let mut body = b"{\"schemaVersion\":2,\"x\":\"".to_vec();
            body.resize(4 * 1024 * 1024 + 10, b'a');
            Response::new(200)
                .header("Content-Type", media_types::OCI_MANIFEST)
                .body(body)
        } else {
            Response::new(200)
                .header("Content-Type", "application/json")
                .body(r#"{"schemaVersion":1,"name":"app","tag":"old","fsLayers":[]}"#)
        }
    });
    let e = client()
        .get_manifest(&reference(&server, "app:big"))
        .await
        .expect_err("too big");
    assert!(matches!(e, Error::ManifestTooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("4 MiB"), "{e}");
    let e = client()
        .get_manifest(&reference(&server, "app:old"))
        .await
        .expect_err("schema 1");
    assert!(e.to_string().contains("schema 1"), "{e}");
}

#[tokio::test]
async fn not_found_denied_and_unauthorized_differ() {
    let server = FakeServer::start(|req| {
        if req.path.contains("/secret/") {
            Response::json_error(403, "DENIED", "requested access to the resource is denied")
        } else if req.path.contains("/private/") {
            Response::json_error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", r#"Basic realm="fake""#)
        } else {
            Response::json_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        }
    });
    let kind = |e: Error| e.kind();
    let c = client();
    assert_eq!(
        kind(
            c.get_manifest(&reference(&server, "app:1"))
                .await
                .expect_err("404")
        ),
        ErrorKind::NotFound
    );
    let e = c
        .get_manifest(&reference(&server, "secret/app:1"))
        .await
        .expect_err("403");
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.to_string().contains("DENIED: requested access"), "{e}");
    assert_eq!(
        kind(
            c.get_manifest(&reference(&server, "private/app:1"))
                .await
                .expect_err("401")
        ),
        ErrorKind::Unauthorized
    );
}

#[tokio::test]
async fn redirected_blobs_do_not_carry_the_authorization_header() {
    let data = Arc::new(noise(50_000, 5));
    let digest = Digest::sha256_of(&data);
    let d2 = data.clone();
    let storage = FakeServer::start(move |_| Response::new(200).body(d2.to_vec()));
    let storage_addr = storage.addr.clone();
    let registry = FakeServer::start(move |req| match req.header("authorization") {
        None => Response::new(401).header("WWW-Authenticate", r#"Basic realm="fake""#),
        Some(_) => Response::new(307).header(
            "Location",
            format!("http://{storage_addr}/blobs/abc?signature=xyz"),
        ),
    });
    let c = Client::new(
        quick_config(),
        Credentials::none().with_login(&registry.addr, "u", "p"),
    )
    .expect("client");
    let got = collect(&c, &reference(&registry, "app"), &digest, data.len() as u64)
        .await
        .expect("download via redirect");
    assert_eq!(got, *data);
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(at_storage[0].path, "/blobs/abc?signature=xyz");
    assert!(at_storage[0].header("authorization").is_none());
    assert!(registry.requests().iter().any(|r| r
        .header("authorization")
        .is_some_and(|a| a.starts_with("Basic "))));
}

#[tokio::test]
async fn a_mirror_that_404s_falls_back_to_the_origin() {
    let mirror = FakeServer::start(|req| {
        if req.path.contains("/cached/") {
            manifest_ok()
        } else {
            Response::json_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        }
    });
    let origin = FakeServer::start(|_| manifest_ok());
    let config = ClientConfig {
        registries: vec![RegistryConfig {
            prefix: origin.addr.clone(),
            mirrors: vec![Mirror {
                location: format!("{}/hub", mirror.addr),
                insecure: false,
            }],
            ..Default::default()
        }],
        ..quick_config()
    };
    let c = Client::new(config, Credentials::none()).expect("client");
    c.get_manifest(&reference(&origin, "team/app:1"))
        .await
        .expect("origin serves");
    assert_eq!(mirror.requests()[0].path, "/v2/hub/team/app/manifests/1");
    assert_eq!(origin.requests().len(), 1);
    // When the mirror has it, the origin is not asked.
    c.get_manifest(&reference(&origin, "cached/app:1"))
        .await
        .expect("mirror serves");
    assert_eq!(origin.requests().len(), 1);
    // Pushes go to the origin only.
    c.put_manifest(
        &reference(&origin, "team/app:2"),
        media_types::OCI_MANIFEST,
        MANIFEST,
    )
    .await
    .expect("push");
    assert_eq!(mirror.count(|r| r.method == "PUT"), 0);
    assert_eq!(origin.count(|r| r.method == "PUT"), 1);
}

#[tokio::test]
async fn a_single_put_refused_as_too_large_falls_back_to_chunks() {
    let data = noise(40_000, 11);
    let digest = Digest::sha256_of(&data);
    let server = FakeServer::start(|req| {
        let path = req.path.split('?').next().unwrap_or("");
        match (req.method.as_str(), path) {
            ("HEAD", _) => Response::new(404),
            ("POST", _) => {
                Response::new(202).header("Location", "/v2/app/blobs/uploads/u1?state=0")
            }
            ("PUT", _) if !req.body.is_empty() => Response::new(413),
            ("PATCH", _) => {
                Response::new(202).header("Location", "/v2/app/blobs/uploads/u1?state=1")
            }
            ("PUT", _) => Response::new(201),
            _ => Response::new(400),
        }
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("blob");
    std::fs::write(&path, &data).expect("write");
    let pushed = client()
        .push_blob(
            &reference(&server, "app"),
            &digest,
            data.len() as u64,
            &path,
        )
        .await
        .expect("push");
    assert_eq!(pushed, berth_distribution::PushedBlob::Uploaded);
    let reqs = server.requests();
    // The refused PUT carried the whole file with a Content-Length.
    let put = reqs
        .iter()
        .find(|r| r.method == "PUT" && !r.body.is_empty())
        .expect("a PUT with a body");
    assert_eq!(put.body, data);
    assert!(put.path.contains(&format!(
        "digest={}",
        digest.to_string().replace(':', "%3A")
    )));
    // Then one PATCH (40 kB fits in one fallback chunk) with Content-Range, then the
    // closing PUT at the PATCH's Location.
    let patch = reqs.iter().find(|r| r.method == "PATCH").expect("PATCH");
    assert_eq!(patch.header("content-range"), Some("0-39999"));
    assert_eq!(patch.body, data);
    let last = reqs.last().expect("requests");
    assert_eq!(last.method, "PUT");
    assert!(
        last.path
            .starts_with("/v2/app/blobs/uploads/u1?state=1&digest="),
        "{}",
        last.path
    );
}
