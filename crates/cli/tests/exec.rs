//! `exec`: a process in a running container, in its namespaces and cgroup, with the
//! credentials and seccomp filter the config and flags give it.

mod common;
use common::*;

/// A running container (`sleep`) for exec tests.
fn running(
    rt: &Runtime,
    prefix: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (Bundle, String) {
    let id = unique_id(prefix);
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    unique_cgroup(&mut b, &id);
    b.edit(edit).expect("edit");
    let o = rt.run_detached(&b, &id);
    assert_eq!(o.code, 0, "run -d: {}", o.stderr);
    (b, id)
}

fn exec(rt: &Runtime, id: &str, args: &[&str]) -> Out {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    let _ = id;
    rt.run(&a)
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup() {
    require_root!();
    let rt = Runtime::berth();
    let (_b, id) = running(&rt, "exns", |_| {});
    let script = "for n in mnt pid net ipc uts cgroup; do \
                  [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] || echo differs:$n; done; \
                  [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] || echo differs:cgroup-membership; \
                  echo pid=$$ host=$(hostname); cat /proc/1/cmdline | tr '\\0' ' '; echo";
    let o = exec(&rt, &id, &[&id, "sh", "-c", script]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stdout.contains("differs"), "{}", o.stdout);
    assert!(o.stdout.contains("host=berth-test"), "{}", o.stdout);
    assert!(
        o.stdout.contains("sleep 1000"),
        "pid 1 must be the container's init: {}",
        o.stdout
    );
    assert!(!o.stdout.contains("pid=1 "), "{}", o.stdout);
    // The host's view: the exec'd process was in the container's cgroup directory.
    let o = exec(&rt, &id, &[&id, "cat", "/proc/self/cgroup"]);
    assert!(
        o.stdout.contains(&format!("/berth-test/{id}")),
        "{}",
        o.stdout
    );
}

#[test]
fn exit_status_user_env_cwd_and_capabilities() {
    require_root!();
    let rt = Runtime::berth();
    let (_b, id) = running(&rt, "excred", |_| {});
    assert_eq!(exec(&rt, &id, &[&id, "sh", "-c", "exit 7"]).code, 7);
    assert_eq!(exec(&rt, &id, &[&id, "sh", "-c", "kill -9 $$"]).code, 137);
    let o = exec(
        &rt,
        &id,
        &[
            "--user",
            "1000:1001",
            "--additional-gids",
            "5",
            "--env",
            "FOO=bar",
            "--cwd",
            "/tmp",
            &id,
            "sh",
            "-c",
            "id -u; id -g; id -G; echo $FOO; pwd",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "1000\n1001\n1001 5\nbar\n/tmp\n");
    // Same effective set as the init (the config's), and --cap adds one.
    let capeff = |o: &Out| {
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mine = exec(&rt, &id, &[&id, "cat", "/proc/self/status"]);
    let init = exec(&rt, &id, &[&id, "cat", "/proc/1/status"]);
    assert_eq!(capeff(&mine), capeff(&init));
    let more = exec(
        &rt,
        &id,
        &["--cap", "CAP_SYS_ADMIN", &id, "cat", "/proc/self/status"],
    );
    let bits = |s: String| u64::from_str_radix(&s, 16).expect("hex");
    assert_eq!(bits(capeff(&more)), bits(capeff(&init)) | (1 << 21));
    let o = exec(
        &rt,
        &id,
        &[
            "--no-new-privs",
            &id,
            "grep",
            "NoNewPrivs",
            "/proc/self/status",
        ],
    );
    assert!(o.stdout.contains('1'), "{}", o.stdout);
}

#[test]
fn process_file_detach_and_pid_file() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id) = running(&rt, "exproc", |c| c["root"]["readonly"] = false.into());
    let process = b.dir.join("process.json");
    std::fs::write(
        &process,
        serde_json::json!({
            "args": ["sh", "-c", "echo from-process-file > /tmp/marker; sleep 1000"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "terminal": false
        })
        .to_string(),
    )
    .expect("write");
    let pid_file = b.dir.join("exec.pid");
    // The detached process keeps its stdio: a file, not a pipe the test would wait on.
    let o = rt.detached(
        &b,
        "exec-detached",
        &[
            "exec",
            "--process",
            process.to_str().expect("utf8"),
            "--detach",
            "--pid-file",
            pid_file.to_str().expect("utf8"),
            &id,
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("pid");
    let init = rt.state(&id)["pid"].as_i64().expect("pid");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("the exec'd process runs"),
        std::fs::read_link(format!("/proc/{init}/ns/pid")).expect("init"),
        "--pid-file holds the host pid of a process in the container's pid namespace"
    );
    for _ in 0..200 {
        if b.rootfs().join("tmp/marker").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(b.rootfs().join("tmp/marker").exists());
    // kill --all reaches the exec'd process too (it is in the container's cgroup).
    assert_eq!(rt.run(&["kill", "--all", &id, "KILL"]).code, 0);
    rt.wait_status(&id, "stopped");
}

#[test]
fn bad_process_file_names_the_field() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id) = running(&rt, "exbad", |_| {});
    let process = b.dir.join("process.json");
    std::fs::write(
        &process,
        r#"{"args": ["true"], "cwd": "/", "user": {"uid": "root"}}"#,
    )
    .expect("write");
    let o = exec(
        &rt,
        &id,
        &["--process", process.to_str().expect("utf8"), &id],
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("user.uid"), "{}", o.stderr);
}

#[test]
fn seccomp_of_the_container_applies_to_exec() {
    require_root!();
    let rt = Runtime::berth();
    let (_b, id) = running(&rt, "exsec", |c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        });
    });
    let o = exec(&rt, &id, &[&id, "mkdir", "/tmp/x"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("Function not implemented"),
        "{}",
        o.stderr
    );
}

#[test]
fn errors_name_the_problem() {
    require_root!();
    let rt = Runtime::berth();
    let (_b, id) = running(&rt, "exerr", |_| {});
    let o = exec(&rt, &id, &[&id, "no-such-program"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("no-such-program") && o.stderr.contains("not found"),
        "{}",
        o.stderr
    );
    let o = exec(&rt, &id, &[&id]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no command"), "{}", o.stderr);
    let o = exec(&rt, &id, &["--tty", &id, "true"]);
    assert!(o.stderr.contains("--console-socket"), "{}", o.stderr);
    assert_eq!(rt.run(&["kill", &id, "KILL"]).code, 0);
    rt.wait_status(&id, "stopped");
    let o = exec(&rt, &id, &[&id, "true"]);
    assert!(
        o.stderr.contains("cannot exec in a stopped container"),
        "{}",
        o.stderr
    );
    let o = exec(&rt, "nope", &["nope", "true"]);
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);
}

#[test]
fn no_host_fd_reaches_the_exec_process() {
    require_root!();
    let rt = Runtime::berth();
    let (_b, id) = running(&rt, "exfd", |_| {});
    let leak = std::fs::File::open("/etc/hostname").expect("open");
    rustix::io::fcntl_setfd(&leak, rustix::io::FdFlags::empty()).expect("clear cloexec");
    let o = exec(&rt, &id, &[&id, "ls", "/proc/self/fd"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let fds: Vec<i32> = o
        .stdout
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    // ls opens one fd (3) for the directory it lists.
    assert!(fds.iter().all(|&f| f <= 3), "unexpected fds {fds:?}");
    // cwd and root are the container's, not a host directory (CVE-2024-21626 class).
    let o = exec(
        &rt,
        &id,
        &[
            &id,
            "sh",
            "-c",
            "readlink /proc/self/cwd; readlink /proc/self/root",
        ],
    );
    assert_eq!(o.stdout, "/\n/\n");
    drop(leak);
}

#[test]
fn tty_exec_gets_a_pty_from_the_containers_devpts() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id) = running(&rt, "extty", |_| {});
    let sock = b.dir.join("exec-console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let mut cmd = rt.cmd(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.to_str().expect("utf8"),
        &id,
        "sh",
        "-c",
        "test -t 0 && echo is-a-tty; readlink /proc/self/fd/0",
    ]);
    let child = std::thread::spawn(move || cmd.output().expect("exec"));
    let stream = accept_within(&listener, 30);
    let master = receive_fd(&stream);
    let out = child.join().expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read_pty_until(master, "/dev/pts/");
    assert!(text.contains("is-a-tty"), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
}

#[test]
fn exec_cpu_affinity_final_applies() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id) = running(&rt, "exaff", |_| {});
    let process = b.dir.join("aff.json");
    std::fs::write(
        &process,
        serde_json::json!({
            "args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": {"initial": "0", "final": "1"}
        })
        .to_string(),
    )
    .expect("write");
    let o = exec(
        &rt,
        &id,
        &["--process", process.to_str().expect("utf8"), &id],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.trim_end().ends_with("\t1"), "{}", o.stdout);
}

#[test]
fn exec_into_a_sub_cgroup() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("exsub");
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    assert_eq!(rt.run_detached(&b, &id).code, 0);
    // The sub-cgroup exists in every hierarchy (runc, too, needs it to exist).
    for d in cgroup_dirs(&cg).into_iter().filter(|d| d.is_dir()) {
        std::fs::create_dir(d.join("sub")).expect("mkdir sub");
        // A new v1 cpuset cgroup starts empty and takes no tasks until filled.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(d.join(f)) {
                std::fs::write(d.join("sub").join(f), v.trim()).expect("cpuset");
            }
        }
    }
    let o = rt.run(&["exec", "--cgroup", "sub", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.lines().all(|l| l.ends_with("/sub")),
        "every hierarchy: {}",
        o.stdout
    );
    // Only one controller's hierarchy (v1), the rest stay in the container's own.
    if std::path::Path::new("/sys/fs/cgroup/pids").is_dir() {
        let o = rt.run(&[
            "exec",
            "--cgroup",
            "pids:sub",
            &id,
            "cat",
            "/proc/self/cgroup",
        ]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        for l in o.stdout.lines() {
            assert_eq!(l.contains(":pids:"), l.ends_with("/sub"), "{}", o.stdout);
        }
    }
    let o = rt.run(&["exec", "--cgroup", "../escape", &id, "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("must be inside"), "{}", o.stderr);
    // "/" is the container's own cgroup, as with runc.
    let o = rt.run(&["exec", "--cgroup", "/", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stdout.contains("/sub"), "{}", o.stdout);
    let o = rt.run(&["exec", "--cgroup", "missing", &id, "true"]);
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);
    // delete must remove the sub-cgroups' parent: empty the subs first, as runc's
    // users do; here the exec'd processes have exited, so rmdir them.
    for d in cgroup_dirs(&cg).into_iter().filter(|d| d.is_dir()) {
        let _ = std::fs::remove_dir(d.join("sub"));
    }
    assert_eq!(rt.run(&["delete", "--force", &id]).code, 0);
}

#[test]
fn exec_preserve_fds_passes_exactly_those() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id) = running(&rt, "expfd", |_| {});
    let file = b.dir.join("payload");
    std::fs::write(&file, "preserved\n").expect("write");
    let root = rt.root.path().to_str().expect("utf8");
    let script = "cat <&3; ls /proc/self/fd";
    assert_fd3_preserved(
        &[
            "--root",
            root,
            "exec",
            "--preserve-fds",
            "1",
            &id,
            "sh",
            "-c",
            script,
        ],
        &file,
    );
}
