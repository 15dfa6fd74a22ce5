use super::*;

const X86: Host = Host {
    arch: NativeArch::X86_64,
    kernel: (6, 1),
};

fn caps(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

fn default_caps() -> Vec<String> {
    caps(crate::spec::DEFAULT_CAPS)
}

fn all_caps() -> Vec<String> {
    caps(berth_runtime::capabilities::NAMES)
}

/// The rules of a resolved profile that name `syscall`.
fn rules_for(resolved: &Value, syscall: &str) -> Vec<Value> {
    resolved["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|r| {
            r["names"]
                .as_array()
                .expect("names")
                .iter()
                .any(|n| n == syscall)
        })
        .cloned()
        .collect()
}

/// Allowed with no argument condition.
fn allowed(resolved: &Value, syscall: &str) -> bool {
    rules_for(resolved, syscall)
        .iter()
        .any(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
}

/// Allowed in any way (some rule with ALLOW, conditional or not).
fn reachable(resolved: &Value, syscall: &str) -> bool {
    rules_for(resolved, syscall)
        .iter()
        .any(|r| r["action"] == "SCMP_ACT_ALLOW")
}

fn default_for(c: &[String], host: &Host) -> Value {
    Profile::berth_default().resolve(c, host)
}

#[test]
fn default_profile_denies_by_default_with_eperm_and_is_multi_arch() {
    let r = default_for(&default_caps(), &X86);
    assert_eq!(r["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(r["defaultErrnoRet"], 1);
    assert_eq!(
        r["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    let arm = Host {
        arch: NativeArch::Aarch64,
        ..X86
    };
    let r = default_for(&default_caps(), &arm);
    assert_eq!(
        r["architectures"],
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    );
    assert!(allowed(&r, "set_tls") && !reachable(&r, "arch_prctl"));
    let r = default_for(&default_caps(), &X86);
    assert!(allowed(&r, "arch_prctl") && !reachable(&r, "set_tls"));
    // Unknown architecture: no list, libseccomp takes the native one.
    let other = Host {
        arch: NativeArch::Other,
        ..X86
    };
    assert!(default_for(&default_caps(), &other)
        .get("architectures")
        .is_none());
}

#[test]
fn default_profile_allows_what_ordinary_programs_need() {
    let r = default_for(&default_caps(), &X86);
    for s in [
        "read",
        "write",
        "openat",
        "execve",
        "mmap",
        "futex",
        "rt_sigaction",
        "epoll_wait",
        "accept4",
        "wait4",
        "setuid",
        "capset",
        "prctl",
        "chroot",
        "close_range",
        "statx",
        "getrandom",
        "rseq",
        "ioctl",
    ] {
        assert!(allowed(&r, s), "{s} should be allowed");
    }
    // Conditional: clone without namespace flags, socket without AF_VSOCK, a few personas.
    for s in ["clone", "socket", "personality", "unshare"] {
        assert!(reachable(&r, s) && !allowed(&r, s), "{s}: {r}");
    }
}

#[test]
fn default_profile_denies_the_dangerous_calls_whatever_the_capabilities() {
    for c in [default_caps(), all_caps()] {
        let r = default_for(&c, &X86);
        for s in [
            "kexec_load",
            "kexec_file_load",
            "keyctl",
            "add_key",
            "request_key",
            "open_by_handle_at",
            "swapon",
            "swapoff",
            "userfaultfd",
            "modify_ldt",
            "vm86",
            "uselib",
            "nfsservctl",
        ] {
            assert!(!reachable(&r, s), "{s} reachable with {c:?}");
        }
        // io_uring answers ENOSYS, never runs.
        let io = rules_for(&r, "io_uring_setup");
        assert_eq!(io.len(), 1);
        assert_eq!(io[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(io[0]["errnoRet"], 38);
    }
}

#[test]
fn capabilities_unlock_their_own_syscalls_only() {
    let base = default_caps();
    let with = |extra: &str| {
        let mut c = base.clone();
        c.push(extra.to_string());
        default_for(&c, &X86)
    };
    let r = default_for(&base, &X86);
    for s in [
        "mount",
        "umount2",
        "setns",
        "pivot_root",
        "bpf",
        "perf_event_open",
        "clock_settime",
        "settimeofday",
        "reboot",
        "init_module",
        "acct",
        "syslog",
        "kcmp",
    ] {
        assert!(!reachable(&r, s), "{s} reachable with the default caps");
    }
    let admin = with("CAP_SYS_ADMIN");
    for s in [
        "mount",
        "umount2",
        "setns",
        "unshare",
        "clone",
        "clone3",
        "pivot_root",
    ] {
        assert!(allowed(&admin, s), "{s} with CAP_SYS_ADMIN");
    }
    // No conditional clone/unshare rule and no clone3 ENOSYS rule remain beside them.
    for s in ["clone", "unshare", "clone3"] {
        assert_eq!(rules_for(&admin, s).len(), 1, "{s}: {admin}");
    }
    // SYS_ADMIN is for mounts and namespaces: not bpf, perf, the clock or modules.
    for s in [
        "bpf",
        "perf_event_open",
        "clock_settime",
        "init_module",
        "syslog",
    ] {
        assert!(!reachable(&admin, s), "{s} with CAP_SYS_ADMIN");
    }
    assert!(allowed(&with("CAP_BPF"), "bpf"));
    assert!(allowed(&with("CAP_PERFMON"), "perf_event_open"));
    assert!(allowed(&with("CAP_SYS_TIME"), "clock_settime"));
    assert!(allowed(&with("CAP_SYS_MODULE"), "finit_module"));
    assert!(allowed(&with("CAP_SYS_PTRACE"), "pidfd_getfd"));
    assert!(allowed(&with("CAP_SYS_BOOT"), "reboot"));
    // Dropping SYS_CHROOT takes chroot away.
    let no_chroot: Vec<String> = base
        .iter()
        .filter(|c| *c != "CAP_SYS_CHROOT")
        .cloned()
        .collect();
    assert!(!reachable(&default_for(&no_chroot, &X86), "chroot"));
}

#[test]
fn clone_and_unshare_are_filtered_on_namespace_flags() {
    let r = default_for(&default_caps(), &X86);
    let clone = rules_for(&r, "clone");
    assert_eq!(clone.len(), 1, "{clone:?}");
    assert_eq!(
        clone[0]["args"],
        json!([{"index": 0, "value": 0x7E02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    let unshare = rules_for(&r, "unshare");
    assert_eq!(unshare[0]["args"][0]["value"], json!(0x7E02_0080u64));
    let c3 = rules_for(&r, "clone3");
    assert_eq!(
        (c3.len(), &c3[0]["action"], &c3[0]["errnoRet"]),
        (1, &json!("SCMP_ACT_ERRNO"), &json!(38))
    );
    // s390 passes the flags second.
    let s390 = Host {
        arch: NativeArch::S390x,
        ..X86
    };
    let clone = rules_for(&default_for(&default_caps(), &s390), "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0]["args"][0]["index"], 1);
}

#[test]
fn ptrace_needs_kernel_4_8_or_cap_sys_ptrace() {
    let r = default_for(&default_caps(), &X86);
    assert!(allowed(&r, "ptrace") && allowed(&r, "process_vm_readv"));
    let old = Host {
        kernel: (4, 4),
        ..X86
    };
    assert!(!reachable(&default_for(&default_caps(), &old), "ptrace"));
    let unknown = Host {
        kernel: (0, 0),
        ..X86
    };
    assert!(!reachable(
        &default_for(&default_caps(), &unknown),
        "ptrace"
    ));
    let mut c = default_caps();
    c.push("CAP_SYS_PTRACE".into());
    assert!(allowed(&default_for(&c, &old), "ptrace"));
}

#[test]
fn personality_and_socket_rules_cannot_be_dodged_with_high_bits() {
    let r = default_for(&default_caps(), &X86);
    for p in rules_for(&r, "personality") {
        let a = &p["args"][0];
        // The mask keeps the low 32 bits, which is all the kernel reads.
        assert_eq!(
            (&a["op"], &a["value"]),
            (&json!("SCMP_CMP_MASKED_EQ"), &json!(0xffff_ffffu64))
        );
    }
    let values: Vec<u64> = rules_for(&r, "personality")
        .iter()
        .map(|p| p["args"][0]["valueTwo"].as_u64().expect("u64"))
        .collect();
    assert_eq!(values, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    // socket: below AF_VSOCK (40) or one of the families above it, never 40 itself,
    // and never a "not equal" that 0x1_0000_0028 would pass.
    for s in rules_for(&r, "socket") {
        let a = &s["args"][0];
        match a["op"].as_str() {
            Some("SCMP_CMP_LT") => assert_eq!(a["value"], 40),
            Some("SCMP_CMP_EQ") => assert!((41..=45).contains(&a["value"].as_u64().expect("u64"))),
            other => panic!("unexpected socket rule {other:?}"),
        }
    }
}

#[test]
fn default_profile_compiles_with_libseccomp_for_every_arch_and_cap_set() {
    // libseccomp builds a filter for foreign architectures of the host's endianness
    // only, so s390x (big-endian) is checked by its resolution test above instead.
    for arch in [
        NativeArch::X86_64,
        NativeArch::Aarch64,
        NativeArch::Riscv64,
        NativeArch::Ppc64le,
    ] {
        let host = Host { arch, ..X86 };
        Profile::berth_default()
            .check_compiles(&host)
            .unwrap_or_else(|e| panic!("{arch:?}: {e}"));
    }
}

/// A profile with every part of docker's format berth reads.
const DOCKER_STYLE: &str = r#"{
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": null},
        {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}
    ],
    "syscalls": [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW", "args": []},
        {"name": "getpid", "action": "SCMP_ACT_ALLOW", "comment": "old single-name form"},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["kill"], "action": "SCMP_ACT_LOG", "excludes": {"minKernel": "5.0"}}
    ]
}"#;

#[test]
fn docker_format_converts_to_oci() {
    let p = Profile::parse(DOCKER_STYLE.as_bytes()).expect("parse");
    let r = p.resolve(&default_caps(), &X86);
    assert_eq!(
        r["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    assert_eq!(
        r["syscalls"],
        json!([
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ])
    );
    let arm = Host {
        arch: NativeArch::Aarch64,
        kernel: (4, 4),
    };
    let mut admin = default_caps();
    admin.push("CAP_SYS_ADMIN".into());
    let r = p.resolve(&admin, &arm);
    assert_eq!(r["architectures"], json!(["SCMP_ARCH_AARCH64"]));
    let names: Vec<&str> = r["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .map(|s| s["names"][0].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["read", "getpid", "mount", "kill"]);
    p.check_compiles(&Host::current()).expect("compiles");
}

#[test]
fn oci_format_passes_through() {
    let oci = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#;
    let r = Profile::parse(oci.as_bytes())
        .expect("parse")
        .resolve(&[], &X86);
    assert_eq!(
        r,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]})
    );
}

fn error_of(text: &str) -> (String, String) {
    match Profile::parse(text.as_bytes()) {
        Err(ProfileError::Json { field, message }) => (field, message),
        Err(ProfileError::Invalid { field, problem }) => (field, problem),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("{text} parsed"),
    }
}

#[test]
fn malformed_profiles_are_refused_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "(document)", "EOF"),
        ("{\"defaultAction\": ", "defaultAction", "EOF"),
        ("[]", "(document)", "expected struct"),
        ("{}", "(document)", "defaultAction"),
        (
            r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
            "defaultAction",
            "SCMP_ACT_NOPE",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}"#,
            "syscalls[0].action",
            "unknown variant",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "sycalls": []}"#,
            "sycalls",
            "unknown field `sycalls`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#,
            "architectures[0]",
            "SCMP_ARCH_Z80",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": [], "archMap": []}"#,
            "archMap",
            "not both",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].names",
            "missing",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].name",
            "not both",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read; rm"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].names[0]",
            "not a syscall name",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0].args[0].index",
            "out of range",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#,
            "syscalls[0].args[0].op",
            "unknown variant",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0].args[0].value",
            "invalid value",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["SYS_ADMIN"]}}]}"#,
            "syscalls[0].includes.caps[0]",
            "unknown capability",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "v4"}}]}"#,
            "syscalls[0].excludes.minKernel",
            "kernel version",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"kernel": "4.8"}}]}"#,
            "syscalls[0].includes.kernel",
            "unknown field `kernel`",
        ),
    ];
    for (text, field, needle) in cases {
        let (f, m) = error_of(text);
        assert_eq!(&f, field, "{text}: {m}");
        assert!(m.contains(needle), "{text}: {m:?} lacks {needle:?}");
    }
}

#[test]
fn profiles_libseccomp_refuses_fail_the_compile_check() {
    // NOTIFY as the default action: the runtime refuses it.
    let p = Profile::parse(br#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).expect("parse");
    assert!(matches!(
        p.check_compiles(&Host::current()),
        Err(ProfileError::Compile(_))
    ));
}

#[test]
fn kernel_versions() {
    assert_eq!(parse_kernel("6.1.0-13-amd64"), Some((6, 1)));
    assert_eq!(parse_kernel("6.18.44-fc-v782"), Some((6, 18)));
    assert_eq!(parse_kernel("4.8"), Some((4, 8)));
    assert_eq!(parse_kernel("5"), Some((5, 0)));
    assert_eq!(parse_kernel("x"), None);
    assert_ne!(Host::current().kernel, (0, 0));
}
