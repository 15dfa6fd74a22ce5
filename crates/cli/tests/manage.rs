//! pause/resume, ps, update and events on running containers, checked against what
//! the kernel reports for the container's cgroup and processes.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

fn running(
    rt: &Runtime,
    prefix: &str,
    args: &[&str],
    edit: impl FnOnce(&mut serde_json::Value),
) -> (Bundle, String, String) {
    let id = unique_id(prefix);
    let mut b = Bundle::busybox(args).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    b.edit(edit).expect("edit");
    let o = rt.run_detached(&b, &id);
    assert_eq!(o.code, 0, "run -d: {}", o.stderr);
    (b, id, cg)
}

/// The host directory of the container's cgroup that has `file`.
fn cgroup_file(cg: &str, files: &[&str]) -> std::path::PathBuf {
    for f in files {
        for d in cgroup_dirs(cg) {
            if d.join(f).exists() {
                return d.join(f);
            }
        }
    }
    panic!("no cgroup dir of {cg} has any of {files:?}");
}

/// The container's loop counter. The shell truncates and rewrites the file, so a read
/// can land in between and see nothing: such reads are retried (a frozen writer may
/// leave it empty for good, which reads as 0).
fn counter(pid: i64) -> u64 {
    for _ in 0..50 {
        let v = std::fs::read_to_string(format!("/proc/{pid}/root/dev/shm/c"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        if v > 0 {
            return v;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    0
}

#[test]
fn pause_freezes_and_resume_thaws() {
    require_root!();
    let rt = Runtime::berth();
    let (_b, id, cg) = running(
        &rt,
        "pause",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/c; done",
        ],
        |_| {},
    );
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(pid) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rt.run(&["pause", &id]).code, 0);
    assert_eq!(rt.status(&id), "paused");
    let state = std::fs::read_to_string(cgroup_file(&cg, &["freezer.state", "cgroup.freeze"]))
        .expect("freezer");
    assert!(state.trim() == "FROZEN" || state.trim() == "1", "{state}");
    let a = counter(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(pid), a, "a paused container must not run");
    let o = rt.run(&["pause", &id]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("not running"), "{}", o.stderr);
    let o = rt.run(&["exec", &id, "true"]);
    assert!(
        o.stderr.contains("paused"),
        "exec into a paused container is refused: {}",
        o.stderr
    );

    assert_eq!(rt.run(&["resume", &id]).code, 0);
    assert_eq!(rt.status(&id), "running");
    // Wait for a larger value rather than sampling once: the machine may be busy.
    let b = counter(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = counter(pid);
    while now <= b && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = counter(pid);
    }
    assert!(
        now > b,
        "a resumed container runs again (counter {b} then {now})"
    );
    let o = rt.run(&["resume", &id]);
    assert!(o.stderr.contains("not paused"), "{}", o.stderr);

    // A paused container can still be force-deleted (it is thawed so SIGKILL lands).
    assert_eq!(rt.run(&["pause", &id]).code, 0);
    let o = rt.run(&["delete", "--force", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for d in cgroup_dirs(&cg) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn ps_lists_the_containers_processes() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id, _) = running(&rt, "ps", &["sleep", "1000"], |_| {});
    let init = rt.state(&id)["pid"].as_i64().expect("pid");
    let o = rt.detached(&b, "ps-exec", &["exec", "--detach", &id, "sleep", "999"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = rt.run(&["ps", "--format", "json", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let pids: Vec<i64> = serde_json::from_str(&o.stdout).expect("json array");
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&init));
    let o = rt.run(&["ps", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].contains("PID"), "{}", o.stdout);
    assert_eq!(lines.len(), 3, "header and two processes: {}", o.stdout);
    assert!(
        o.stdout.contains("sleep 999") && o.stdout.contains("sleep 1000"),
        "{}",
        o.stdout
    );
}

#[test]
fn update_changes_limits_live() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id, cg) = running(&rt, "upd", &["sleep", "1000"], |_| {});
    let o = rt.run(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "42",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let read = |files: &[&str]| {
        std::fs::read_to_string(cgroup_file(&cg, files))
            .expect("read")
            .trim()
            .to_string()
    };
    assert_eq!(read(&["memory.limit_in_bytes", "memory.max"]), "67108864");
    assert_eq!(read(&["pids.max"]), "42");
    let quota = read(&["cpu.cfs_quota_us", "cpu.max"]);
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    let res = b.dir.join("resources.json");
    std::fs::write(
        &res,
        r#"{"pids": {"limit": 7}, "memory": {"limit": 33554432}}"#,
    )
    .expect("write");
    let o = rt.run(&["update", "--resources", res.to_str().expect("utf8"), &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(read(&["pids.max"]), "7");
    assert_eq!(read(&["memory.limit_in_bytes", "memory.max"]), "33554432");
    std::fs::write(&res, r#"{"pids": {"limit": "many"}}"#).expect("write");
    let o = rt.run(&["update", "--resources", res.to_str().expect("utf8"), &id]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("pids.limit"), "{}", o.stderr);
    let o = rt.run(&["update", "--memory", "lots", &id]);
    assert!(o.stderr.contains("--memory lots"), "{}", o.stderr);
}

#[test]
fn events_stats_and_oom() {
    require_root!();
    let rt = Runtime::berth();
    let (_b, id, _) = running(&rt, "ev", &["sleep", "1000"], |c| {
        c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 99});
    });
    let o = rt.run(&["events", "--stats", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let ev: serde_json::Value = serde_json::from_str(o.stdout.trim()).expect("one JSON event");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert_eq!(ev["data"]["pids"]["limit"], 99);
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );

    // A container that runs out of memory: the stream reports the OOM kill.
    let (_b2, hog, _) = running(
        &rt,
        "oom",
        &[
            "sh",
            "-c",
            "sleep 1; a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done",
        ],
        |c| {
            c["linux"]["resources"]["memory"] =
                serde_json::json!({"limit": 16777216, "swap": 16777216});
        },
    );
    let mut child = rt
        .cmd(&["events", "--interval", "1s", &hog])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("events");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut saw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut oom = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(l) => {
                let v: serde_json::Value = serde_json::from_str(&l).expect("JSON line");
                if v["type"] == "oom" {
                    oom = true;
                    break;
                }
                saw.push(v["type"].to_string());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(oom, "no oom event within 30 s; saw {saw:?}");
}
