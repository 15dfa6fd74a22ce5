//! Container-escape classes, each a regression test that fails on a vulnerable design.
//! (Symlinked mount targets, masked paths and procfs redirects are in `rootfs.rs`.)

mod common;
use common::*;
use std::time::{Duration, Instant};

fn running(rt: &Runtime, prefix: &str) -> (Bundle, String) {
    let id = unique_id(prefix);
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    unique_cgroup(&mut b, &id);
    let o = rt.run_detached(&b, &id);
    assert_eq!(o.code, 0, "run -d: {}", o.stderr);
    (b, id)
}

/// CVE-2019-5736 class, `exec`: the process berth-oci starts in a running container
/// must not be the host's binary while it sets up (a container process that opens its
/// /proc/<pid>/exe, or a `#!/proc/self/exe` program, would get a writable handle on
/// it). The exec'd child is caught mid-setup by exec'ing into a paused container: it
/// freezes as soon as it joins the cgroup, still berth-oci's image.
#[test]
fn exec_child_is_a_sealed_copy_not_the_host_binary() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id) = running(&rt, "esc5736");
    let init = rt.state(&id)["pid"].as_i64().expect("pid");
    assert_eq!(rt.run(&["pause", &id]).code, 0);
    let log = std::fs::File::create(b.dir.join("frozen-exec.log")).expect("log");
    let mut exec = rt
        .cmd(&["exec", "--ignore-paused", "--detach", &id, "true"])
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("exec");
    let deadline = Instant::now() + Duration::from_secs(20);
    let child = loop {
        let o = rt.run(&["ps", "--format", "json", &id]);
        let pids: Vec<i64> = serde_json::from_str(&o.stdout).unwrap_or_default();
        if let Some(p) = pids.into_iter().find(|p| *p != init) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the exec'd process never joined the cgroup"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let exe = std::fs::read_link(format!("/proc/{child}/exe")).expect("exe link");
    let host = std::fs::canonicalize(berth_oci()).expect("binary");
    let _ = exec.kill();
    let _ = exec.wait();
    let _ = rt.run(&["delete", "--force", &id]);
    assert_ne!(exe, host, "the exec'd child is the host's berth-oci binary");
    assert!(
        exe.to_string_lossy().contains("memfd:berth-oci"),
        "expected a sealed memfd copy, got {}",
        exe.display()
    );
}

/// CVE-2019-5736 class, `create`: between create and start the init is still
/// berth-oci's image with the container's credentials. A container process (here one
/// started by `exec`, without CAP_SYS_PTRACE) must not be able to open its exe.
#[test]
fn created_init_is_not_dumpable_to_container_processes() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("escinit");
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    unique_cgroup(&mut b, &id);
    let o = rt.create(&b, &id, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = rt.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/1/exe && echo OPENED; cat /proc/1/environ >/dev/null && echo READ",
    ]);
    assert!(
        !o.stdout.contains("OPENED"),
        "a container process could open the init's exe: {}",
        o.stdout
    );
    assert!(
        !o.stdout.contains("READ"),
        "a container process could read the init's memory-backed files: {}",
        o.stdout
    );
    assert!(o.stderr.contains("Permission denied"), "{}", o.stderr);
}

/// CVE-2024-21626 class: process.cwd through /proc/self/fd/N must never become a
/// directory fd of the runtime's (a host directory) for the container's process.
#[test]
fn cwd_cannot_reach_a_runtime_fd_through_proc() {
    require_root!();
    let rt = Runtime::berth();
    for n in 3..12 {
        let id = unique_id("esccwd");
        let mut b = Bundle::busybox(&["sh", "-c", "pwd; ls"]).expect("bundle");
        b.edit(|c| c["process"]["cwd"] = format!("/proc/self/fd/{n}").into())
            .expect("edit");
        let o = rt.run_bundle(&b, &id);
        assert_ne!(
            o.code, 0,
            "cwd /proc/self/fd/{n} was accepted: {}",
            o.stdout
        );
        assert!(o.stderr.contains("process.cwd"), "{}", o.stderr);
    }
    // With openat2 filtered by the profile (installed before the cwd is entered when
    // noNewPrivileges is false), the chdir fallback must catch it too.
    for n in 3..12 {
        let id = unique_id("esccwds");
        let mut b = Bundle::busybox(&["sh", "-c", "pwd; ls"]).expect("bundle");
        b.edit(|c| {
            c["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
            c["process"]["noNewPrivileges"] = false.into();
            c["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["openat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            });
        })
        .expect("edit");
        let o = rt.run_bundle(&b, &id);
        assert_ne!(
            o.code, 0,
            "cwd /proc/self/fd/{n} was accepted with openat2 filtered: {}",
            o.stdout
        );
    }
    // And for exec.
    let (_b, id) = running(&rt, "esccwdx");
    for n in 3..12 {
        let o = rt.run(&["exec", "--cwd", &format!("/proc/self/fd/{n}"), &id, "pwd"]);
        assert_ne!(
            o.code, 0,
            "exec --cwd /proc/self/fd/{n} was accepted: {}",
            o.stdout
        );
    }
}
