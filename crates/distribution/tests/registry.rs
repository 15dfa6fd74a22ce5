//! Against a real registry (Debian's docker-registry, distribution 2.8): push a small
//! hand-built image and a two-platform index with the client, pull it all back.

mod common;

use berth_distribution::{
    media_types, select_manifest, Client, Credentials, Digest, Error, ErrorKind, HostOptions,
    Platform, PushedBlob, Reference,
};
use berth_testutil::registry::Registry;
use common::{noise, quick_config};
use futures_util::StreamExt as _;
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};

struct Blob {
    digest: Digest,
    size: u64,
    path: PathBuf,
    bytes: Vec<u8>,
}

fn blob(dir: &Path, bytes: Vec<u8>) -> Blob {
    let digest = Digest::sha256_of(&bytes);
    let path = dir.join(digest.hex());
    std::fs::write(&path, &bytes).expect("write blob");
    Blob {
        digest,
        size: bytes.len() as u64,
        path,
        bytes,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Config, two gzip layers and an OCI manifest for `arch`.
fn image(dir: &Path, arch: &str, seed: u64) -> (Vec<Blob>, Vec<u8>) {
    let layers = vec![
        blob(dir, gzip(&noise(300 << 10, seed))),
        blob(dir, gzip(format!("layer two for {arch}").as_bytes())),
    ];
    let config = blob(
        dir,
        serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {"Cmd": ["/bin/sh"]}
        }))
        .expect("json"),
    );
    let desc = |b: &Blob, mt: &str| json!({"mediaType": mt, "digest": b.digest.to_string(), "size": b.size});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": desc(&config, "application/vnd.oci.image.config.v1+json"),
        "layers": layers.iter().map(|l| desc(l, "application/vnd.oci.image.layer.v1.tar+gzip")).collect::<Vec<_>>(),
    }))
    .expect("json");
    let mut blobs = layers;
    blobs.push(config);
    (blobs, manifest)
}

async fn read_all(client: &Client, r: &Reference, b: &Blob, offset: u64) -> Vec<u8> {
    let mut s = client
        .get_blob(r, &b.digest, b.size, offset)
        .await
        .expect("get_blob");
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

#[tokio::test]
async fn push_and_pull_an_image_and_an_index() {
    let Some(reg) = Registry::start_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let client = Client::new(quick_config(), Credentials::none()).expect("client");
    let app: Reference = format!("{}/test/app:v1", reg.addr()).parse().expect("ref");
    client.check_login(reg.addr()).await.expect("GET /v2/");

    // Push: blobs (uploaded once, then found), manifest by tag.
    let (amd_blobs, amd_manifest) = image(tmp.path(), "amd64", 1);
    for b in &amd_blobs {
        assert_eq!(
            client.blob_exists(&app, &b.digest).await.expect("exists"),
            None
        );
        let pushed = client
            .push_blob(&app, &b.digest, b.size, &b.path)
            .await
            .expect("push blob");
        assert_eq!(pushed, PushedBlob::Uploaded);
        assert_eq!(
            client.blob_exists(&app, &b.digest).await.expect("exists"),
            Some(b.size)
        );
    }
    let again = client
        .push_blob(
            &app,
            &amd_blobs[0].digest,
            amd_blobs[0].size,
            &amd_blobs[0].path,
        )
        .await
        .expect("push again");
    assert_eq!(again, PushedBlob::Existed);
    let amd_digest = client
        .put_manifest(&app, media_types::OCI_MANIFEST, &amd_manifest)
        .await
        .expect("put manifest");
    assert_eq!(amd_digest, Digest::sha256_of(&amd_manifest));

    // A second platform, pushed by digest, and an index over both under another tag.
    let (arm_blobs, arm_manifest) = image(tmp.path(), "arm64", 2);
    for b in &arm_blobs {
        client
            .push_blob(&app, &b.digest, b.size, &b.path)
            .await
            .expect("push blob");
    }
    let arm_digest = Digest::sha256_of(&arm_manifest);
    client
        .put_manifest(
            &app.with_digest(arm_digest.clone()),
            media_types::OCI_MANIFEST,
            &arm_manifest,
        )
        .await
        .expect("put by digest");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [
            {"mediaType": media_types::OCI_MANIFEST, "digest": amd_digest.to_string(), "size": amd_manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": media_types::OCI_MANIFEST, "digest": arm_digest.to_string(), "size": arm_manifest.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    }))
    .expect("json");
    let multi = app.with_tag("multi").expect("tag");
    let index_digest = client
        .put_manifest(&multi, media_types::OCI_INDEX, &index)
        .await
        .expect("put index");

    // Pull: by tag, by digest, HEAD.
    let m = client.get_manifest(&app).await.expect("get by tag");
    assert_eq!(m.bytes, amd_manifest);
    assert_eq!(m.digest, amd_digest);
    assert_eq!(m.media_type, media_types::OCI_MANIFEST);
    let m = client
        .get_manifest(&app.with_digest(amd_digest.clone()))
        .await
        .expect("get by digest");
    assert_eq!(m.bytes, amd_manifest);
    let (d, mt, size) = client
        .head_manifest(&multi)
        .await
        .expect("head")
        .expect("present");
    assert_eq!(
        (d, mt.as_str(), size),
        (
            index_digest.clone(),
            media_types::OCI_INDEX,
            index.len() as u64
        )
    );
    assert_eq!(
        client
            .head_manifest(&app.with_tag("nope").expect("tag"))
            .await
            .expect("head"),
        None
    );

    // Platform selection from the pulled index, then that platform's blobs.
    let idx = client.get_manifest(&multi).await.expect("get index");
    assert!(idx.is_index());
    let arm = select_manifest(&idx.bytes, &"linux/arm64".parse::<Platform>().expect("p"))
        .expect("select arm64");
    assert_eq!(arm.digest, arm_digest);
    let amd = select_manifest(&idx.bytes, &Platform::host()).expect("select host");
    assert_eq!(amd.digest, amd_digest);
    let m = client
        .get_manifest(&app.with_digest(arm.digest))
        .await
        .expect("get arm");
    assert_eq!(m.bytes, arm_manifest);
    for b in &arm_blobs {
        assert_eq!(read_all(&client, &app, b, 0).await, b.bytes);
    }
    // From an offset: the rest of the blob.
    let big = &amd_blobs[0];
    assert_eq!(read_all(&client, &app, big, 1000).await, big.bytes[1000..]);

    // Cross-repository mount, and a mount the registry must decline.
    let other: Reference = format!("{}/test/other:v1", reg.addr())
        .parse()
        .expect("ref");
    assert!(client
        .mount_blob(&other, "test/app", &big.digest)
        .await
        .expect("mount"));
    assert_eq!(
        client
            .blob_exists(&other, &big.digest)
            .await
            .expect("exists"),
        Some(big.size)
    );
    let absent = Digest::sha256_of(b"not pushed anywhere");
    assert!(!client
        .mount_blob(&other, "test/app", &absent)
        .await
        .expect("declined mount"));

    // Errors: an unknown tag and an unknown blob are NotFound, with the registry's code.
    let e = client
        .get_manifest(&app.with_tag("missing").expect("tag"))
        .await
        .expect_err("missing tag");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        format!(
            "{}/test/app: manifest missing: MANIFEST_UNKNOWN: manifest unknown (distribution-spec: pulling manifests)",
            reg.addr()
        )
    );
    let e = client
        .get_blob(&app, &absent, 10, 0)
        .await
        .expect_err("missing blob");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn tls_with_htpasswd() {
    let Some(reg) = Registry::start_tls_basic_or_skip("alice", "s3cret") else {
        return;
    };
    let ca = reg.ca_path().expect("ca").to_path_buf();
    let mut config = quick_config();
    config.hosts.insert(
        reg.addr().into(),
        HostOptions {
            ca_files: vec![ca],
            plain_http: None,
        },
    );
    let r: Reference = format!("{}/secure/app:1", reg.addr()).parse().expect("ref");

    // The right password over TLS verified by the test CA: login, push, pull.
    let good = Client::new(
        config.clone(),
        Credentials::none().with_login(reg.addr(), "alice", "s3cret"),
    )
    .expect("client");
    good.check_login(reg.addr()).await.expect("login");
    let tmp = tempfile::tempdir().expect("tmp");
    let b = blob(tmp.path(), noise(70_000, 9));
    good.push_blob(&r, &b.digest, b.size, &b.path)
        .await
        .expect("push over TLS");
    assert_eq!(read_all(&good, &r, &b, 0).await, b.bytes);

    // A wrong password, and none at all: Unauthorized, saying which.
    let bad = Client::new(
        config.clone(),
        Credentials::none().with_login(reg.addr(), "alice", "wrong"),
    )
    .expect("client");
    let e = bad
        .check_login(reg.addr())
        .await
        .expect_err("wrong password");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(
        matches!(
            e,
            Error::Unauthorized {
                had_credentials: true,
                ..
            }
        ),
        "{e}"
    );
    let anon = Client::new(config.clone(), Credentials::none()).expect("client");
    let e = anon.get_manifest(&r).await.expect_err("anonymous");
    assert!(
        matches!(
            e,
            Error::Unauthorized {
                had_credentials: false,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("berth login"), "{e}");

    // Without the CA (HTTPS forced: a loopback host without a CA would get plain HTTP),
    // the certificate is refused at once, with rustls's reason.
    let mut no_ca = quick_config();
    no_ca.hosts.insert(
        reg.addr().into(),
        HostOptions {
            ca_files: vec![],
            plain_http: Some(false),
        },
    );
    let c = Client::new(
        no_ca,
        Credentials::none().with_login(reg.addr(), "alice", "s3cret"),
    )
    .expect("client");
    let e = c.check_login(reg.addr()).await.expect_err("unknown CA");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let text = e.to_string();
    assert!(
        text.contains("certificate") || text.contains("UnknownIssuer"),
        "{text}"
    );
    assert!(matches!(e, Error::Connect { attempts: 1, .. }), "{e:?}");
}

#[tokio::test]
async fn chunked_uploads() {
    let Some(reg) = Registry::start_or_skip() else {
        return;
    };
    let mut config = quick_config();
    config.chunk_size = Some(100 << 10);
    let client = Client::new(config, Credentials::none()).expect("client");
    let r: Reference = format!("{}/chunks/app:1", reg.addr()).parse().expect("ref");
    let tmp = tempfile::tempdir().expect("tmp");
    // Three and a bit chunks, then exactly one.
    for (seed, size) in [(1, 350_000), (2, 100 << 10)] {
        let b = blob(tmp.path(), noise(size, seed));
        let pushed = client
            .push_blob(&r, &b.digest, b.size, &b.path)
            .await
            .expect("chunked push");
        assert_eq!(pushed, PushedBlob::Uploaded);
        assert_eq!(read_all(&client, &r, &b, 0).await, b.bytes);
    }
}
