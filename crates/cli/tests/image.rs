//! `berth` image commands against a real registry (Debian's docker-registry on loopback),
//! with images built here from busybox-static and pushed by skopeo.

mod common;

use berth_testutil::image::{filler, layer_tar, Entry, ImageBuilder};
use berth_testutil::registry::Registry;
use common::Out;
use std::path::{Path, PathBuf};
use std::process::Command;

fn berth() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn run(&self, args: &[&str]) -> Out {
        Command::new(berth())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .expect("run berth")
            .into()
    }

    fn blobs(&self) -> Vec<PathBuf> {
        files(&self.root().join("content/blobs/sha256"))
    }

    /// Committed snapshot directories (not active/, locks/ or leftovers).
    fn snapshots(&self) -> Vec<PathBuf> {
        files(&self.root().join("snapshots"))
            .into_iter()
            .filter(|p| p.join("chainid").exists())
            .collect()
    }

    fn leftovers(&self) -> Vec<PathBuf> {
        files(&self.root().join("snapshots"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
            })
            .collect()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Every blob file hashes to its name: the store never holds unverified content.
fn assert_blobs_verified(s: &Store) {
    use sha2::Digest;
    for b in s.blobs() {
        let data = std::fs::read(&b).expect("read blob");
        let hex: String = sha2::Sha256::digest(&data)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert_eq!(
            b.file_name().expect("name").to_string_lossy(),
            hex,
            "torn or wrong blob {}",
            b.display()
        );
    }
}

macro_rules! registry_or_skip {
    () => {{
        require_root!();
        match Registry::start_or_skip() {
            Some(r) => r,
            None => return,
        }
    }};
}

#[test]
fn pull_list_inspect_tag_and_remove() {
    let reg = registry_or_skip!();
    let id = ImageBuilder::busybox()
        .expect("image")
        .push(reg.addr(), "busybox", "latest")
        .expect("push");
    let s = Store::new();
    let name = format!("{}/busybox:latest", reg.addr());
    let o = s.run(&["pull", &name]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), id);
    // In a pipe: plain progress lines, no bars.
    assert!(
        o.stderr.contains("Resolved") && o.stderr.contains("done"),
        "{}",
        o.stderr
    );
    assert_eq!(s.snapshots().len(), 1);

    // Warm: nothing fetched again.
    let o = s.run(&["pull", &name]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("already present"), "{}", o.stderr);
    let o = s.run(&["pull", "-q", &name]);
    assert_eq!((o.stdout.trim(), o.stderr.as_str()), (id.as_str(), ""));

    let o = s.run(&["images", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v[0]["Names"][0], name.as_str());
    assert_eq!(format!("sha256:{}", v[0]["Id"].as_str().expect("id")), id);
    let o = s.run(&["images"]);
    assert!(o.stdout.starts_with("REPOSITORY"), "{}", o.stdout);
    assert!(o.stdout.contains(&id[7..19]), "{}", o.stdout);

    let o = s.run(&["image", "inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(v[0]["Os"], "linux");

    assert_eq!(s.run(&["tag", &name, "local/other:v1"]).code, 0);
    let o = s.run(&["images", "-q"]);
    assert_eq!(
        o.stdout.lines().count(),
        1,
        "one image, two names: {}",
        o.stdout
    );
    // By id while it has two names: refused without --force.
    let o = s.run(&["rmi", &id[7..19]]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    let o = s.run(&["rmi", "local/other:v1"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("Untagged: localhost/other:v1")
            || o.stdout.contains("Untagged: docker.io/local/other:v1"),
        "{}",
        o.stdout
    );
    assert!(!s.blobs().is_empty());
    let o = s.run(&["rmi", &name]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Deleted"), "{}", o.stdout);
    assert!(s.blobs().is_empty(), "rmi collects the blobs");
    assert!(s.snapshots().is_empty(), "and the snapshots");
    let o = s.run(&["rmi", &name]);
    assert_eq!(o.code, 3, "{}", o.stderr);

    // Each of these is in the event log, as podman logs image events; the refused
    // rmi and the failed one are not.
    let events = common::recent_events(|a| s.run(a), "type=image");
    let seen: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                common::text(&e["action"]),
                common::text(&e["id"]),
                common::text(&e["attributes"]["name"]),
            )
        })
        .collect();
    let other = seen
        .iter()
        .find(|(a, _, _)| a == "tag")
        .map(|(_, _, n)| n.clone())
        .unwrap_or_default();
    assert!(other.ends_with("/other:v1"), "{seen:?}");
    let want: Vec<(String, String, String)> = [
        ("pull", &name),
        ("pull", &name),
        ("pull", &name),
        ("tag", &other),
        ("untag", &other),
        ("untag", &name),
        ("remove", &name),
    ]
    .iter()
    .map(|(a, n)| (a.to_string(), id.clone(), n.to_string()))
    .collect();
    assert_eq!(seen, want, "{events:?}");
    let short = common::recent_events(|a| s.run(a), "image=local/other:v1");
    assert_eq!(short.len(), 2, "the short name matches too: {short:?}");
    let full = common::recent_events(|a| s.run(a), &format!("image={other}"));
    assert_eq!(full.len(), 2, "tag and untag: {full:?}");
}

#[test]
fn unknown_images_and_bad_references_fail_clearly() {
    let reg = registry_or_skip!();
    let s = Store::new();
    let o = s.run(&["pull", &format!("{}/nothing:here", reg.addr())]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("nothing"), "{}", o.stderr);
    let o = s.run(&["pull", "UPPER/Case"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("invalid reference"), "{}", o.stderr);
    let o = s.run(&["image", "inspect", "nope"]);
    assert_eq!(o.code, 3, "{}", o.stderr);
}

#[test]
fn shared_layers_are_stored_once() {
    let reg = registry_or_skip!();
    let mut a = ImageBuilder::busybox().expect("image");
    a.layer(layer_tar(&[Entry::File("a".into(), b"a".to_vec(), 0o644)]).expect("tar"));
    let mut b = ImageBuilder::busybox().expect("image");
    b.layer(layer_tar(&[Entry::File("b".into(), b"b".to_vec(), 0o644)]).expect("tar"));
    a.push(reg.addr(), "a", "v1").expect("push");
    b.push(reg.addr(), "b", "v1").expect("push");
    let s = Store::new();
    for n in ["a", "b"] {
        let o = s.run(&["pull", "-q", &format!("{}/{n}:v1", reg.addr())]);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    // busybox layer shared: 3 layers, 3 snapshots; blobs: 3 layers + 2 configs + 2 manifests.
    assert_eq!(s.snapshots().len(), 3);
    assert_eq!(s.blobs().len(), 7);
    // Removing one image keeps what the other uses.
    assert_eq!(s.run(&["rmi", &format!("{}/a:v1", reg.addr())]).code, 0);
    assert_eq!(s.snapshots().len(), 2);
    assert_eq!(s.blobs().len(), 4);
    assert_blobs_verified(&s);
}

#[test]
fn concurrent_pulls_of_one_image_share_the_work() {
    let reg = registry_or_skip!();
    let mut img = ImageBuilder::busybox().expect("image");
    for i in 0..3 {
        img.layer(
            layer_tar(&[Entry::File(format!("f{i}"), filler(i, 4_000_000), 0o644)]).expect("tar"),
        );
    }
    let id = img.push(reg.addr(), "conc", "v1").expect("push");
    let s = Store::new();
    let name = format!("{}/conc:v1", reg.addr());
    let kids: Vec<_> = (0..3)
        .map(|_| {
            Command::new(berth())
                .arg("--root")
                .arg(s.root())
                .args(["pull", "-q", &name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for k in kids {
        let o: Out = k.wait_with_output().expect("wait").into();
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(o.stdout.trim(), id);
    }
    assert_eq!(s.snapshots().len(), 4);
    assert!(s.leftovers().is_empty());
    assert_blobs_verified(&s);
    let o = s.run(&["images", "-q"]);
    assert_eq!(o.stdout.lines().count(), 1);
}

#[test]
fn a_pull_killed_at_any_point_is_finished_by_the_next() {
    let reg = registry_or_skip!();
    let mut img = ImageBuilder::busybox().expect("image");
    for i in 0..3 {
        img.layer(
            layer_tar(&[Entry::File(
                format!("big{i}"),
                filler(100 + i, 15_000_000),
                0o644,
            )])
            .expect("tar"),
        );
    }
    let id = img.push(reg.addr(), "killme", "v1").expect("push");
    let name = format!("{}/killme:v1", reg.addr());
    let s = Store::new();
    // Kill at spread-out moments: before, during and after layers land.
    for delay_ms in [5u64, 40, 120, 250, 400, 700] {
        let mut k = Command::new(berth())
            .arg("--root")
            .arg(s.root())
            .args(["pull", "-q", &name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = k.kill();
        let _ = k.wait();
        assert_blobs_verified(&s);
    }
    let o = s.run(&["pull", "-q", &name]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), id);
    assert_eq!(s.snapshots().len(), 4);
    assert_blobs_verified(&s);
    let f = s.root().join("snapshots");
    let bytes = files(&f)
        .into_iter()
        .filter(|p| p.join("chainid").exists())
        .map(|p| files(&p.join("fs")).len())
        .sum::<usize>();
    assert!(bytes > 0);
    // prune clears leftovers of the killed pulls.
    assert_eq!(s.run(&["image", "prune"]).code, 0);
    assert!(s.leftovers().is_empty());
    assert!(files(&s.root().join("content/ingest")).is_empty());
}

#[test]
fn hostile_layers_are_refused_and_leave_nothing() {
    let reg = registry_or_skip!();
    // A tar entry climbing out of the layer root.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(4);
    h.set_mode(0o644);
    // set_path refuses "..": write the name bytes directly.
    let name = b"../escaped-by-berth-test";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    tar.append(&h, &b"evil"[..]).expect("append");
    let evil = tar.into_inner().expect("tar");
    let mut img = ImageBuilder::busybox().expect("image");
    img.layer(evil);
    img.push(reg.addr(), "evil", "v1").expect("push");
    let s = Store::new();
    let o = s.run(&["pull", &format!("{}/evil:v1", reg.addr())]);
    assert_eq!(o.code, 7, "{}", o.stderr);
    assert!(
        o.stderr.contains("escaped-by-berth-test") && o.stderr.contains("sha256:"),
        "{}",
        o.stderr
    );
    assert!(!s.root().join("snapshots/escaped-by-berth-test").exists());
    assert!(!s.root().join("escaped-by-berth-test").exists());
    let o = s.run(&["images", "-q"]);
    assert_eq!(o.stdout, "", "no image recorded");
    // The busybox layer may be kept (it was fine); the evil one is not committed.
    assert!(s.snapshots().len() <= 1);
    assert!(s.leftovers().is_empty());
}

#[test]
fn a_wrong_diff_id_is_refused() {
    let reg = registry_or_skip!();
    let mut img = ImageBuilder::busybox().expect("image");
    // write_layout fills diff_ids from the layers; swap them afterwards.
    img.layer(layer_tar(&[Entry::File("x".into(), b"x".to_vec(), 0o644)]).expect("tar"));
    let dir = tempfile::tempdir().expect("tempdir");
    img.write_layout(dir.path(), "v1").expect("layout");
    berth_testutil::image::swap_diff_ids(dir.path(), "v1").expect("swap");
    berth_testutil::image::skopeo_copy(
        &format!("oci:{}:v1", dir.path().display()),
        &format!("docker://{}/diffid:v1", reg.addr()),
    )
    .expect("push");
    let s = Store::new();
    let o = s.run(&["pull", &format!("{}/diffid:v1", reg.addr())]);
    assert_eq!(o.code, 7, "{}", o.stderr);
    assert!(o.stderr.contains("diff_ids"), "{}", o.stderr);
}

#[test]
fn save_load_round_trip_and_interoperate_with_skopeo() {
    let reg = registry_or_skip!();
    let mut img = ImageBuilder::busybox().expect("image");
    img.layer(layer_tar(&[Entry::File("saved".into(), b"yes".to_vec(), 0o600)]).expect("tar"));
    let id = img.push(reg.addr(), "saveme", "v1").expect("push");
    let name = format!("{}/saveme:v1", reg.addr());
    let s = Store::new();
    assert_eq!(s.run(&["pull", "-q", &name]).code, 0);
    let tar = s.dir.path().join("img.tar");
    let o = s.run(&["save", "-o", tar.to_str().expect("utf-8"), &name]);
    assert_eq!(o.code, 0, "{}", o.stderr);

    // Into an empty store: same image, same name, snapshots made from the archive.
    let t = Store::new();
    let o = t.run(&["load", "-i", tar.to_str().expect("utf-8")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), format!("Loaded image: {name}"));
    let o = t.run(&["images", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(format!("sha256:{}", v[0]["Id"].as_str().expect("id")), id);
    assert_eq!(t.snapshots().len(), 2);
    assert_blobs_verified(&t);

    // skopeo reads berth's archive both as an OCI archive and as a docker-archive …
    let out = tempfile::tempdir().expect("tempdir");
    for src in [
        format!("oci-archive:{}", tar.display()),
        format!("docker-archive:{}", tar.display()),
    ] {
        let dst = out.path().join(src.split(':').next().expect("kind"));
        berth_testutil::image::skopeo_copy(&src, &format!("oci:{}:x", dst.display()))
            .expect("skopeo reads berth's save");
    }
    // … and berth loads skopeo's docker-archive (docker's format, names and all).
    let darch = out.path().join("docker.tar");
    berth_testutil::image::skopeo_copy(
        &format!("docker://{name}"),
        &format!("docker-archive:{}:other/name:v2", darch.display()),
    )
    .expect("skopeo writes a docker-archive");
    let u = Store::new();
    let o = u.run(&["load", "-i", darch.to_str().expect("utf-8")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("docker.io/other/name:v2"), "{}", o.stdout);
    let o = u.run(&["image", "inspect", "other/name:v2"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(
        v[0]["Id"],
        id.as_str(),
        "the config, and so the id, survive"
    );

    // Garbage in: a clear error, nothing stored.
    let junk = s.dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar at all").expect("write");
    let w = Store::new();
    let o = w.run(&["load", "-i", junk.to_str().expect("utf-8")]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("archive"), "{}", o.stderr);
    assert!(w.blobs().is_empty());
}

#[test]
fn push_skips_existing_blobs_and_round_trips() {
    let reg = registry_or_skip!();
    let mut img = ImageBuilder::busybox().expect("image");
    img.layer(layer_tar(&[Entry::File("p".into(), b"p".to_vec(), 0o644)]).expect("tar"));
    let id = img.push(reg.addr(), "src", "v1").expect("push");
    let s = Store::new();
    let src = format!("{}/src:v1", reg.addr());
    assert_eq!(s.run(&["pull", "-q", &src]).code, 0);
    // Same registry, new repository: blobs are mounted, not uploaded.
    let dst = format!("{}/copy/dst:v2", reg.addr());
    let o = s.run(&["push", &src, &dst]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("mounted from src") || o.stderr.contains("already on the registry"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains(": pushed"), "{}", o.stderr);
    // Again: everything is there already.
    let o = s.run(&["push", &src, &dst]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.matches("already on the registry").count() >= 3,
        "{}",
        o.stderr
    );
    // A new layer is uploaded; and what was pushed pulls back as the same image.
    let t = Store::new();
    let o = t.run(&["pull", "-q", &dst]);
    assert_eq!((o.code, o.stdout.trim()), (0, id.as_str()), "{}", o.stderr);
    t.run(&["tag", &dst, &format!("{}/fresh:v1", reg.addr())]);
    let o = t.run(&["push", &format!("{}/fresh:v1", reg.addr())]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Unknown local image: not found.
    assert_eq!(t.run(&["push", "nothing/here"]).code, 3);
}

#[test]
fn login_then_pull_from_a_tls_registry_with_basic_auth() {
    require_root!();
    let Some(reg) = Registry::start_tls_basic_or_skip("berthuser", "s3cret") else {
        return;
    };
    // The test's CA, where berth looks for per-registry CAs ($BERTH_CERTS_DIR/HOST:PORT/).
    let certs = tempfile::tempdir().expect("tempdir");
    let host_dir = certs.path().join(reg.addr());
    std::fs::create_dir_all(&host_dir).expect("mkdir");
    std::fs::copy(
        reg.ca_path().expect("a TLS registry has a CA"),
        host_dir.join("ca.crt"),
    )
    .expect("copy ca");
    let layout = tempfile::tempdir().expect("tempdir");
    ImageBuilder::busybox()
        .expect("image")
        .write_layout(layout.path(), "v1")
        .expect("layout");
    let status = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--insecure-policy",
            "--dest-creds",
            "berthuser:s3cret",
        ])
        .arg(format!("--dest-cert-dir={}", host_dir.display()))
        .arg(format!("oci:{}:v1", layout.path().display()))
        .arg(format!("docker://{}/private:v1", reg.addr()))
        .status()
        .expect("skopeo");
    assert!(status.success());

    let s = Store::new();
    let auth = s.dir.path().join("auth.json");
    let run = |args: &[&str], stdin: Option<&str>| -> Out {
        use std::io::Write;
        let mut c = Command::new(berth())
            .arg("--root")
            .arg(s.root())
            .args(args)
            .env("BERTH_CERTS_DIR", certs.path())
            .env("BERTH_AUTH_FILE", &auth)
            .env("HOME", s.dir.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("REGISTRY_AUTH_FILE")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        if let Some(input) = stdin {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
        }
        drop(c.stdin.take());
        c.wait_with_output().expect("wait").into()
    };
    let name = format!("{}/private:v1", reg.addr());
    let o = run(&["pull", &name], None);
    assert_eq!(o.code, 4, "no credentials: unauthorized\n{}", o.stderr);
    let o = run(
        &["login", "-u", "berthuser", "--password-stdin", reg.addr()],
        Some("wrong\n"),
    );
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(!auth.exists(), "a failed login stores nothing");
    let o = run(
        &["login", "-u", "berthuser", "--password-stdin", reg.addr()],
        Some("s3cret\n"),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth)
            .expect("auth file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let o = run(&["pull", "-q", &name], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(run(&["logout", reg.addr()], None).code, 0);
    assert_eq!(run(&["rmi", &name], None).code, 0);
    let o = run(&["pull", &name], None);
    assert_eq!(o.code, 4, "logged out again\n{}", o.stderr);
    // Without the CA, berth uses plain HTTP on loopback (documented rule), and says why
    // the registry refuses it.
    let o = Command::new(berth())
        .arg("--root")
        .arg(s.root())
        .args(["pull", &name])
        .env("BERTH_AUTH_FILE", &auth)
        .output()
        .expect("run");
    let o: Out = o.into();
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(
        o.stderr.contains("HTTPS_ONLY") && o.stderr.contains("certs.d"),
        "{}",
        o.stderr
    );
}

/// The pulled image, seen through an overlay mount of its snapshots (overlay driver) or
/// the merged tree (copy driver), equals what umoci unpacks from the same image.
#[test]
fn pulled_snapshots_match_umoci_with_both_drivers() {
    let reg = registry_or_skip!();
    if Command::new("umoci").arg("--version").output().is_err() {
        eprintln!("SKIP: umoci is not installed");
        return;
    }
    let mut img = ImageBuilder::busybox().expect("image");
    img.layer(
        layer_tar(&[
            Entry::Dir("data", 0o755),
            Entry::File("data/keep".into(), b"keep".to_vec(), 0o640),
            Entry::File("data/gone".into(), b"gone".to_vec(), 0o644),
            Entry::File("bin/extra".into(), b"x".to_vec(), 0o4755),
        ])
        .expect("tar"),
    );
    img.layer(
        layer_tar(&[
            Entry::File("data/.wh.gone".into(), Vec::new(), 0o644),
            Entry::File("data/new".into(), filler(7, 100_000), 0o600),
            Entry::Symlink("data/link", "../bin/busybox"),
        ])
        .expect("tar"),
    );
    let layout = tempfile::tempdir().expect("tempdir");
    img.write_layout(layout.path(), "v1").expect("layout");
    berth_testutil::image::skopeo_copy(
        &format!("oci:{}:v1", layout.path().display()),
        &format!("docker://{}/diff:v1", reg.addr()),
    )
    .expect("push");
    let bundle = tempfile::tempdir().expect("tempdir");
    let b = bundle.path().join("b");
    let o: Out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", layout.path().display()))
        .arg(&b)
        .output()
        .expect("umoci")
        .into();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let want = tree(&b.join("rootfs"));
    assert!(want.iter().any(|l| l.starts_with("data/new ")), "{want:?}");
    assert!(!want.iter().any(|l| l.starts_with("data/gone ")));

    for driver in ["overlay", "copy"] {
        let s = Store::new();
        let o = s.run(&[
            "--storage-driver",
            driver,
            "pull",
            "-q",
            &format!("{}/diff:v1", reg.addr()),
        ]);
        assert_eq!(o.code, 0, "{driver}: {}", o.stderr);
        let top = s.snapshots().into_iter().max_by_key(|p| {
            // The top of the chain is the one no other snapshot names as parent.
            let me = std::fs::read_to_string(p.join("chainid")).expect("chainid");
            !s.snapshots().iter().any(|q| {
                std::fs::read_to_string(q.join("parent")).ok().as_deref() == Some(me.trim())
            })
        });
        let top = top.expect("snapshots");
        let got = if driver == "overlay" {
            let mut lower = vec![top.clone()];
            while let Ok(p) = std::fs::read_to_string(lower.last().expect("one").join("parent")) {
                let Some(next) = s.snapshots().into_iter().find(|q| {
                    std::fs::read_to_string(q.join("chainid")).ok().as_deref() == Some(p.trim())
                }) else {
                    break;
                };
                lower.push(next);
            }
            let dirs: Vec<String> = lower
                .iter()
                .map(|l| l.join("fs").display().to_string())
                .collect();
            let m = s.dir.path().join("merged");
            std::fs::create_dir_all(&m).expect("mkdir");
            let st = Command::new("mount")
                .args([
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    &format!("ro,lowerdir={}", dirs.join(":")),
                ])
                .arg(&m)
                .status()
                .expect("mount");
            assert!(st.success());
            let t = tree(&m);
            Command::new("umount").arg(&m).status().expect("umount");
            t
        } else {
            tree(&top.join("fs"))
        };
        assert_eq!(got, want, "{driver} differs from umoci");
    }
}

/// One line per path: type, mode, owner, size, content hash or link target.
fn tree(root: &Path) -> Vec<String> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p.strip_prefix(root).expect("inside").display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).expect("link").display())
            } else if m.is_file() {
                let h = sha2::Sha256::digest(std::fs::read(&p).expect("read"));
                format!("{} {:x}", m.len(), h)
            } else {
                if m.is_dir() {
                    stack.push(p.clone());
                }
                String::new()
            };
            out.push(format!(
                "{rel} {:o} {}:{} {what}",
                m.mode(),
                m.uid(),
                m.gid()
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn multi_platform_images_pick_the_host_or_the_asked_platform() {
    let reg = registry_or_skip!();
    let layout = tempfile::tempdir().expect("tempdir");
    let mk = |marker: &str| {
        let mut b = ImageBuilder::busybox().expect("image");
        b.layer(layer_tar(&[Entry::File(marker.into(), b"1".to_vec(), 0o644)]).expect("tar"));
        b
    };
    berth_testutil::image::write_index_layout(
        layout.path(),
        "multi",
        &mut [
            (mk("amd64"), "linux/amd64"),
            (mk("arm64"), "linux/arm64/v8"),
            (mk("arm"), "linux/arm/v7"),
        ],
    )
    .expect("layout");
    let st = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--all",
            "--insecure-policy",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", layout.path().display()))
        .arg(format!("docker://{}/multi:v1", reg.addr()))
        .status()
        .expect("skopeo");
    assert!(st.success());
    let name = format!("{}/multi:v1", reg.addr());
    let s = Store::new();
    let platform_of = |s: &Store, n: &str| -> String {
        let o = s.run(&["image", "inspect", n]);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
        format!(
            "{}/{}",
            v[0]["Os"].as_str().unwrap_or("?"),
            v[0]["Architecture"].as_str().unwrap_or("?")
        )
    };
    let o = s.run(&["pull", "-q", &name]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(platform_of(&s, &name), "linux/amd64");
    let t = Store::new();
    let o = t.run(&["pull", "-q", "--platform", "linux/arm64", &name]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        platform_of(&t, &name),
        "linux/arm64",
        "arm64 means arm64/v8"
    );
    let u = Store::new();
    let o = u.run(&["pull", "--platform", "linux/s390x", &name]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("s390x"), "{}", o.stderr);
    let o = u.run(&["pull", "--platform", "nonsense", &name]);
    assert_ne!(o.code, 0);
}
