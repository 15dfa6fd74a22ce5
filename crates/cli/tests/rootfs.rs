//! The root filesystem: mounts, devices, masked and read-only paths, and the
//! escape classes (symlinks in the image must never lead berth outside the rootfs).

mod common;
use common::*;

fn run_in(b: &Bundle) -> Out {
    Runtime::berth().run_bundle(b, &unique_id("fs"))
}

#[test]
fn readonly_root_masked_and_readonly_paths() {
    require_root!();
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-rw || echo root-ro; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-rw || echo sys-ro; \
         echo kcore=$(cat /proc/kcore | wc -c); ls /sys/firmware | wc -l; \
         echo c > /proc/sysrq-trigger 2>/dev/null && echo sysrq-rw || echo sysrq-ro",
    ])
    .expect("bundle");
    let o = run_in(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "root-ro\nsys-ro\nkcore=0\n0\nsysrq-ro\n");
}

#[test]
fn mounts_types_options_and_order() {
    require_root!();
    let mut b = Bundle::busybox(&["sh", "-c", "cat /proc/self/mountinfo; touch /data/ro-test 2>/dev/null || echo data-ro; stat -c %a /scratch"]).expect("bundle");
    let host = tempfile::tempdir().expect("tmp");
    std::fs::write(host.path().join("file"), "x").expect("write");
    let src = host.path().to_str().expect("utf8").to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().expect("mounts");
        m.push(serde_json::json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid"]}));
        m.push(serde_json::json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1770", "noexec"]}));
    })
    .expect("edit");
    let o = run_in(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let line = |dest: &str| {
        o.stdout
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} not mounted:\n{}", o.stdout))
            .to_string()
    };
    assert!(line("/data").contains(" ro,nosuid"), "{}", line("/data"));
    assert!(
        line("/scratch").contains("noexec") && line("/scratch").contains("size=1024k"),
        "{}",
        line("/scratch")
    );
    assert!(line("/dev/pts").contains("devpts"));
    assert!(line("/dev/shm").contains("tmpfs"));
    assert!(line("/dev/mqueue").contains("mqueue"));
    assert!(o.stdout.contains("data-ro"));
    assert!(o.stdout.trim_end().ends_with("1770"));
    // The spec's order: /dev before /dev/pts.
    let pos = |d: &str| {
        o.stdout
            .lines()
            .position(|l| l.split(' ').nth(4) == Some(d))
            .expect("mounted")
    };
    assert!(pos("/dev") < pos("/dev/pts"));
}

#[test]
fn default_and_spec_devices() {
    require_root!();
    let mut b = Bundle::busybox(&["sh", "-c", "stat -c '%n %t:%T %a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/fuse; readlink /dev/fd; readlink /dev/ptmx"]).expect("bundle");
    b.edit(|c| {
        c["linux"]["devices"] = serde_json::json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384, "uid": 0, "gid": 0}]);
    })
    .expect("edit");
    let o = run_in(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "/dev/null 1:3 666\n/dev/zero 1:5 666\n/dev/full 1:7 666\n/dev/random 1:8 666\n/dev/urandom 1:9 666\n/dev/tty 5:0 666\n/dev/fuse a:e5 600\n/proc/self/fd\npts/ptmx\n"
    );
}

#[test]
fn no_pivot_uses_chroot() {
    require_root!();
    let rt = Runtime::berth();
    let b = Bundle::busybox(&["sh", "-c", "echo ok; ls /"]).expect("bundle");
    let o = rt.run(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().expect("utf8"),
        &unique_id("nopivot"),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("ok\n") && o.stdout.contains("bin"));
}

/// A symlink in the image pointing at a host directory must not make a mount, a device
/// or a masked path land on the host: resolution stays inside the rootfs.
#[test]
fn symlinks_in_the_image_cannot_escape_the_rootfs() {
    require_root!();
    let host = tempfile::tempdir().expect("tmp");
    let host_dir = host.path().to_str().expect("utf8").to_string();
    let mut b = Bundle::busybox(&["sh", "-c", "ls -d /escape/*; stat -c %t:%T /devlink/evil"])
        .expect("bundle");
    let rootfs = b.rootfs();
    std::os::unix::fs::symlink(&host_dir, rootfs.join("escape")).expect("symlink");
    std::os::unix::fs::symlink(format!("{host_dir}/../../.."), rootfs.join("devlink"))
        .expect("symlink");
    std::os::unix::fs::symlink(&host_dir, rootfs.join("maskme")).expect("symlink");
    // The same path exists inside the rootfs: in-root resolution lands there, while a
    // runtime that followed the link on the host would land in the (existing) host dir.
    std::fs::create_dir_all(rootfs.join(host_dir.trim_start_matches('/'))).expect("mkdir");
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(
            serde_json::json!({"destination": "/escape/mnt", "type": "tmpfs", "source": "tmpfs"}),
        );
        c["linux"]["devices"] =
            serde_json::json!([{"path": "/devlink/evil", "type": "c", "major": 1, "minor": 3}]);
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .expect("masked")
            .push("/maskme".into());
    })
    .expect("edit");
    let o = run_in(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // The host directory is untouched: nothing was created or mounted in it.
    assert_eq!(
        std::fs::read_dir(host.path()).expect("read").count(),
        0,
        "berth wrote into the host directory"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&host_dir),
        "a mount landed on the host path"
    );
    // Inside, the symlinked paths resolved within the rootfs.
    assert!(rootfs
        .join(host_dir.trim_start_matches('/'))
        .join("mnt")
        .is_dir());
    assert!(o.stdout.contains("1:3"), "{}", o.stdout);
}

/// A dangling symlink (its target exists only on the host) fails cleanly.
#[test]
fn dangling_symlink_destination_fails_without_touching_the_host() {
    require_root!();
    let host = tempfile::tempdir().expect("tmp");
    let host_dir = host.path().to_str().expect("utf8").to_string();
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    std::os::unix::fs::symlink(&host_dir, b.rootfs().join("escape")).expect("symlink");
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(
            serde_json::json!({"destination": "/escape/mnt", "type": "tmpfs", "source": "tmpfs"}),
        );
    })
    .expect("edit");
    let o = run_in(&b);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("mounts[7] (tmpfs on /escape/mnt)"),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read_dir(host.path()).expect("read").count(),
        0,
        "berth wrote into the host directory"
    );
}

/// A sysctl or read-only path redirected by a symlink away from procfs must fail, not
/// write elsewhere (the 2025 procfs-redirect class).
#[test]
fn proc_paths_must_be_on_procfs() {
    require_root!();
    let mut b = Bundle::busybox(&["true"]).expect("bundle");
    b.edit(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(
            serde_json::json!({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}),
        );
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
    })
    .expect("edit");
    let o = run_in(&b);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("linux.sysctl") && o.stderr.contains("procfs"),
        "{}",
        o.stderr
    );
}

#[test]
fn sysctl_applies_in_the_container_only() {
    require_root!();
    let before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read");
    let mut b = Bundle::busybox(&["cat", "/proc/sys/net/ipv4/ip_forward"]).expect("bundle");
    let want = if before.trim() == "1" { "0" } else { "1" };
    b.edit(|c| c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": want}))
        .expect("edit");
    let o = run_in(&b);
    assert_eq!(o.stdout.trim(), want, "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read"),
        before
    );
}

#[test]
fn joins_namespaces_by_path() {
    require_root!();
    let rt = Runtime::berth();
    let mut a = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
    a.edit(|c| c["hostname"] = "shared-uts".into())
        .expect("edit");
    let ida = unique_id("nsa");
    assert_eq!(rt.run_detached(&a, &ida).code, 0);
    let pid = rt.state(&ida)["pid"].as_i64().expect("pid");
    let mut b =
        Bundle::busybox(&["sh", "-c", "hostname; readlink /proc/self/ns/net"]).expect("bundle");
    b.edit(|c| {
        c.as_object_mut().expect("obj").remove("hostname");
        c["linux"]["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
            {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
            {"type": "network", "path": format!("/proc/{pid}/ns/net")}
        ]);
    })
    .expect("edit");
    let o = rt.run_bundle(&b, &unique_id("nsb"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns");
    assert_eq!(o.stdout, format!("shared-uts\n{}\n", net.display()));
}

#[test]
fn rootfs_propagation_values_all_start() {
    require_root!();
    for p in ["shared", "slave", "private", "unbindable", "rprivate"] {
        let mut b = Bundle::busybox(&["true"]).expect("bundle");
        b.edit(|c| c["linux"]["rootfsPropagation"] = p.into())
            .expect("edit");
        let o = run_in(&b);
        assert_eq!(o.code, 0, "rootfsPropagation {p}: {}", o.stderr);
    }
}

/// Clearing an atime mode leaves the kernel's default, relatime (as mount(8) does), and
/// the recursive forms apply it too.
#[test]
fn atime_options_follow_mount8() {
    require_root!();
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "for m in /a /b /c /d; do grep \" $m \" /proc/self/mountinfo | cut -d' ' -f6; done",
    ])
    .expect("bundle");
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        for (dest, opt) in [("/a", "norelatime"), ("/b", "strictatime"), ("/c", "rnorelatime"), ("/d", "noatime")] {
            mounts.push(serde_json::json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [opt]}));
        }
    })
    .expect("edit");
    let o = run_in(&b);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", o.stdout);
    assert!(lines[0].contains("relatime"), "norelatime: {}", lines[0]);
    assert!(
        !lines[1].contains("relatime") && !lines[1].contains("noatime"),
        "strictatime: {}",
        lines[1]
    );
    assert!(lines[2].contains("relatime"), "rnorelatime: {}", lines[2]);
    assert!(lines[3].contains("noatime"), "noatime: {}", lines[3]);
}
