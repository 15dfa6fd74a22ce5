//! cgroups, read back from inside the container and checked for cleanup on the host.

mod common;
use common::*;

fn mode() -> berth_runtime::cgroups::Mode {
    berth_runtime::cgroups::Mode::detect()
}

#[test]
fn memory_pids_cpu_limits_seen_from_inside() {
    require_root!();
    let rt = Runtime::berth();
    let v2 = mode() == berth_runtime::cgroups::Mode::Unified;
    let script = if v2 {
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max"
    } else {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares"
    };
    let id = unique_id("cg");
    let mut b = Bundle::busybox(&["sh", "-c", script]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 42});
        c["linux"]["resources"]["cpu"] =
            serde_json::json!({"quota": 50000, "period": 100000, "shares": 512});
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .push(serde_json::json!({"type": "cgroup"}));
    })
    .expect("edit");
    let o = rt.run_bundle(&b, &id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    if v2 {
        assert_eq!(o.stdout, "67108864\n42\n50000 100000\n");
    } else {
        assert_eq!(o.stdout, "67108864\n42\n50000\n512\n");
    }
    assert_no_leftovers(&rt, &id, &cg, &b.dir, "");
}

#[test]
fn device_cgroup_denies_what_the_spec_denies() {
    require_root!();
    let rt = Runtime::berth();
    let fuse = |allow: bool| {
        let mut b = Bundle::busybox(&[
            "sh",
            "-c",
            "head -c1 /dev/fuse; echo x > /dev/null && echo null-ok",
        ])
        .expect("bundle");
        b.edit(|c| {
            c["linux"]["devices"] = serde_json::json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
            let mut rules = vec![serde_json::json!({"allow": false, "access": "rwm"})];
            if allow {
                rules.push(serde_json::json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
            }
            c["linux"]["resources"]["devices"] = rules.into();
        })
        .expect("edit");
        rt.run_bundle(&b, &unique_id("dev"))
    };
    let denied = fuse(false);
    assert!(
        denied.stdout.contains("null-ok"),
        "default devices stay usable: {}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("Operation not permitted"),
        "{}",
        denied.stderr
    );
    let allowed = fuse(true);
    assert!(
        !allowed.stderr.contains("Operation not permitted"),
        "{}",
        allowed.stderr
    );
}

#[test]
fn relative_cgroups_path_and_cleanup_after_kill() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("cgrel");
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    let rel = format!("berth-test-rel/{id}");
    let r = rel.clone();
    b.edit(|c| c["linux"]["cgroupsPath"] = r.into())
        .expect("edit");
    assert_eq!(rt.run_detached(&b, &id).code, 0);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert!(cgroup.contains(&rel), "{cgroup}");
    assert_eq!(rt.run(&["delete", "--force", &id]).code, 0);
    // pid 1's cgroup is / on this kind of host; relative paths hang below it.
    assert_no_leftovers(&rt, &id, &format!("/{rel}"), &b.dir, "");
}

#[test]
fn unknown_controller_value_fails_and_leaves_nothing() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("cgbad");
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    b.edit(|c| c["linux"]["resources"]["cpu"] = serde_json::json!({"cpus": "999999"}))
        .expect("edit");
    let o = rt.run_bundle(&b, &id);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("linux.resources.cpu.cpus"),
        "{}",
        o.stderr
    );
    assert_no_leftovers(&rt, &id, &cg, &b.dir, "");
}
