//! Bad input: each gets a clear error naming the field, a non-zero exit, and leaves
//! nothing behind (no state dir, cgroup, mount or process).

mod common;
use common::*;

fn expect_refused(edit: impl FnOnce(&mut Bundle), needle: &str) {
    let rt = Runtime::berth();
    let id = unique_id("bad");
    let token = format!("tok{id}");
    let mut b = Bundle::busybox(&["sh", "-c", &format!("sleep 1000 # {token}")]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    edit(&mut b);
    let o = rt.create(&b, &id, &[]);
    assert_ne!(o.code, 0, "accepted, but should fail with {needle:?}");
    assert!(
        o.stderr.contains(needle),
        "error should mention {needle:?}: {}",
        o.stderr
    );
    assert_no_leftovers(&rt, &id, &cg, &b.dir, &token);
}

fn set(b: &mut Bundle, f: impl FnOnce(&mut serde_json::Value)) {
    b.edit(f).expect("edit");
}

#[test]
fn malformed_json() {
    require_root!();
    expect_refused(
        |b| {
            std::fs::write(b.dir.join("config.json"), "{\"ociVersion\": \"1.2.0\", ")
                .expect("write")
        },
        "config.json",
    );
}

#[test]
fn wrong_type_names_the_json_path() {
    require_root!();
    expect_refused(
        |b| set(b, |c| c["process"]["user"]["uid"] = "root".into()),
        "process.user.uid",
    );
}

#[test]
fn unknown_version() {
    require_root!();
    expect_refused(
        |b| set(b, |c| c["ociVersion"] = "2.0.0".into()),
        "ociVersion",
    );
    expect_refused(
        |b| set(b, |c| c["ociVersion"] = "banana".into()),
        "ociVersion",
    );
}

#[test]
fn missing_rootfs() {
    require_root!();
    expect_refused(
        |b| set(b, |c| c["root"]["path"] = "nope".into()),
        "root.path",
    );
}

#[test]
fn unknown_namespace_type() {
    require_root!();
    expect_refused(
        |b| {
            set(b, |c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .expect("ns")
                    .push(serde_json::json!({"type": "bogus"}))
            })
        },
        "linux.namespaces",
    );
}

#[test]
fn unknown_mount_type() {
    require_root!();
    expect_refused(
        |b| {
            set(b, |c| {
                c["mounts"].as_array_mut().expect("m").push(
                    serde_json::json!({"destination": "/x", "type": "nosuchfs", "source": "x"}),
                )
            })
        },
        "mounts[7].type",
    );
}

#[test]
fn relative_paths_where_absolute_required() {
    require_root!();
    expect_refused(
        |b| set(b, |c| c["process"]["cwd"] = "relative".into()),
        "process.cwd",
    );
    expect_refused(
        |b| {
            set(b, |c| {
                c["mounts"]
                    .as_array_mut()
                    .expect("m")
                    .push(serde_json::json!({"destination": "rel", "type": "tmpfs", "source": "t"}))
            })
        },
        "mounts[7].destination",
    );
    expect_refused(
        |b| {
            set(b, |c| {
                c["linux"]["namespaces"][0]["path"] = "proc/1/ns/pid".into()
            })
        },
        "linux.namespaces[0].path",
    );
}

#[test]
fn bad_mount_option_is_reported_with_the_kernel_message() {
    require_root!();
    expect_refused(
        |b| {
            set(b, |c| {
                c["mounts"].as_array_mut().expect("m").push(serde_json::json!({"destination": "/x", "type": "tmpfs", "source": "t", "options": ["mode=banana"]}))
            })
        },
        "mounts[7] (tmpfs on /x)",
    );
}

#[test]
fn missing_executable() {
    require_root!();
    expect_refused(
        |b| {
            set(b, |c| {
                c["process"]["args"] = serde_json::json!(["/no/such/binary"])
            })
        },
        "executable file not found",
    );
}

#[test]
fn ids_empty_slash_dotdot_and_duplicate() {
    require_root!();
    let rt = Runtime::berth();
    let b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    for bad in ["", "a/b", "..", "x..y"] {
        let o = rt.create(&b, bad, &[]);
        assert_ne!(o.code, 0, "id {bad:?} accepted");
        assert!(o.stderr.contains("container id"), "{}", o.stderr);
    }
    assert_eq!(
        std::fs::read_dir(rt.root.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "a bad id left a state dir"
    );
    let id = unique_id("dup");
    assert_eq!(rt.create(&b, &id, &[]).code, 0);
    let o = rt.create(&b, &id, &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("exists"), "{}", o.stderr);
    assert_eq!(
        rt.status(&id),
        "created",
        "the failed duplicate must not disturb the first"
    );
}

#[test]
fn terminal_without_console_socket() {
    require_root!();
    expect_refused(
        |b| set(b, |c| c["process"]["terminal"] = true.into()),
        "--console-socket",
    );
}

#[test]
fn hostname_without_uts_namespace() {
    require_root!();
    expect_refused(
        |b| {
            set(b, |c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .expect("ns")
                    .retain(|n| n["type"] != "uts")
            })
        },
        "hostname",
    );
}

#[test]
fn host_sysctl_is_refused() {
    require_root!();
    expect_refused(
        |b| {
            set(b, |c| {
                c["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "10"})
            })
        },
        "linux.sysctl",
    );
}

#[test]
fn config_fuzz_corpus_never_panics() {
    // Truncations and byte flips of a valid config: parse must return, never panic.
    let good = serde_json::to_vec(&berth_testutil::default_config(&["true"])).expect("json");
    for cut in (0..good.len()).step_by(7) {
        let _ = berth_runtime::spec::parse(&good[..cut]);
    }
    for i in (0..good.len()).step_by(3) {
        let mut v = good.clone();
        v[i] ^= 0x5a;
        let _ = berth_runtime::spec::parse(&v);
    }
}
