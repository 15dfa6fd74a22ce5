//! Hooks (config.md#posix-platform-hooks) with real containers: order, the state on
//! stdin, which namespaces each kind runs in, and what a failing hook does.

mod common;
use common::*;
use serde_json::{json, Value};

/// A hook that appends "<name> <its hostname> <its stdin>" to `log`. The hostname
/// tells which UTS namespace the hook ran in.
fn hook(name: &str, log: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"{name} $(cat /proc/sys/kernel/hostname) $(cat)\" >> {log}")],
        "env": ["PATH=/bin:/usr/bin"],
        "timeout": 10
    })
}

/// All six kinds, each logging to the rootfs file `hooklog`: the hooks outside the
/// container (and createContainer, which runs before pivot_root) by its host path,
/// startContainer by its path inside the container, `/hooklog`, which only resolves
/// there if the hook really runs in the container's root.
fn all_hooks(b: &mut Bundle) -> std::path::PathBuf {
    let log = b.rootfs().join("hooklog");
    let host = log.to_str().expect("utf8").to_string();
    b.edit(|c| {
        c["root"]["readonly"] = false.into();
        c["hooks"] = json!({
            "prestart": [hook("prestart", &host)],
            "createRuntime": [hook("createRuntime", &host)],
            "createContainer": [hook("createContainer", &host)],
            "startContainer": [hook("startContainer", "/hooklog")],
            "poststart": [hook("poststart", &host)],
            "poststop": [hook("poststop", &host)],
        });
    })
    .expect("edit");
    log
}

/// The log's lines as (hook name, hostname, state document).
fn read_log(log: &std::path::Path) -> Vec<(String, String, Value)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let name = parts.next().unwrap_or_default().to_string();
            let host = parts.next().unwrap_or_default().to_string();
            let state = serde_json::from_str(parts.next().unwrap_or("null")).expect("state JSON");
            (name, host, state)
        })
        .collect()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

fn check_log(log: &std::path::Path, id: &str, pid: i64) {
    let entries = read_log(log);
    let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "hooks ran out of order or not at all"
    );
    for (name, host, state) in &entries {
        let inside = matches!(name.as_str(), "createContainer" | "startContainer");
        let expected = if inside {
            "berth-test".to_string()
        } else {
            host_name()
        };
        assert_eq!(host, &expected, "{name} ran in the wrong UTS namespace");
        assert_eq!(state["id"], id, "{name}: {state}");
        assert!(
            state["bundle"].as_str().is_some_and(|b| b.starts_with('/')),
            "{name}: {state}"
        );
        let status = match name.as_str() {
            "poststart" => "running",
            "poststop" => "stopped",
            _ => "created",
        };
        assert_eq!(state["status"], status, "{name}: {state}");
        if name != "poststop" {
            assert_eq!(state["pid"], pid, "{name}: {state}");
        }
    }
}

#[test]
fn create_start_delete_run_every_hook_in_order_and_namespace() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("hooks");
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    let log = all_hooks(&mut b);
    let o = rt.create(&b, &id, &[]);
    assert_eq!(o.code, 0, "create: {}", o.stderr);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    assert_eq!(
        read_log(&log).len(),
        3,
        "only the create hooks may have run after create"
    );
    let o = rt.run(&["start", &id]);
    assert_eq!(o.code, 0, "start: {}", o.stderr);
    rt.wait_status(&id, "stopped");
    let o = rt.run(&["delete", &id]);
    assert_eq!(o.code, 0, "delete: {}", o.stderr);
    check_log(&log, &id, pid);
}

#[test]
fn foreground_run_runs_every_hook_in_order() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("hooksrun");
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    let log = all_hooks(&mut b);
    let o = rt.run_bundle(&b, &id);
    assert_eq!(o.code, 0, "run: {}", o.stderr);
    let entries = read_log(&log);
    let pid = entries
        .first()
        .map(|(_, _, s)| s["pid"].as_i64().unwrap_or(0))
        .unwrap_or(0);
    assert!(pid > 0);
    check_log(&log, &id, pid);
}

#[test]
fn failing_prestart_fails_create_cleans_up_and_runs_poststop() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("hookfail");
    let token = format!("tok{id}");
    let mut b = Bundle::busybox(&["sh", "-c", &format!("sleep 1000 # {token}")]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    let marker = b.dir.join("poststop-ran");
    let m = marker.to_str().expect("utf8").to_string();
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no network for you >&2; exit 7"]}],
            "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("touch {m}")]}],
        });
    })
    .expect("edit");
    let o = rt.create(&b, &id, &[]);
    assert_ne!(o.code, 0, "create must fail when a prestart hook fails");
    assert!(o.stderr.contains("hooks.prestart[0]"), "{}", o.stderr);
    assert!(o.stderr.contains("exit status 7"), "{}", o.stderr);
    assert!(o.stderr.contains("no network for you"), "{}", o.stderr);
    assert!(
        marker.exists(),
        "poststop hooks must run after a failed create"
    );
    assert_no_leftovers(&rt, &id, &cg, &b.dir, &token);
}

#[test]
fn failing_start_container_fails_start_and_stops_the_container() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("hookstart");
    let token = format!("tok{id}");
    let mut b =
        Bundle::busybox(&["sh", "-c", &format!("echo ran; sleep 1000 # {token}")]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    b.edit(|c| {
        c["hooks"] = json!({
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}],
        });
    })
    .expect("edit");
    let o = rt.create(&b, &id, &[]);
    assert_eq!(o.code, 0, "create: {}", o.stderr);
    let o = rt.run(&["start", &id]);
    assert_ne!(
        o.code, 0,
        "start must fail when a startContainer hook fails"
    );
    assert!(o.stderr.contains("hooks.startContainer[0]"), "{}", o.stderr);
    rt.wait_status(&id, "stopped");
    assert!(
        !container_output(&b, &id).contains("ran"),
        "the user's program must not run after a failed startContainer hook"
    );
    let o = rt.run(&["delete", &id]);
    assert_eq!(o.code, 0, "delete: {}", o.stderr);
    assert_no_leftovers(&rt, &id, &cg, &b.dir, &token);
}

#[test]
fn failing_poststart_only_warns() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("hookpost");
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    b.edit(|c| {
        c["hooks"] = json!({
            "poststart": [{"path": "/bin/false"}],
        });
    })
    .expect("edit");
    let o = rt.create(&b, &id, &[]);
    assert_eq!(o.code, 0, "create: {}", o.stderr);
    let o = rt.run(&["start", &id]);
    assert_eq!(
        o.code, 0,
        "a failing poststart hook must not fail start: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains("hooks.poststart[0]"),
        "the failure is warned about: {}",
        o.stderr
    );
    assert_eq!(rt.status(&id), "running");
    let o = rt.run(&["delete", "--force", &id]);
    assert_eq!(o.code, 0, "delete: {}", o.stderr);
}

#[test]
fn hook_timeout_fails_create() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("hooktime");
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    b.edit(|c| {
        c["hooks"] = json!({
            "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "100"], "timeout": 1}],
        });
    })
    .expect("edit");
    let o = rt.create(&b, &id, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("hooks.createRuntime[0]") && o.stderr.contains("timed out"),
        "{}",
        o.stderr
    );
    assert_no_leftovers(&rt, &id, &cg, &b.dir, "");
}
