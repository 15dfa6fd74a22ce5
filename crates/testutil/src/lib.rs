//! OCI bundles for tests, made from the host's busybox-static: a rootfs holding
//! /bin/busybox and its applets as symlinks, and a config.json shaped like
//! `runc spec`'s (without a terminal). No network, no image store.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

const APPLETS: &[&str] = &[
    "sh",
    "true",
    "false",
    "sleep",
    "cat",
    "ls",
    "id",
    "hostname",
    "echo",
    "mount",
    "touch",
    "mkdir",
    "grep",
    "head",
    "stat",
    "readlink",
    "kill",
    "wc",
    "env",
    "pwd",
    "umask",
    "test",
    "printf",
    "domainname",
    "ps",
];

/// A bundle directory with a busybox rootfs and an editable config.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    _tmp: Option<tempfile::TempDir>,
}

impl Bundle {
    /// A bundle in a new temporary directory (removed on drop) running `args`.
    pub fn busybox(args: &[&str]) -> anyhow::Result<Bundle> {
        let tmp = tempfile::Builder::new().prefix("berth-bundle-").tempdir()?;
        let mut b = Bundle::create_in(tmp.path(), args)?;
        b._tmp = Some(tmp);
        Ok(b)
    }

    /// A bundle at `dir` (created if needed, kept).
    pub fn create_in(dir: &Path, args: &[&str]) -> anyhow::Result<Bundle> {
        let rootfs = dir.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin)?;
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        if !Path::new(BUSYBOX).exists() {
            anyhow::bail!("{BUSYBOX} is missing: install busybox-static");
        }
        std::fs::copy(BUSYBOX, bin.join("busybox"))?;
        for a in APPLETS {
            let link = bin.join(a);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link)?;
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )?;
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
        let b = Bundle {
            dir: dir.to_path_buf(),
            config: default_config(args),
            _tmp: None,
        };
        b.write()?;
        Ok(b)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Writes config.json from `self.config`.
    pub fn write(&self) -> anyhow::Result<()> {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config)?,
        )?;
        Ok(())
    }

    /// Edits the config and writes it.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> anyhow::Result<()> {
        f(&mut self.config);
        self.write()
    }
}

/// runc's default spec, without a terminal, with a cgroup namespace off (as runc).
pub fn default_config(args: &[&str]) -> Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth-test",
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
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}
