//! The config.json `berth-oci spec` writes: runc's shape, so tools expecting runc's
//! template keep working, with the masked and read-only paths that keep a container
//! from reaching the host through /proc and /sys (sysrq-trigger, kcore, core_pattern).

use serde_json::{json, Value};

const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// Read-only /proc paths (runc's and docker's list); `berth run` uses the same.
pub const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The default spec; `rootless` maps the calling user to root in a user namespace and
/// drops what an unprivileged user cannot do (network namespace, cgroup limits, /sys).
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Value {
    let mut spec = json!({
        "ociVersion": super::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY
        }
    });
    if rootless {
        let linux = &mut spec["linux"];
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}]);
        linux.as_object_mut().map(|l| l.remove("resources"));
        let mounts = spec["mounts"]
            .as_array_mut()
            .expect("mounts is an array literal above");
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["destination"] == "/dev/pts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_specs_parse_and_validate_shape() {
        for rootless in [false, true] {
            let v = default_spec(rootless, 1000, 1000);
            let bytes = serde_json::to_vec(&v).expect("serialises");
            let spec = crate::spec::parse(&bytes).expect("default spec parses");
            assert_eq!(spec.version(), crate::spec::OCI_VERSION);
            let masked = spec
                .linux()
                .as_ref()
                .and_then(|l| l.masked_paths().clone())
                .unwrap_or_default();
            assert!(masked.iter().any(|p| p == "/proc/kcore"));
            let ro = spec
                .linux()
                .as_ref()
                .and_then(|l| l.readonly_paths().clone())
                .unwrap_or_default();
            assert!(
                ro.iter().any(|p| p == "/proc/sysrq-trigger")
                    && ro.iter().any(|p| p == "/proc/sys")
            );
        }
    }
}
