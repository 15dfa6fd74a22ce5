//! `berth run`, `ps` and `rm` on real containers from a real (local) registry.

mod common;

use common::host::Host;
use std::process::Command;

#[test]
fn run_uses_the_image_config_and_returns_the_exit_code() {
    let Some(h) = Host::new() else { return };
    let o = h.run(
        &[],
        &["sh", "-c", "echo $FROM_IMAGE $HOSTNAME; pwd; exit 7"],
    );
    assert_eq!(o.code, 7, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("yes "), "{}", o.stdout);
    assert_eq!(lines[1], "/work");
    // Flags over the image: env, workdir, user by name (groups from /etc/group), hostname.
    let o = h.run(
        &[
            "-e",
            "FROM_IMAGE=no",
            "-w",
            "/home",
            "-u",
            "app",
            "--hostname",
            "box",
        ],
        &["sh", "-c", "echo $FROM_IMAGE; pwd; id; hostname"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "no\n/home\nuid=1000(app) gid=1000(app) groups=50(staff)\nbox\n"
    );
    let o = h.run(&["-u", "nobody-here"], &["true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nobody-here"), "{}", o.stderr);
    h.assert_clean();
}

#[test]
fn security_defaults_and_their_flags() {
    let Some(h) = Host::new() else { return };
    // docker's default capability set: no SYS_ADMIN, so no mount.
    let o = h.run(
        &[],
        &[
            "sh",
            "-c",
            "grep CapBnd /proc/self/status; mount -t tmpfs t /mnt 2>&1; echo rc=$?",
        ],
    );
    assert!(
        o.stdout.contains("CapBnd:\t00000000a80425fb"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("rc=1") || o.stdout.contains("rc=255"),
        "{}",
        o.stdout
    );
    let o = h.run(
        &["--cap-drop", "ALL", "--cap-add", "chown"],
        &["grep", "CapBnd", "/proc/self/status"],
    );
    assert_eq!(o.stdout, "CapBnd:\t0000000000000001\n", "{}", o.stderr);
    // /proc is masked where docker masks it; the root fs can be read-only.
    let o = h.run(
        &["--read-only"],
        &[
            "sh",
            "-c",
            "cat /proc/kcore | wc -c; touch /x 2>/dev/null || echo ro",
        ],
    );
    assert_eq!(o.stdout, "0\nro\n", "{}", o.stderr);
    let o = h.run(
        &["--security-opt", "no-new-privileges"],
        &["grep", "NoNewPrivs", "/proc/self/status"],
    );
    assert_eq!(o.stdout, "NoNewPrivs:\t1\n");
    let o = h.run(
        &["--privileged"],
        &["sh", "-c", "mount -t tmpfs t /tmp && echo mounted"],
    );
    assert_eq!(o.stdout, "mounted\n", "{}", o.stderr);
    h.assert_clean();
}

#[test]
fn mounts_limits_and_networks() {
    let Some(h) = Host::new() else { return };
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("in"), "from host").expect("write");
    let v = format!("{}:/data", data.path().display());
    let o = h.run(
        &["-v", &v, "--tmpfs", "/scratch"],
        &[
            "sh",
            "-c",
            "cat /data/in; echo out > /data/out; grep -c ' /scratch tmpfs' /proc/mounts",
        ],
    );
    assert_eq!(o.stdout, "from host1\n", "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string(data.path().join("out")).expect("written through"),
        "out\n"
    );
    let vro = format!("{v}:ro");
    let o = h.run(
        &["-v", &vro],
        &["sh", "-c", "echo x > /data/y 2>/dev/null || echo denied"],
    );
    assert_eq!(o.stdout, "denied\n");
    // Limits land in the container's cgroup, which it sees read-only at /sys/fs/cgroup.
    let o = h.run(&["-m", "64m", "--pids-limit", "50"], &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"]);
    assert_eq!(o.stdout, "67108864\n50\n", "{}", o.stderr);
    // --network none: loopback only, and up (as with docker); host: the host's interfaces.
    let o = h.run(
        &["--network", "none"],
        &[
            "sh",
            "-c",
            "ls /sys/class/net; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-up",
        ],
    );
    assert_eq!(o.stdout, "lo\nlo-up\n", "{}", o.stderr);
    // The default: the bridge network `berth` (run_network.rs tests it in depth).
    let o = h.run(&[], &["sh", "-c", "ls /sys/class/net"]);
    assert_eq!(o.stdout, "eth0\nlo\n", "{}", o.stderr);
    let o = h.run(
        &["--network", "host"],
        &["sh", "-c", "ls /sys/class/net | wc -l"],
    );
    assert_ne!(o.stdout, "1\n");
    h.assert_clean();
}

#[test]
fn names_ps_rm_and_bad_input() {
    let Some(h) = Host::new() else { return };
    let o = h.berth(&["run", "--name", "keep", &h.image, "sh", "-c", "exit 2"]);
    assert_eq!(o.code, 2);
    let o = h.berth(&["run", "--name", "keep", &h.image, "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("already in use"), "{}", o.stderr);
    let o = h.berth(&["ps", "-a", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["exit_code"].as_i64()),
        (Some("keep"), Some(2))
    );
    assert_eq!(h.berth(&["ps", "-q"]).stdout, "", "not running");
    assert_eq!(h.berth(&["rm", "keep"]).code, 0);
    assert_ne!(h.berth(&["rm", "keep"]).code, 0);
    for bad in [
        vec!["-m", "10x"],
        vec!["-v", "./relative:/x"],
        vec!["--network", "bridge9"],
        vec!["--cap-add", "NOPE"],
    ] {
        let mut flags = bad.clone();
        flags.push("--name");
        flags.push("bad");
        let o = h.run(&flags, &["true"]);
        assert_ne!(o.code, 0, "{bad:?} accepted");
        assert!(!o.stderr.is_empty());
    }
    let o = h.berth(&["run", "--pull", "never", "127.0.0.1:1/none:v1", "true"]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    h.assert_clean();
}

#[test]
fn a_killed_cli_leaves_state_that_rm_f_cleans() {
    let Some(h) = Host::new() else { return };
    let mut c = h
        .cmd()
        .args(["run", "--name", "orphan", &h.image, "sleep", "1000"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until it runs, then kill the CLI.
    for _ in 0..100 {
        let o = h.berth(&["ps", "-q"]);
        if !o.stdout.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
    let o = h.berth(&["ps", "-a", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v[0]["name"], "orphan", "{}", o.stdout);
    let o = h.berth(&["rm", "orphan"]);
    assert_ne!(o.code, 0, "still running: rm needs -f");
    let o = h.berth(&["rm", "-f", "orphan"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    h.assert_clean();
    let procs = Command::new("pgrep")
        .args(["-f", "sleep 1000"])
        .output()
        .expect("pgrep");
    assert!(procs.stdout.is_empty(), "the container's process is gone");
}

/// A foreground `run --rm` cleans up in the CLI and leaves the deleting of the
/// container's directories to its monitor (the trash): when the CLI returns the
/// container is gone everywhere anything looks, and the trash empties soon after.
/// `system prune` empties what a killed process left there.
#[test]
fn rm_leaves_nothing_and_the_trash_empties() {
    let Some(h) = Host::new() else { return };
    let root = h.dir.path().join("root");
    let o = h.run(
        &["--name", "gone", "-v", "/scratch"],
        &["sh", "-c", "echo x > /scratch/f; echo hi"],
    );
    assert_eq!((o.code, o.stdout.as_str()), (0, "hi\n"), "{}", o.stderr);
    h.assert_clean();
    assert_eq!(
        h.berth(&["volume", "ls", "-q"]).stdout,
        "",
        "anonymous volume left"
    );
    for d in [root.join("containers"), h.runroot().join("containers")] {
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(left, Vec::<std::ffi::OsString>::new(), "{d:?}");
    }
    // The name is free at once.
    let o = h.run(&["--name", "gone"], &["true"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let trash = [root.join("trash"), h.runroot().join("trash")];
    let count = || -> usize {
        trash
            .iter()
            .map(|d| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0))
            .sum()
    };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count() > 0 && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(count(), 0, "the monitors left their trash");
    // Leftovers of a killed process: prune takes them.
    std::fs::create_dir_all(trash[0].join("x.00/upper/etc")).expect("mkdir");
    std::fs::write(trash[0].join("x.00/upper/etc/f"), b"data").expect("write");
    std::fs::create_dir_all(trash[1].join("y.00")).expect("mkdir");
    let o = h.berth(&["system", "prune", "-f"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(count(), 0, "system prune left the trash");
}
