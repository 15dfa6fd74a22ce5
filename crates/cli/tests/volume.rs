//! Volumes on real containers: named volumes outlive containers, new ones are pre-filled
//! from the image (owners and modes kept, symlinks never followed out of the rootfs),
//! anonymous ones go with `rm -v` and `--rm`, size limits are enforced by the kernel,
//! `--mount` speaks docker's keys, and bad input leaves nothing behind.

mod common;

use berth_testutil::image::ImageBuilder;
use common::host::{mounts_under, Host};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A Host plus images with content at volume paths. On drop, unmounts anything still
/// mounted under the test's directory (size-limited volumes), so a failed assertion
/// leaks no mount or loop device.
struct Vols {
    h: Host,
    /// /srv/data (uid 1000, 0750) with files, a symlink out to /etc/shadow; /cache
    /// declared in the config's Volumes.
    image: String,
}

impl Drop for Vols {
    fn drop(&mut self) {
        for m in mounts_under(self.h.dir.path()).into_iter().rev() {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// A layer with owners other than root (testutil's layers are all root's).
/// Entries: (path, 'd' | 'f' | 'l', mode, uid, data or link target).
fn owned_layer(entries: &[(&str, char, u32, u64, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, mode, uid, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(1_700_000_000);
        match kind {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).expect("dir");
            }
            'f' => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_bytes()).expect("file");
            }
            _ => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, data).expect("symlink");
            }
        }
    }
    b.into_inner().expect("tar")
}

fn push(h: &Host, img: &ImageBuilder, name: &str) -> String {
    img.push(h.reg.addr(), name, "v1").expect("push");
    let r = format!("{}/{name}:v1", h.reg.addr());
    let o = h.berth(&["pull", "-q", &r]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    r
}

impl Vols {
    fn new() -> Option<Vols> {
        let h = Host::new()?;
        let mut img = ImageBuilder::busybox().expect("image");
        img.layer(owned_layer(&[
            ("srv", 'd', 0o755, 0, ""),
            ("srv/data", 'd', 0o750, 1000, ""),
            ("srv/data/hello", 'f', 0o640, 1000, "from image\n"),
            ("srv/data/link", 'l', 0o777, 0, "hello"),
            ("srv/data/shadow", 'l', 0o777, 0, "/etc/shadow"),
            ("srv/data/sub", 'd', 0o700, 1000, ""),
            ("srv/data/sub/deep", 'f', 0o600, 1000, "deep\n"),
            ("cache", 'd', 0o755, 0, ""),
            ("cache/seed", 'f', 0o644, 0, "seed\n"),
        ]));
        img.config["config"]["Volumes"] = serde_json::json!({"/cache": {}});
        let image = push(&h, &img, "vols");
        Some(Vols { h, image })
    }

    fn berth(&self, args: &[&str]) -> common::Out {
        self.h.berth(args)
    }

    /// `run --rm FLAGS IMAGE sh -c SCRIPT`.
    fn sh(&self, flags: &[&str], script: &str) -> common::Out {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&self.image, "sh", "-c", script]);
        self.berth(&args)
    }

    fn mountpoint(&self, name: &str) -> PathBuf {
        self.h
            .dir
            .path()
            .join("root/volumes")
            .join(name)
            .join("_data")
    }

    fn names(&self) -> Vec<String> {
        let o = self.berth(&["volume", "ls", "-q"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        o.stdout.lines().map(str::to_string).collect()
    }

    /// No container, no volume, no volume directory, no mount.
    fn assert_clean(&self) {
        self.h.assert_clean();
        assert_eq!(self.names(), Vec::<String>::new(), "leftover volumes");
        let left: Vec<_> = std::fs::read_dir(self.h.dir.path().join("root/volumes"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != ".lock")
            .collect();
        assert!(left.is_empty(), "leftover volume directories: {left:?}");
        assert_eq!(mounts_under(self.h.dir.path()), Vec::<PathBuf>::new());
    }
}

#[test]
fn named_volume_is_prefilled_once_and_outlives_its_containers() {
    let Some(v) = Vols::new() else { return };
    let o = v.sh(
        &["-v", "data:/srv/data"],
        "stat -c '%u:%g %a' /srv/data /srv/data/hello /srv/data/sub/deep; cat /srv/data/hello; \
         busybox readlink /srv/data/link; busybox readlink /srv/data/shadow; echo new > /srv/data/new; busybox rm /srv/data/hello",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "1000:1000 750\n1000:1000 640\n1000:1000 600\nfrom image\nhello\n/etc/shadow\n"
    );
    // The symlink was copied as a link, not followed to the host's (or image's) shadow.
    let mp = v.mountpoint("data");
    assert!(std::fs::symlink_metadata(mp.join("shadow"))
        .expect("lstat")
        .is_symlink());
    assert_eq!(std::fs::metadata(&mp).expect("stat").uid(), 1000);
    // A new container sees what the last one left, and the volume is not filled again.
    let o = v.sh(&["-v", "data:/srv/data"], "cat /srv/data/new; ls /srv/data");
    assert_eq!(o.stdout, "new\nlink\nnew\nshadow\nsub\n", "{}", o.stderr);
    // --rm took the anonymous /cache volumes (from the image's Volumes) along.
    assert_eq!(v.names(), vec!["data"]);
    // nocopy: a new volume stays empty.
    let o = v.sh(
        &["-v", "empty:/srv/data:nocopy"],
        "ls -A /srv/data | busybox wc -l",
    );
    assert_eq!(o.stdout.trim(), "0", "{}", o.stderr);
    for n in ["data", "empty"] {
        assert_eq!(v.berth(&["volume", "rm", n]).code, 0);
    }
    v.assert_clean();
}

#[test]
fn in_use_volumes_are_refused_and_anonymous_ones_go_with_rm_v() {
    let Some(v) = Vols::new() else { return };
    let o = v.berth(&[
        "run",
        "--name",
        "c1",
        "-v",
        "used:/x",
        "-v",
        "/anon",
        &v.image,
        "sh",
        "-c",
        "cat /cache/seed; echo hi > /anon/f",
    ]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "seed\n"), "{}", o.stderr);
    // Three volumes: used, and anonymous ones for /anon and the image's /cache.
    let o = v.berth(&["volume", "ls", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    let anon: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|x| x["Anonymous"] == true)
        .filter_map(|x| x["Name"].as_str())
        .collect();
    assert_eq!(
        (list.as_array().map(Vec::len), anon.len()),
        (Some(3), 2),
        "{list}"
    );
    // In use by a stopped container: refused with the conflict code, and pruning spares it.
    let o = v.berth(&["volume", "rm", "used"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stderr.contains("c1"), "{}", o.stderr);
    assert_eq!(v.berth(&["volume", "create", "spare"]).code, 0);
    let o = v.berth(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert_eq!(o.stdout, "spare\n");
    let o = v.berth(&["volume", "prune", "-f"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "spare\n"), "{}", o.stderr);
    assert_eq!(v.names().len(), 3);
    // rm -v removes the anonymous ones, not the named one.
    assert_eq!(v.berth(&["rm", "-v", "c1"]).code, 0);
    assert_eq!(v.names(), vec!["used"]);
    for a in anon {
        assert!(
            !v.mountpoint(a).exists(),
            "anonymous volume {a} left on disk"
        );
    }
    // rm without -v keeps them; volume rm -f removes the containers using it too.
    let o = v.berth(&["run", "--name", "c2", "-v", "used:/x", &v.image, "true"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(v.berth(&["volume", "rm", "-f", "used"]).code, 0);
    assert_eq!(v.berth(&["ps", "-aq"]).stdout, "");
    assert_eq!(
        v.names().len(),
        1,
        "c2's /cache volume stays after a plain rm"
    );
    assert_eq!(v.berth(&["volume", "prune", "-f"]).code, 0);
    // Every volume's life is in the event log: each of the five made (used, spare, c1's
    // two anonymous ones, c2's /cache) was created once and destroyed once, by run,
    // create, rm -v, prune and rm -f alike.
    let events = common::recent_events(|a| v.berth(a), "type=volume");
    let mut life: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in &events {
        life.entry(common::text(&e["id"]))
            .or_default()
            .push(common::text(&e["action"]));
    }
    assert_eq!(life.len(), 5, "{events:?}");
    assert!(
        life.values().all(|a| a == &["create", "destroy"]),
        "{events:?}"
    );
    v.assert_clean();
}

#[test]
fn size_limit_is_enforced_and_survives_a_lost_mount() {
    let Some(v) = Vols::new() else { return };
    assert_eq!(
        v.berth(&["volume", "create", "--opt", "size=8m", "small"])
            .code,
        0
    );
    let fill =
        "busybox dd if=/dev/zero of=/d/big bs=1M count=20 2>&1; echo keep > /d/keep; cat /d/keep";
    let o = v.sh(&["-v", "small:/d"], fill);
    assert!(
        o.stdout.contains("No space left on device"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert!(o.stdout.ends_with("keep\n"), "{}", o.stdout);
    // The same through --mount, creating the volume on first use.
    let o = v.sh(
        &[
            "--mount",
            "type=volume,src=small2,dst=/d,volume-opt=size=8m",
        ],
        fill,
    );
    assert!(o.stdout.contains("No space left on device"), "{}", o.stdout);
    let o = v.berth(&["volume", "inspect", "small2"]);
    let i: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(i[0]["Options"]["size"], "8388608");
    // A reboot empties the mount table: the data must come back, still limited, and
    // the bare directory refuses writes meanwhile.
    let mp = v.mountpoint("small");
    rustix::mount::unmount(&mp, rustix::mount::UnmountFlags::empty()).expect("unmount");
    assert!(
        std::fs::write(mp.join("x"), "x").is_err(),
        "bare mountpoint is writable"
    );
    let o = v.sh(
        &["-v", "small:/d"],
        "cat /d/keep; busybox rm /d/big; busybox dd if=/dev/zero of=/d/big bs=1M count=20 2>&1",
    );
    assert!(
        o.stdout.starts_with("keep\n") && o.stdout.contains("No space left"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    for n in ["small", "small2"] {
        assert_eq!(v.berth(&["volume", "rm", n]).code, 0);
    }
    v.assert_clean();
}

#[test]
fn mount_flag_forms() {
    let Some(v) = Vols::new() else { return };
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("in"), "host\n").expect("write");
    let bind = format!(
        "type=bind,source={},target=/h,readonly",
        host.path().display()
    );
    let o = v.sh(
        &["--mount", &bind, "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770", "--mount", "type=volume,source=mv,target=/m"],
        "cat /h/in; touch /h/x 2>/dev/null || echo ro; stat -c %a /t; grep ' /t ' /proc/mounts | grep -o size=[0-9]*k; \
         echo m > /m/f; ls /cache",
    );
    assert_eq!(
        o.stdout, "host\nro\n1770\nsize=1024k\nseed\n",
        "{}",
        o.stderr
    );
    // -v with options: read-only volume, propagation on a bind.
    let b = format!("{}:/h:rslave", host.path().display());
    let o = v.sh(
        &["-v", "mv:/m:ro", "-v", &b],
        "cat /m/f; touch /m/g 2>/dev/null || echo ro; cat /h/in",
    );
    assert_eq!(o.stdout, "m\nro\nhost\n", "{}", o.stderr);
    let nr = format!(
        "type=bind,src={},dst=/h,bind-propagation=rprivate,bind-nonrecursive",
        host.path().display()
    );
    let o = v.sh(&["--mount", &nr], "cat /h/in");
    assert_eq!(o.stdout, "host\n", "{}", o.stderr);
    assert_eq!(v.berth(&["volume", "rm", "mv"]).code, 0);
    v.assert_clean();
}

#[test]
fn bad_input_is_refused_with_the_usage_code_and_leaves_nothing() {
    let Some(v) = Vols::new() else { return };
    for bad in [
        &["--mount", "type=volume,source=x,target=/x,bogus=1"][..],
        &["--mount", "type=bind,source=/tmp,target=relative"],
        &["--mount", "type=tmpfs,target=/t,volume-nocopy"],
        &["--mount", "type=volume,src=y,dst=/y,volume-opt=size=1k"],
        &["-v", "vol:relative"],
        &["-v", "./relative:/x"],
        &["-v", "a:/x", "-v", "b:/x"],
        &["-v", "z:/x:bogus"],
        &["-v", "/no/such/host/dir:/x"],
    ] {
        let mut flags = bad.to_vec();
        flags.extend(["--name", "bad", "-v", "named:/named"]);
        let o = v.sh(&flags, "true");
        assert_eq!(o.code, 2, "{bad:?}: {}", o.stderr);
        assert!(!o.stderr.is_empty());
    }
    let o = v.berth(&["volume", "create", "bad/name"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(
        v.berth(&["volume", "create", "--opt", "size=lots", "x"])
            .code,
        2
    );
    assert_eq!(
        v.berth(&["volume", "create", "--opt", "nope=1", "x"]).code,
        2
    );
    assert_eq!(v.berth(&["volume", "inspect", "nope"]).code, 3);
    assert_eq!(v.berth(&["volume", "rm", "nope"]).code, 3);
    v.assert_clean();
}

#[test]
fn hostile_image_symlinks_to_the_hosts_etc_stay_in_the_rootfs() {
    let Some(v) = Vols::new() else { return };
    let mut img = ImageBuilder::busybox().expect("image");
    img.layer(owned_layer(&[
        ("evil", 'l', 0o777, 0, "/etc"),
        ("evil2", 'l', 0o777, 0, "../../../../../../etc"),
    ]));
    img.config["config"]["Volumes"] = serde_json::json!({"/evil2": {}});
    let hostile = push(&v.h, &img, "hostile");
    let marker = format!("berth-volume-test-{}", std::process::id());
    let o = v.berth(&[
        "run",
        "--name",
        "h",
        "-v",
        "hv:/evil",
        &hostile,
        "sh",
        "-c",
        &format!("ls /evil /evil2; echo x > /evil/{marker}"),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Only the image's own /etc was copied, into the volumes, and the write landed there.
    let image_etc = ["group", "passwd"];
    let listed: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| !l.is_empty() && !l.ends_with(':'))
        .collect();
    assert_eq!(
        listed,
        ["group", "passwd", "group", "passwd"],
        "{}",
        o.stdout
    );
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "wrote into the host's /etc"
    );
    // Both mounts land on the container's /etc; each volume holds the image's /etc
    // (the write went to the top one), nothing of the host's.
    let anon = v
        .names()
        .into_iter()
        .find(|n| n != "hv")
        .expect("anonymous volume for /evil2");
    for vol in ["hv", anon.as_str()] {
        let mut names: Vec<String> = std::fs::read_dir(v.mountpoint(vol))
            .expect("volume")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| *n != marker)
            .collect();
        names.sort();
        assert_eq!(names, image_etc, "volume {vol} has host files");
    }
    assert_eq!(v.berth(&["rm", "-v", "h"]).code, 0);
    assert_eq!(v.berth(&["volume", "rm", "hv"]).code, 0);
    v.assert_clean();
}

#[test]
fn listing_and_inspect_json() {
    let Some(v) = Vols::new() else { return };
    assert_eq!(
        v.berth(&["volume", "create", "--label", "team=db", "--label", "tier", "one"])
            .code,
        0
    );
    let o = v.berth(&["volume", "create"]);
    let anon = o.stdout.trim().to_string();
    assert_eq!(anon.len(), 64, "{}", o.stderr);
    let o = v.berth(&["volume", "create", "one"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert_eq!(v.berth(&["volume", "create", "--ignore", "one"]).code, 0);
    let o = v.berth(&["volume", "inspect", "one"]);
    let i: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(i[0]["Name"], "one");
    assert_eq!(i[0]["Driver"], "local");
    assert_eq!(i[0]["Scope"], "local");
    assert_eq!(
        i[0]["Labels"],
        serde_json::json!({"team": "db", "tier": ""})
    );
    assert_eq!(
        i[0]["Mountpoint"],
        v.mountpoint("one").display().to_string()
    );
    assert!(v.mountpoint("one").is_dir());
    assert!(
        i[0]["CreatedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{i}"
    );
    for (filter, want) in [
        ("label=team=db", "one\n"),
        ("label=tier", "one\n"),
        ("label=team=web", ""),
        ("name=on", "one\n"),
    ] {
        assert_eq!(
            v.berth(&["volume", "ls", "-q", "--filter", filter]).stdout,
            want,
            "{filter}"
        );
    }
    let o = v.berth(&["volume", "ls", "--format", "json"]);
    let l: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(l.as_array().map(Vec::len), Some(2));
    assert_eq!(v.berth(&["volume", "ls", "--filter", "colour=red"]).code, 2);
    let o = v.berth(&["volume", "rm", "one", &anon]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    v.assert_clean();
}
