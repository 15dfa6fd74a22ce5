//! The container's process: what it sees of itself from inside.

mod common;
use common::*;

fn run_sh(script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Out {
    let rt = Runtime::berth();
    let mut b = Bundle::busybox(&["sh", "-c", script]).expect("bundle");
    b.edit(edit).expect("edit");
    rt.run_bundle(&b, &unique_id("proc"))
}

#[test]
fn pid_one_hostname_env_cwd() {
    require_root!();
    let o = run_sh(
        "echo pid=$$; hostname; echo dom=$(cat /proc/sys/kernel/domainname); echo foo=$FOO; pwd",
        |c| {
            c["process"]["env"]
                .as_array_mut()
                .expect("env")
                .push("FOO=bar baz".into());
            c["process"]["cwd"] = "/work/dir".into();
            c["domainname"] = "example.test".into();
        },
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "pid=1\nberth-test\ndom=example.test\nfoo=bar baz\n/work/dir\n"
    );
}

#[test]
fn user_groups_and_umask() {
    require_root!();
    let o = run_sh("id -u; id -g; id -G; umask", |c| {
        c["process"]["user"] =
            serde_json::json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 63});
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "1000\n1001\n1001 5 7\n0077\n");
}

fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| 1u64 << berth_runtime::capabilities::number(n).expect("known cap"))
        .sum()
}

#[test]
fn capabilities_match_the_config() {
    require_root!();
    let o = run_sh(
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
        |c| {
            c["process"]["capabilities"] = serde_json::json!({
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
                "inheritable": ["CAP_NET_RAW"],
                "ambient": ["CAP_NET_RAW"]
            });
            c["process"]["noNewPrivileges"] = false.into();
        },
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let get = |k: &str| {
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
            .expect(k)
    };
    // sh is exec'd as root with ambient NET_RAW: effective = permitted after exec for root.
    assert_eq!(
        get("CapBnd:"),
        cap_mask(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"])
    );
    assert_eq!(get("CapInh:"), cap_mask(&["CAP_NET_RAW"]));
    assert_eq!(get("CapAmb:"), cap_mask(&["CAP_NET_RAW"]));
    assert_eq!(
        get("CapPrm:") & !cap_mask(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"]),
        0
    );
}

#[test]
fn non_root_user_gets_exactly_its_effective_set() {
    require_root!();
    let o = run_sh("grep -E '^Cap(Eff|Prm)' /proc/self/status", |c| {
        c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"]
        });
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    let want = format!("{:016x}", cap_mask(&["CAP_NET_BIND_SERVICE"]));
    assert!(
        o.stdout.contains(&format!("CapEff:\t{want}")),
        "{}",
        o.stdout
    );
}

#[test]
fn ambient_without_inheritable_is_ignored_like_runc() {
    require_root!();
    // runc's own `spec` template lists ambient capabilities and no inheritable ones.
    let o = run_sh("grep CapAmb /proc/self/status", |c| {
        c["process"]["capabilities"]["ambient"] = serde_json::json!(["CAP_KILL"]);
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("CapAmb:\t0000000000000000"),
        "{}",
        o.stdout
    );
}

#[test]
fn no_new_privileges_is_set() {
    require_root!();
    let o = run_sh("grep NoNewPrivs /proc/self/status", |_| {});
    assert!(o.stdout.contains("NoNewPrivs:\t1"), "{}", o.stdout);
    let o = run_sh("grep NoNewPrivs /proc/self/status", |c| {
        c["process"]["noNewPrivileges"] = false.into()
    });
    assert!(o.stdout.contains("NoNewPrivs:\t0"), "{}", o.stdout);
}

#[test]
fn rlimits_apply_and_an_impossible_one_fails_clearly() {
    require_root!();
    let o = run_sh("ulimit -n; ulimit -Hn", |c| {
        c["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 800}]);
    });
    assert_eq!(o.stdout, "512\n800\n", "{}", o.stderr);
    let host_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    if host_hard == u64::MAX
        || berth_runtime::capabilities::have(berth_runtime::capabilities::CAP_SYS_RESOURCE)
    {
        eprintln!("SKIP part: this host may raise hard limits");
        return;
    }
    let o = run_sh("true", |c| {
        c["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": host_hard + 1}]);
    });
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("RLIMIT_NOFILE") && o.stderr.contains("CAP_SYS_RESOURCE"),
        "{}",
        o.stderr
    );
}

#[test]
fn negative_oom_score_adj_without_cap_sys_resource_fails_clearly() {
    require_root!();
    let o = run_sh("cat /proc/self/oom_score_adj", |c| {
        c["process"]["oomScoreAdj"] = 500.into()
    });
    assert_eq!(o.stdout.trim(), "500", "{}", o.stderr);
    if berth_runtime::capabilities::have(berth_runtime::capabilities::CAP_SYS_RESOURCE) {
        return;
    }
    let o = run_sh("true", |c| c["process"]["oomScoreAdj"] = (-100).into());
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("oomScoreAdj") && o.stderr.contains("CAP_SYS_RESOURCE"),
        "{}",
        o.stderr
    );
}

#[test]
fn no_host_fd_reaches_the_container() {
    require_root!();
    let rt = Runtime::berth();
    let b = Bundle::busybox(&["ls", "/proc/self/fd"]).expect("bundle");
    // An fd the caller leaks on purpose (no CLOEXEC) must still not arrive.
    let leak = std::fs::File::open("/etc/hostname").expect("open");
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leak);
    rustix::io::fcntl_setfd(&leak, rustix::io::FdFlags::empty()).expect("clear cloexec");
    let o = rt.run_bundle(&b, &unique_id("fds"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    // ls itself opens one fd for the directory it lists.
    let fds: Vec<i32> = o
        .stdout
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        fds.iter().all(|&f| f <= 3),
        "unexpected fds {fds:?} (leaked host fd was {raw})"
    );
    drop(leak);
}

#[test]
fn preserve_fds_passes_exactly_those() {
    require_root!();
    let rt = Runtime::berth();
    let b = Bundle::busybox(&["sh", "-c", "cat <&3; ls /proc/self/fd"]).expect("bundle");
    let file = b.dir.join("payload");
    std::fs::write(&file, "preserved\n").expect("write");
    let root = rt.root.path().to_str().expect("utf8");
    let bundle = b.dir.to_str().expect("utf8");
    assert_fd3_preserved(
        &[
            "--root",
            root,
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            bundle,
            &unique_id("pfd"),
        ],
        &file,
    );
}

#[test]
fn preserve_fds_never_hands_over_the_runtimes_own_fds() {
    require_root!();
    // No fd 3 is given: the container must not find berth-oci's signalfd or channel there.
    let rt = Runtime::berth();
    let b = Bundle::busybox(&["sh", "-c", "ls /proc/self/fd"]).expect("bundle");
    let o = rt.run(&[
        "run",
        "--preserve-fds",
        "2",
        "--bundle",
        b.dir.to_str().expect("utf8"),
        &unique_id("pfd2"),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let fds: Vec<i32> = o
        .stdout
        .lines()
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert_eq!(
        fds,
        vec![0, 1, 2, 3],
        "only stdio (and ls's own fd 3) expected: {}",
        o.stdout
    );
}

/// A strict allowlist without noNewPrivileges is installed before the runtime drops
/// privileges: the runtime's own remaining syscalls (faccessat2, close_range, …) may be
/// filtered and must not make the start fail.
#[test]
fn seccomp_allowlist_that_filters_runtime_syscalls() {
    require_root!();
    let allowed = [
        "execve",
        "brk",
        "arch_prctl",
        "mmap",
        "munmap",
        "mprotect",
        "read",
        "write",
        "exit",
        "exit_group",
        "rt_sigaction",
        "rt_sigprocmask",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "setresuid",
        "setresgid",
        "setgroups",
        "capset",
        "capget",
        "prctl",
        "umask",
        "chdir",
        "newfstatat",
        "fstat",
        "sendto",
        "getpid",
        "set_tid_address",
        "openat",
        "close",
        "ioctl",
        "uname",
        "getppid",
        "wait4",
        "fcntl",
        "getcwd",
    ];
    let o = run_sh("echo filtered-ok", |c| {
        c["process"]["noNewPrivileges"] = false.into();
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": allowed.to_vec(), "action": "SCMP_ACT_ALLOW"}]
        });
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "filtered-ok\n");
}

#[test]
fn seccomp_errno_action_applies() {
    require_root!();
    let o = run_sh("mkdir /dev/shm/x; echo rc=$?", |c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        });
    });
    assert_eq!(o.stdout, "rc=1\n");
    assert!(
        o.stderr.contains("Function not implemented"),
        "{}",
        o.stderr
    );
}

#[test]
fn no_mount_namespace_inherits_the_runtimes_and_mounts_nothing() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("nomntns");
    // Nothing is mounted, so the container's /proc is the rootfs's empty directory.
    let mut b = Bundle::busybox(&["sh", "-c", "ls /proc | wc -l"]).expect("bundle");
    let cg = unique_cgroup(&mut b, &id);
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "mount");
    })
    .expect("edit");
    let o = rt.create(&b, &id, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("mounts: ignored"),
        "the skipped mounts are warned about: {}",
        o.stderr
    );
    let pid = rt.state(&id)["pid"].as_i64().expect("pid");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("init's mnt ns"),
        std::fs::read_link("/proc/self/ns/mnt").expect("own mnt ns"),
        "the container must inherit the runtime's mount namespace (config-linux.md#namespaces)"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).expect("init's root"),
        b.rootfs().canonicalize().expect("rootfs"),
        "the process is still confined to root.path (chroot)"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let r = b.rootfs().to_string_lossy().into_owned();
    assert!(
        !mounts.lines().any(|l| l.contains(&r)),
        "nothing may be mounted on the host for a container without a mount namespace"
    );
    assert_eq!(rt.run(&["start", &id]).code, 0);
    rt.wait_status(&id, "stopped");
    assert_eq!(
        container_output(&b, &id).lines().last().unwrap_or_default(),
        "0"
    );
    assert_eq!(rt.run(&["delete", &id]).code, 0);
    assert_no_leftovers(&rt, &id, &cg, &b.dir, "");
}

/// SCMP_ACT_NOTIFY: the notify fd reaches listenerPath with the container process
/// state; once the listener lets go of it, the notified syscall fails with ENOSYS.
#[test]
fn seccomp_notify_hands_the_fd_to_the_listener() {
    require_root!();
    let rt = Runtime::berth();
    let id = unique_id("notify");
    let mut b = Bundle::busybox(&["sh", "-c", "mkdir /dev/shm/x; echo rc=$?"]).expect("bundle");
    let sock = b.dir.join("seccomp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let s = sock.to_str().expect("utf8").to_string();
    b.edit(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": s,
            "listenerMetadata": "meta-1",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    })
    .expect("edit");
    let got = std::thread::spawn(move || {
        let stream = accept_within(&listener, 30);
        let (fd, data) = receive_fd_and_data(&stream);
        let link = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .expect("fd link");
        drop(fd);
        (link, data)
    });
    let o = rt.run_bundle(&b, &id);
    let (link, data) = got.join().expect("listener");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "rc=1\n");
    assert!(
        o.stderr.contains("Function not implemented"),
        "{}",
        o.stderr
    );
    assert_eq!(link.to_string_lossy(), "anon_inode:seccomp notify");
    let st: serde_json::Value =
        serde_json::from_slice(&data).expect("container process state JSON");
    assert_eq!(st["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(st["metadata"], "meta-1");
    assert_eq!(st["state"]["id"], id.as_str());
    assert!(st["pid"].as_i64().is_some_and(|p| p > 0), "{st}");
}

#[test]
fn personality_io_priority_and_scheduler_apply() {
    require_root!();
    let o = run_sh(
        "busybox uname -m; busybox ionice -p $$; set -- $(cat /proc/$$/stat); echo nice=${19} policy=${41}",
        |c| {
            c["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"});
            c["process"]["ioPriority"] = serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
            c["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_BATCH", "nice": 5});
        },
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "i686\nbest-effort: prio 6\nnice=5 policy=3\n");
    // exec'd processes share the container's execution domain.
    let rt = Runtime::berth();
    let id = unique_id("pers");
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    b.edit(|c| c["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"}))
        .expect("edit");
    assert_eq!(rt.run_detached(&b, &id).code, 0);
    let o = rt.run(&["exec", &id, "busybox", "uname", "-m"]);
    assert_eq!(o.stdout, "i686\n", "{}", o.stderr);
}

#[test]
fn memory_policy_applies_to_init_and_exec_and_bad_ones_are_refused() {
    require_root!();
    // numa_maps shows each mapping's policy; the stack is the process's own.
    let o = run_sh("busybox grep stack /proc/self/numa_maps", |c| {
        c["linux"]["memoryPolicy"] = serde_json::json!({
            "mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]
        });
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains(" bind=static:0 "), "{}", o.stdout);
    let rt = Runtime::berth();
    let id = unique_id("mpol");
    let mut b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    b.edit(|c| {
        c["linux"]["memoryPolicy"] = serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"})
    })
    .expect("edit");
    assert_eq!(rt.run_detached(&b, &id).code, 0);
    let o = rt.run(&[
        "exec",
        &id,
        "busybox",
        "grep",
        "stack",
        "/proc/self/numa_maps",
    ]);
    rt.run(&["delete", "-f", &id]);
    assert!(
        o.stdout.contains(" interleave:0 "),
        "{} {}",
        o.stdout,
        o.stderr
    );
    for (policy, want) in [
        (
            serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
            "MPOL_DEFAULT takes no nodes",
        ),
        (
            serde_json::json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "INTERLEAVE",
        ),
        (serde_json::json!({"nodes": "0"}), "mode"),
        // Node 1000 is not online: the kernel refuses the mask.
        (
            serde_json::json!({"mode": "MPOL_BIND", "nodes": "1000"}),
            "linux.memoryPolicy",
        ),
    ] {
        let o = run_sh("echo ran", |c| c["linux"]["memoryPolicy"] = policy.clone());
        assert_ne!(o.code, 0, "{policy} was accepted");
        assert!(o.stderr.contains(want), "{policy}: {}", o.stderr);
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn lsm_labels_behave_as_runc_without_the_lsm_and_intel_rdt_is_refused() {
    require_root!();
    if std::path::Path::new("/sys/fs/selinux/enforce").exists()
        || std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'))
    {
        eprintln!("SKIP: this host has SELinux or AppArmor enabled");
        return;
    }
    // No AppArmor: the profile is ignored, as runc does.
    let o = run_sh("echo ran", |c| {
        c["process"]["apparmorProfile"] = "berth-test".into()
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "ran\n");
    // No SELinux: a label is refused, as runc does, rather than run unlabelled.
    let o = run_sh("echo ran", |c| {
        c["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into()
    });
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("process.selinuxLabel") && o.stderr.contains("SELinux"),
        "{}",
        o.stderr
    );
    let o = run_sh("echo ran", |c| {
        c["linux"]["intelRdt"] = serde_json::json!({"closID": "x", "l3CacheSchema": "L3:0=f"})
    });
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("linux.intelRdt"), "{}", o.stderr);
}
