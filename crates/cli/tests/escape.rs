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

/// Pauses the container and starts `binary exec --ignore-paused` into it: the exec'd
/// child freezes as soon as it joins the cgroup, mid-setup, still berth-oci's image.
/// Returns the exec command (to kill) and the frozen child's pid.
// The caller kills and waits for the returned command; clippy cannot see across the return.
#[allow(clippy::zombie_processes)]
fn frozen_exec(rt: &Runtime, b: &Bundle, id: &str, binary: &str) -> (std::process::Child, i64) {
    let init = rt.state(id)["pid"].as_i64().expect("pid");
    assert_eq!(rt.run(&["pause", id]).code, 0);
    let log = std::fs::File::create(b.dir.join("frozen-exec.log")).expect("log");
    let mut exec = std::process::Command::new(binary)
        .arg("--root")
        .arg(rt.root.path())
        .args(["exec", "--ignore-paused", "--detach", id, "true"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("exec");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = rt.run(&["ps", "--format", "json", id]);
        let pids: Vec<i64> = serde_json::from_str(&o.stdout).unwrap_or_default();
        if let Some(p) = pids.into_iter().find(|p| *p != init) {
            return (exec, p);
        }
        if Instant::now() >= deadline {
            let _ = exec.kill();
            let _ = exec.wait();
            panic!("the exec'd process never joined the cgroup");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let (mut exec, child) = frozen_exec(&rt, &b, &id, berth_oci());
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

/// CVE-2021-30465 class: a symlink swapped in while berth sets up the rootfs (here a
/// host thread flips `/race` between a directory and a link to a host directory, as
/// a second container sharing the volume could) must never make a mount land outside
/// the rootfs: every target is an fd resolved in the root, never a re-walked path.
#[test]
fn racing_symlink_swaps_never_mount_outside_the_rootfs() {
    require_root!();
    let rt = Runtime::berth();
    let host = tempfile::tempdir().expect("tmp");
    let host_dir = host.path().to_path_buf();
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    let race = b.rootfs().join("race");
    b.edit(|c| {
        for m in ["a", "b", "c", "d"] {
            c["mounts"].as_array_mut().expect("mounts").push(
                serde_json::json!({"destination": format!("/race/{m}"), "type": "tmpfs", "source": "tmpfs"}),
            );
        }
    })
    .expect("edit");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, race, host_dir) = (stop.clone(), race.clone(), host_dir.clone());
        std::thread::spawn(move || {
            let tmp = race.with_file_name("race.tmp");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A directory with the mount points, then a symlink to the host
                // directory, each swapped in atomically with rename.
                let _ = std::fs::remove_dir_all(&tmp).or_else(|_| std::fs::remove_file(&tmp));
                let _ = std::fs::create_dir(&tmp);
                for m in ["a", "b", "c", "d"] {
                    let _ = std::fs::create_dir(tmp.join(m));
                }
                let _ = std::fs::rename(&tmp, &race).or_else(|_| {
                    let _ = std::fs::remove_file(&race);
                    std::fs::rename(&tmp, &race)
                });
                let _ = std::fs::remove_file(&tmp);
                let _ = std::os::unix::fs::symlink(&host_dir, &tmp);
                let _ = std::fs::remove_dir_all(&race).or_else(|_| std::fs::remove_file(&race));
                let _ = std::fs::rename(&tmp, &race);
            }
        })
    };
    for m in ["a", "b", "c", "d"] {
        std::fs::create_dir_all(host_dir.join(m)).expect("host mount points");
    }
    let mut ran = 0;
    for _ in 0..60 {
        let o = rt.run_bundle(&b, &unique_id("race"));
        if o.code == 0 {
            ran += 1;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !mounts.contains(host_dir.to_str().expect("utf8")),
            "a container mount landed on the host directory"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().expect("flipper");
    for m in ["a", "b", "c", "d"] {
        assert_eq!(
            std::fs::read_dir(host_dir.join(m)).expect("read").count(),
            0,
            "berth wrote into the host directory"
        );
    }
    // Some runs land on the directory, some on the link (resolved inside the rootfs,
    // where it leads nowhere): all that matters is that none escaped.
    eprintln!("{ran} of 60 runs succeeded while the link flipped");
}

/// The same class with berth-oci installed on a read-only mount: no copy is needed,
/// because what a container could reach through /proc/<pid>/exe is already
/// unwritable (EROFS); exec then runs from the read-only mount itself.
#[test]
fn exec_from_a_read_only_install_skips_the_copy_and_stays_unwritable() {
    require_root!();
    let rt = Runtime::berth();
    let (b, id) = running(&rt, "escro");
    let dir = tempfile::tempdir().expect("tmp");
    let ro = dir.path().join("berth-oci");
    std::fs::write(&ro, b"").expect("mount point");
    let mount = |args: &[&str]| {
        let s = std::process::Command::new("mount")
            .args(args)
            .status()
            .expect("mount");
        assert!(s.success(), "mount {args:?}");
    };
    let ro_s = ro.to_str().expect("utf8");
    mount(&["--bind", berth_oci(), ro_s]);
    mount(&["-o", "remount,bind,ro", ro_s]);
    let (mut exec, child) = frozen_exec(&rt, &b, &id, ro_s);
    let exe = std::fs::read_link(format!("/proc/{child}/exe")).expect("exe link");
    let handle = std::fs::File::open(format!("/proc/{child}/exe")).expect("open exe");
    let read_only = rustix::fs::fstatvfs(&handle)
        .expect("statvfs")
        .f_flag
        .contains(rustix::fs::StatVfsMountFlags::RDONLY);
    let _ = exec.kill();
    let _ = exec.wait();
    let _ = rt.run(&["delete", "--force", &id]);
    drop(handle);
    let _ = std::process::Command::new("umount").arg(&ro).status();
    assert_eq!(
        exe, ro,
        "the exec'd child runs the read-only install, no copy"
    );
    assert!(
        read_only,
        "what /proc/<pid>/exe reaches is on a read-only mount"
    );
}
