//! End-to-end runs with real clients and a real cgroup v2 kernel: containerd's runc v2
//! shim and podman driving berth-oci, and a qemu VM booting Debian's kernel with pure
//! cgroup v2.
//! Each skips with a printed reason only where its tools are missing.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("repo root")
}

#[test]
fn containerd_runs_and_kills_through_berth_oci() {
    require_root!();
    if !Path::new("/usr/bin/containerd").exists() || !Path::new("/usr/bin/ctr").exists() {
        eprintln!("SKIP: containerd not installed");
        return;
    }
    let o: Out = Command::new(repo().join("tests/containerd/run.sh"))
        .arg(berth_oci())
        .output()
        .expect("run.sh")
        .into();
    assert_eq!(
        o.code, 0,
        "containerd e2e failed:\n{}\n{}",
        o.stdout, o.stderr
    );
    assert!(o.stdout.contains(" 0 failed"), "{}", o.stdout);
}

/// podman (`--runtime berth-oci`): run, exec, exec -t, pause/unpause, stop, rm.
#[test]
fn podman_runs_execs_stops_and_removes_through_berth_oci() {
    require_root!();
    if !Path::new("/usr/bin/podman").exists() {
        eprintln!("SKIP: podman not installed");
        return;
    }
    let o: Out = Command::new(repo().join("tests/podman/run.sh"))
        .arg(berth_oci())
        .output()
        .expect("run.sh")
        .into();
    assert_eq!(o.code, 0, "podman e2e failed:\n{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains(" 0 failed"), "{}", o.stdout);
}

/// Boots the cgroup v2 VM with berth-oci at /berth/berth-oci and the bundle at
/// /data/bundle, runs `script` there, and returns what it printed.
fn run_in_vm(b: &Bundle, script: &str) -> String {
    let o: Out = Command::new(repo().join("tests/vm/run-v2.sh"))
        .args(["--timeout", "300", "--add"])
        .arg(format!("{}:/berth/berth-oci", berth_oci()))
        .arg("--add")
        .arg(format!("{}:/data/bundle", b.dir.display()))
        .args(["--", "sh", "-c", script])
        .output()
        .expect("run-v2.sh")
        .into();
    assert_eq!(o.code, 0, "VM run failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout.replace('\r', "")
}

fn vm_available() -> bool {
    let kernel = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"));
    kernel && Path::new("/usr/bin/qemu-system-x86_64").exists()
}

/// The resources the v1 tests check, on a pure v2 host: memory.max, pids.max, cpu.max,
/// cpu.weight, the eBPF device program, the init cloned straight into its cgroup, and
/// cleanup of the cgroup on delete.
#[test]
fn cgroup_v2_in_a_vm() {
    require_root!();
    if !vm_available() {
        eprintln!("SKIP: qemu-system-x86 or a Debian kernel (linux-image-amd64) is missing");
        return;
    }
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight; \
         echo x > /dev/null && echo null-ok; head -c1 /dev/fuse 2>&1; echo pid=$$",
    ])
    .expect("bundle");
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = "/berth-test/v2".into();
        c["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 42},
            "cpu": {"quota": 50000, "period": 100000, "shares": 1024},
            "devices": [{"allow": false, "access": "rwm"}]
        });
        c["linux"]["devices"] =
            serde_json::json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .push(serde_json::json!({"type": "cgroup"}));
    })
    .expect("edit");
    // The debug log says whether the init was cloned into its cgroup (CLONE_INTO_CGROUP)
    // rather than moved in afterwards.
    let script = "berth-oci --debug --log /tmp/oci.log --root /tmp/state run --bundle /data/bundle v2test; \
                  echo rc=$?; grep -q 'init born in its cgroup' /tmp/oci.log && echo born-in-cgroup; \
                  test -e /sys/fs/cgroup/berth-test/v2 && echo cgroup-left || echo cgroup-gone";
    let out = run_in_vm(&b, script);
    for want in [
        "67108864\n42\n50000 100000\n39\n",
        "null-ok",
        "Operation not permitted",
        "pid=1",
        "rc=0",
        "born-in-cgroup",
        "cgroup-gone",
    ] {
        assert!(out.contains(want), "missing {want:?} in VM output:\n{out}");
    }
}

/// pause/resume (cgroup.freeze), update, exec (joining the cgroup and its namespace)
/// and events on a pure cgroup v2 kernel.
#[test]
fn pause_update_exec_events_on_cgroup_v2_in_a_vm() {
    require_root!();
    if !vm_available() {
        eprintln!("SKIP: qemu-system-x86 or a Debian kernel (linux-image-amd64) is missing");
        return;
    }
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = "/berth-test/p2".into();
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("ns")
            .push(serde_json::json!({"type": "cgroup"}));
    })
    .expect("edit");
    let script = "B='berth-oci --root /tmp/s'; CG=/sys/fs/cgroup/berth-test/p2; \
        $B run -d --bundle /data/bundle p2 </dev/null >/tmp/o 2>&1; echo run=$?; \
        $B pause p2; echo freeze=$(cat $CG/cgroup.freeze) $($B state p2 | grep -o '\"status\": \"[a-z]*\"'); \
        $B resume p2; echo freeze=$(cat $CG/cgroup.freeze) $($B state p2 | grep -o '\"status\": \"[a-z]*\"'); \
        $B update --memory 32m --pids-limit 9 p2; echo limits=$(cat $CG/memory.max)/$(cat $CG/pids.max); \
        echo exec=$($B exec p2 cat /proc/self/cgroup); \
        echo procs=$(wc -l < $CG/cgroup.procs); \
        $B events --stats p2 | grep -o '\"pids\":{\"current\":[0-9]*'; \
        $B delete --force p2; echo delete=$?; test -e $CG && echo cgroup-left || echo cgroup-gone";
    let out = run_in_vm(&b, script);
    for want in [
        "run=0",
        "freeze=1 \"status\": \"paused\"",
        "freeze=0 \"status\": \"running\"",
        "limits=33554432/9",
        "exec=0::/",
        "\"pids\":{\"current\":1",
        "delete=0",
        "cgroup-gone",
    ] {
        assert!(out.contains(want), "missing {want:?} in VM output:\n{out}");
    }
}
