//! The lifecycle of runtime.md through berth-oci's runc-style commands.

mod common;
use common::*;

#[test]
fn create_start_kill_delete() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("life");
    let token = format!("tok{id}");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        &format!("echo started; exec sleep 1000 # {token}"),
    ])
    .expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    let pid_file = b.dir.join("pid");
    let o = rt.create(&b, &id, &["--pid-file", pid_file.to_str().expect("utf8")]);
    assert_eq!(o.code, 0, "create: {}", o.stderr);

    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("pid file"),
        pid.to_string()
    );
    assert_eq!(st["id"], id.as_str());
    assert_eq!(
        st["bundle"],
        b.dir.canonicalize().expect("canon").to_str().expect("utf8")
    );
    assert!(st["ociVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    // The user's program must not have run before start.
    assert!(!container_output(&b, &id).contains("started"));

    let o = rt.run(&["start", &id]);
    assert_eq!(o.code, 0, "start: {}", o.stderr);
    assert_eq!(rt.status(&id), "running");
    for _ in 0..200 {
        if container_output(&b, &id).contains("started") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(container_output(&b, &id).contains("started"));
    let o = rt.run(&["start", &id]);
    assert_ne!(o.code, 0, "a second start must fail");

    let o = rt.run(&["delete", &id]);
    assert_ne!(
        o.code, 0,
        "delete of a running container without --force must fail"
    );
    assert!(o.stderr.contains("not stopped"), "{}", o.stderr);

    let o = rt.run(&["kill", &id, "KILL"]);
    assert_eq!(o.code, 0, "kill: {}", o.stderr);
    rt.wait_status(&id, "stopped");
    assert_eq!(rt.state(&id)["pid"], 0);
    let o = rt.run(&["kill", &id, "KILL"]);
    assert_ne!(o.code, 0, "kill of a stopped container must fail");

    let o = rt.run(&["delete", &id]);
    assert_eq!(o.code, 0, "delete: {}", o.stderr);
    let o = rt.run(&["state", &id]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);
    assert_no_leftovers(&rt, &id, &cg, &b.dir, &token);
}

#[test]
fn run_returns_exit_code_and_signal_status() {
    require_root!();
    let rt = Runtime::berth();
    let b = Bundle::busybox(&["sh", "-c", "exit 3"]).expect("bundle");
    assert_eq!(rt.run_bundle(&b, &unique_id("exit")).code, 3);
    // Outside a pid namespace the shell is not pid 1, which ignores SIGKILL from inside.
    let mut b = Bundle::busybox(&["sh", "-c", "kill -9 $$"]).expect("bundle");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("array")
            .retain(|n| n["type"] != "pid")
    })
    .expect("edit");
    assert_eq!(rt.run_bundle(&b, &unique_id("sig")).code, 137);
    let b = Bundle::busybox(&["true"]).expect("bundle");
    let id = unique_id("true");
    assert_eq!(rt.run_bundle(&b, &id).code, 0);
    assert!(
        !rt.root.path().join(&id).exists(),
        "foreground run deletes the container"
    );
}

#[test]
fn foreground_run_forwards_signals() {
    require_root!();
    let rt = Runtime::berth();
    // pid 1 ignores signals it has no handler for, so install one that exits 42.
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done",
    ])
    .expect("bundle");
    let id = unique_id("fwd");
    let mut child = rt
        .cmd(&["run", "--bundle", b.dir.to_str().expect("utf8"), &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).expect("ready line");
    assert_eq!(&buf, b"ready\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(42));
}

#[test]
fn run_detached_then_list() {
    require_root!();
    let rt = Runtime::berth();
    let b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    let id = unique_id("det");
    let o = rt.run_detached(&b, &id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(rt.status(&id), "running");
    let o = rt.run(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "running");
    assert_eq!(list[0]["owner"], "root");
    let o = rt.run(&["list"]);
    assert!(
        o.stdout.starts_with("ID ")
            && o.stdout
                .lines()
                .next()
                .is_some_and(|l| l.contains(" PID ") && l.ends_with("OWNER")),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains(&id));
    let o = rt.run(&["list", "-q"]);
    assert_eq!(o.stdout.trim(), id);
    let o = rt.run(&["delete", "--force", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(rt.run(&["list", "--format", "json"]).stdout.trim(), "null");
}

#[test]
fn kill_accepts_names_and_numbers_and_all() {
    require_root!();
    let rt = Runtime::berth();
    let b =
        Bundle::busybox(&["sh", "-c", "trap 'exit 7' USR1; sleep 1000 & wait"]).expect("bundle");
    let id = unique_id("kill");
    assert_eq!(rt.run_detached(&b, &id).code, 0);
    assert_ne!(rt.run(&["kill", &id, "NOSUCHSIG"]).code, 0);
    assert_eq!(rt.run(&["kill", &id, "SIGUSR1"]).code, 0);
    rt.wait_status(&id, "stopped");
    assert_eq!(rt.run(&["delete", &id]).code, 0);

    let b = Bundle::busybox(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]).expect("bundle");
    let id = unique_id("killall");
    assert_eq!(rt.run_detached(&b, &id).code, 0);
    assert_eq!(rt.run(&["kill", "--all", &id, "9"]).code, 0);
    rt.wait_status(&id, "stopped");
    assert_eq!(rt.run(&["delete", &id]).code, 0);
}

#[test]
fn delete_force_of_unknown_id_succeeds() {
    require_root!();
    let rt = Runtime::berth();
    assert_eq!(rt.run(&["delete", "--force", "nope"]).code, 0);
    let o = rt.run(&["delete", "nope"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("does not exist"));
}

#[test]
fn spec_and_features() {
    let dir = tempfile::tempdir().expect("tmp");
    let rt = Runtime::berth();
    let o = rt.run(&["spec", "--bundle", dir.path().to_str().expect("utf8")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_ne!(
        rt.run(&["spec", "--bundle", dir.path().to_str().expect("utf8")])
            .code,
        0,
        "spec must not overwrite"
    );
    let o = rt.run(&["features"]);
    let f: serde_json::Value = serde_json::from_str(&o.stdout).expect("features JSON");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.len() == 8));
    assert_eq!(f["ociVersionMax"], "1.2.0");
    assert_eq!(f["hooks"].as_array().map(Vec::len), Some(6));
    // What the document claims must work: a profile with every listed action (each on
    // a syscall `true` never makes) and every supported flag runs.
    let seccomp = &f["linux"]["seccomp"];
    assert_eq!(seccomp["enabled"], true);
    let unused = [
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "kexec_load",
        "init_module",
        "delete_module",
        "pivot_root",
        "quotactl",
    ];
    let actions = seccomp["actions"].as_array().expect("actions");
    let syscalls: Vec<serde_json::Value> = actions
        .iter()
        .zip(unused.iter())
        .filter(|(a, _)| *a != "SCMP_ACT_ALLOW")
        .map(|(a, s)| serde_json::json!({"names": [s], "action": a}))
        .collect();
    assert_eq!(
        syscalls.len(),
        actions.len() - 1,
        "more actions than test syscalls"
    );
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    let flags = seccomp["supportedFlags"].clone();
    let sock = b.dir.join("notify.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let s = sock.to_str().expect("utf8").to_string();
    b.edit(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": flags,
            "listenerPath": s,
            "syscalls": syscalls,
        });
    })
    .expect("edit");
    let accept = std::thread::spawn(move || {
        let stream = accept_within(&listener, 30);
        receive_fd_and_data(&stream)
    });
    let o = rt.run_bundle(&b, &unique_id("feat"));
    if o.code == 0 {
        let _ = accept.join();
    }
    assert_eq!(
        o.code, 0,
        "a profile using every advertised action and flag: {}",
        o.stderr
    );
}
