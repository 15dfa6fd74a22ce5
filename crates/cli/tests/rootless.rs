//! User namespaces: as root with uid/gid mappings, and rootless (berth-oci run by an
//! unprivileged user with `spec --rootless`, no cgroup delegation).

mod common;
use common::*;
use std::process::Command;

const NOBODY: u32 = 65534;

/// Runs berth-oci as `nobody` (setpriv from util-linux).
fn as_nobody(args: &[&str]) -> Out {
    Command::new("setpriv")
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
            "--clear-groups",
            "--",
            berth_oci(),
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv")
        .into()
}

fn chown_tree(dir: &std::path::Path) {
    let s = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(dir)
        .status()
        .expect("chown");
    assert!(s.success());
}

#[test]
fn user_namespace_maps_ids_without_chowning_the_rootfs() {
    require_root!();
    let rt = Runtime::berth();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u /bin/busybox; touch /tmp/x 2>/dev/null && echo wrote || echo denied",
    ])
    .expect("bundle");
    b.edit(|c| {
        c["root"]["readonly"] = false.into();
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(serde_json::json!({"type": "user"}));
        c["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    })
    .expect("edit");
    let o = rt.run_bundle(&b, &unique_id("userns"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let words: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "0", "200000", "65536", "0", "200000", "65536", "65534", "denied"],
        "root inside, the mappings as configured, host-root files seen as the overflow id and not writable: {}",
        o.stdout
    );
    // The spec says the runtime should not change the rootfs's ownership.
    let meta = std::fs::metadata(b.rootfs().join("bin/busybox")).expect("stat");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
}

#[test]
fn rootless_spec_run_exec_and_delete_as_an_unprivileged_user() {
    require_root!();
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP: setpriv (util-linux) missing");
        return;
    }
    let b = Bundle::busybox(&["true"]).expect("bundle");
    std::fs::remove_file(b.dir.join("config.json")).expect("rm config");
    let state = b.dir.join("state");
    std::fs::create_dir(&state).expect("state dir");
    chown_tree(&b.dir);
    let bundle = b.dir.to_str().expect("utf8");
    let root = state.to_str().expect("utf8");
    let o = as_nobody(&["spec", "--rootless", "--bundle", bundle]);
    assert_eq!(o.code, 0, "spec --rootless: {}", o.stderr);
    // The rootless default maps the user to root and has no resources; give it a
    // program and no terminal.
    let path = b.dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], NOBODY);
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    std::fs::write(&path, c.to_string()).expect("write");
    chown_tree(&b.dir);

    let o = as_nobody(&["--root", root, "run", "--bundle", bundle, "rl1"]);
    assert_eq!(o.code, 0, "rootless run: {}", o.stderr);
    let words: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &NOBODY.to_string(), "1"], "{}", o.stdout);

    // Detached, then exec and delete, all as the same user.
    c["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    std::fs::write(&path, c.to_string()).expect("write");
    let log = std::fs::File::create(b.dir.join("rl2.out")).expect("log");
    let status = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
            berth_oci(),
        ])
        .args(["--root", root, "run", "--detach", "--bundle", bundle, "rl2"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .status()
        .expect("run -d");
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(b.dir.join("rl2.out")).unwrap_or_default()
    );
    let o = as_nobody(&["--root", root, "state", "rl2"]);
    assert!(o.stdout.contains("\"running\""), "{}", o.stdout);
    // exec: an unprivileged parent cannot enter the pid namespace itself; an
    // intermediate process joins the user namespace first and forks into it.
    let o = as_nobody(&[
        "--root",
        root,
        "exec",
        "rl2",
        "sh",
        "-c",
        "id -u; [ \"$(readlink /proc/self/ns/pid)\" = \"$(readlink /proc/1/ns/pid)\" ] && echo same-pidns; cat /proc/1/cmdline",
    ]);
    assert_eq!(o.code, 0, "rootless exec: {}", o.stderr);
    assert_eq!(
        o.stdout, "0\nsame-pidns\nsleep\u{0}1000\u{0}",
        "{:?}",
        o.stdout
    );
    let o = as_nobody(&["--root", root, "exec", "rl2", "sh", "-c", "exit 5"]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    let o = as_nobody(&["--root", root, "delete", "--force", "rl2"]);
    assert_eq!(o.code, 0, "rootless delete: {}", o.stderr);

    // Limits need a cgroup this user cannot have: a clear error, nothing left behind.
    c["linux"]["resources"] = serde_json::json!({"memory": {"limit": 67108864}});
    std::fs::write(&path, c.to_string()).expect("write");
    let o = as_nobody(&["--root", root, "run", "--bundle", bundle, "rl3"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("linux.resources") && o.stderr.contains("delegat"),
        "{}",
        o.stderr
    );
    assert!(!state.join("rl3").exists(), "state left behind");
}
