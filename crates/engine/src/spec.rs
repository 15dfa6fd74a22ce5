//! The runtime spec for a container from an image: docker's defaults (capabilities,
//! masked and read-only paths, mounts, namespaces), the image's config (entrypoint, cmd,
//! env, workdir, user, stop signal), then the user's options on top.

use crate::user::{self, User};
use berth_image::config::ImageConfig;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub use crate::network::NetworkMode;

/// What the user asked for, already parsed.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: String,
    pub tty: bool,
    pub read_only: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub network: NetworkMode,
    /// The network namespace to join (`NetworkMode::Network`); set by
    /// `network::prepare`.
    pub netns: Option<PathBuf>,
    /// `-p`: host port 0 means "pick a free one".
    pub publish: Vec<berth_network::PortMapping>,
    /// `-P`: publish the image's ExposedPorts on free host ports.
    pub publish_all: bool,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    /// `type=bind|tmpfs` style mounts already resolved to spec mounts.
    pub mounts: Vec<Value>,
    pub labels: Vec<(String, String)>,
    pub cgroups_path: String,
    /// The seccomp filter (docs/SECCOMP.md).
    pub seccomp: crate::seccomp::Policy,
    /// `--ulimit`s, already checked against the host (`ulimit::parse_all`).
    pub ulimits: Vec<crate::ulimit::Ulimit>,
    /// `--init`: the host path of the init to run as PID 1 (`init::find`).
    pub init: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("no command: the image has no Entrypoint or Cmd and none was given")]
    NoCommand,
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error("--cap-add/--cap-drop: unknown capability {0:?}")]
    Capability(String),
    #[error("--cap-add: {0} is not in this host's capability bounding set, so no process here can have it")]
    NotOnHost(String),
    #[error("network {0:?}: no network namespace path to join")]
    NoNetns(String),
}

/// Capabilities this process may pass on: its bounding set (some hosts and VMs lack some,
/// e.g. CAP_SYS_RESOURCE). `--privileged` and `--cap-add ALL` mean these, as with podman.
pub(crate) fn host_caps() -> Vec<String> {
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    berth_runtime::capabilities::NAMES
        .iter()
        .filter(|n| berth_runtime::capabilities::number(n).is_some_and(|b| bnd & (1u64 << b) != 0))
        .map(|n| n.to_string())
        .collect()
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn merge_env(base: &mut Vec<String>, add: &[String]) {
    for e in add {
        let key = e.split('=').next().unwrap_or(e);
        base.retain(|b| b.split('=').next() != Some(key));
        base.push(e.clone());
    }
}

/// The spec (config.json) for a container whose rootfs is at `rootfs`.
pub fn build(image: &ImageConfig, rootfs: &Path, o: &SpecOptions) -> Result<Value, SpecError> {
    let ic = &image.config;
    // docker: --entrypoint replaces the image's and drops its Cmd.
    let (entry, cmd) = match &o.entrypoint {
        Some(e) => (e.clone(), o.command.clone()),
        None => (
            ic.entrypoint.clone().unwrap_or_default(),
            if o.command.is_empty() {
                ic.cmd.clone().unwrap_or_default()
            } else {
                o.command.clone()
            },
        ),
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let user_spec = o
        .user
        .clone()
        .or_else(|| ic.user.clone())
        .unwrap_or_default();
    let passwd = user::read_in_root(rootfs, "/etc/passwd").unwrap_or_default();
    let group = user::read_in_root(rootfs, "/etc/group").unwrap_or_default();
    let User {
        uid,
        gid,
        additional_gids,
        home,
    } = user::resolve(&user_spec, &passwd, &group)?;

    let mut env = vec![DEFAULT_PATH.to_string()];
    merge_env(&mut env, ic.env.as_deref().unwrap_or_default());
    merge_env(&mut env, &[format!("HOSTNAME={}", o.hostname)]);
    if o.tty {
        merge_env(&mut env, &["TERM=xterm".into()]);
    }
    if let Some(h) = home {
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={h}"));
        }
    }
    merge_env(&mut env, &o.env);

    let host = host_caps();
    let mut caps: Vec<String> = if o.privileged {
        host.clone()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    for c in &o.cap_drop {
        if c.eq_ignore_ascii_case("all") {
            caps.clear();
            continue;
        }
        let n = cap_name(c);
        if !berth_runtime::capabilities::NAMES.contains(&n.as_str()) {
            return Err(SpecError::Capability(c.clone()));
        }
        caps.retain(|x| *x != n);
    }
    for c in &o.cap_add {
        if c.eq_ignore_ascii_case("all") {
            caps = host.clone();
            continue;
        }
        let n = cap_name(c);
        if !berth_runtime::capabilities::NAMES.contains(&n.as_str()) {
            return Err(SpecError::Capability(c.clone()));
        }
        if !host.contains(&n) {
            return Err(SpecError::NotOnHost(n));
        }
        if !caps.contains(&n) {
            caps.push(n);
        }
    }
    caps.retain(|c| host.contains(c));
    // A non-root user keeps no effective capabilities, as with docker.
    let effective = if uid == 0 { caps.clone() } else { vec![] };
    let args = match o.init {
        Some(_) => crate::init::wrap(args),
        None => args,
    };

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match (&o.network, &o.netns) {
        (NetworkMode::None, None) => namespaces.push(json!({"type": "network"})),
        (NetworkMode::None, Some(path)) => {
            namespaces.push(json!({"type": "network", "path": path}))
        }
        (NetworkMode::Host, _) => {}
        (NetworkMode::Network(_), Some(path)) => {
            namespaces.push(json!({"type": "network", "path": path}))
        }
        (NetworkMode::Network(name), None) => return Err(SpecError::NoNetns(name.clone())),
    }
    let sys_opts = if o.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        // The container's own cgroup (cgroup namespace), read-only, as podman shows it.
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    mounts.extend(o.mounts.iter().cloned());
    if let Some(init) = &o.init {
        mounts.push(json!({"destination": crate::init::CONTAINER_PATH, "type": "bind", "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}));
    }

    let mut resources = json!({});
    if o.privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else {
        resources["devices"] = json!([{"allow": false, "access": "rwm"}]);
    }
    if let Some(m) = o.memory {
        resources["memory"]["limit"] = json!(m);
        if let Some(s) = o.memory_swap {
            resources["memory"]["swap"] = json!(s);
        }
    }
    if let Some(c) = o.cpus {
        let period = 100_000u64;
        resources["cpu"]["period"] = json!(period);
        resources["cpu"]["quota"] = json!((c * period as f64).round() as i64);
    }
    if let Some(s) = o.cpu_shares {
        resources["cpu"]["shares"] = json!(s);
    }
    if let Some(c) = &o.cpuset_cpus {
        resources["cpu"]["cpus"] = json!(c);
    }
    if let Some(p) = o.pids_limit {
        resources["pids"]["limit"] = json!(p);
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": o.cgroups_path,
    });
    if !o.privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(berth_runtime::spec::default::READONLY);
    }
    if let Some(s) = crate::seccomp::for_container(&o.seccomp, o.privileged, &caps) {
        linux["seccomp"] = s;
    }
    let annotations: serde_json::Map<String, Value> = o
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut spec = json!({
        "ociVersion": berth_runtime::spec::OCI_VERSION,
        "process": {
            "terminal": o.tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": additional_gids},
            "args": args,
            "env": env,
            "cwd": o.workdir.clone().or_else(|| ic.working_dir.clone()).filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
            "capabilities": {"bounding": caps, "effective": effective, "permitted": caps},
            "noNewPrivileges": o.no_new_privileges,
        },
        "root": {"path": rootfs, "readonly": o.read_only},
        "hostname": o.hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    });
    if !o.ulimits.is_empty() {
        spec["process"]["rlimits"] = o
            .ulimits
            .iter()
            .map(|u| json!({"type": u.spec_type(), "soft": u.soft, "hard": u.hard}))
            .collect();
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entry: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let mut c = ImageConfig::default();
        c.rootfs.kind = "layers".into();
        c.config.entrypoint = entry.map(|e| e.iter().map(|s| s.to_string()).collect());
        c.config.cmd = cmd.map(|e| e.iter().map(|s| s.to_string()).collect());
        c.config.env = Some(vec!["PATH=/bin".into(), "A=image".into()]);
        c
    }

    #[test]
    fn entrypoint_cmd_env_and_caps_like_docker() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut o = SpecOptions {
            hostname: "h".into(),
            ..Default::default()
        };
        let img = image(Some(&["/ep"]), Some(&["a", "b"]));
        let s = build(&img, root.path(), &o).expect("spec");
        assert_eq!(s["process"]["args"], json!(["/ep", "a", "b"]));
        o.command = vec!["x".into()];
        assert_eq!(
            build(&img, root.path(), &o).expect("spec")["process"]["args"],
            json!(["/ep", "x"])
        );
        o.entrypoint = Some(vec!["/other".into()]);
        o.command = vec![];
        assert_eq!(
            build(&img, root.path(), &o).expect("spec")["process"]["args"],
            json!(["/other"])
        );
        assert!(matches!(
            build(&image(None, None), root.path(), &SpecOptions::default()),
            Err(SpecError::NoCommand)
        ));

        let mut o = SpecOptions {
            hostname: "h".into(),
            env: vec!["A=user".into()],
            ..Default::default()
        };
        o.cap_drop = vec!["net_raw".into()];
        o.cap_add = vec!["SYS_ADMIN".into()];
        let s = build(&img, root.path(), &o).expect("spec");
        let env = s["process"]["env"].as_array().expect("env");
        assert!(env.contains(&json!("A=user")) && !env.contains(&json!("A=image")));
        assert!(env.contains(&json!("PATH=/bin")) && env.contains(&json!("HOSTNAME=h")));
        let caps = s["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("caps");
        assert!(caps.contains(&json!("CAP_SYS_ADMIN")) && !caps.contains(&json!("CAP_NET_RAW")));
        assert!(s["linux"]["maskedPaths"]
            .as_array()
            .expect("masked")
            .contains(&json!("/proc/kcore")));
        o.cap_add = vec!["NOPE".into()];
        assert!(matches!(
            build(&img, root.path(), &o),
            Err(SpecError::Capability(_))
        ));
    }

    #[test]
    fn seccomp_rlimits_and_init_in_the_spec() {
        let root = tempfile::tempdir().expect("tempdir");
        let img = image(None, Some(&["sh"]));
        let mut o = SpecOptions {
            hostname: "h".into(),
            ..Default::default()
        };
        let s = build(&img, root.path(), &o).expect("spec");
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(s["process"].get("rlimits").is_none());
        // --privileged alone: no filter; with a profile of its own: that profile.
        o.privileged = true;
        assert!(build(&img, root.path(), &o).expect("spec")["linux"]
            .get("seccomp")
            .is_none());
        o.seccomp = crate::seccomp::Policy::Custom(Box::new(
            crate::seccomp::Profile::parse(br#"{"defaultAction": "SCMP_ACT_LOG"}"#)
                .expect("profile"),
        ));
        let s = build(&img, root.path(), &o).expect("spec");
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
        o.privileged = false;
        o.seccomp = crate::seccomp::Policy::Unconfined;
        assert!(build(&img, root.path(), &o).expect("spec")["linux"]
            .get("seccomp")
            .is_none());

        o.ulimits = crate::ulimit::parse_all(&["nofile=100:200".into()]).expect("ulimit");
        o.init = Some("/usr/bin/catatonit".into());
        let s = build(&img, root.path(), &o).expect("spec");
        assert_eq!(
            s["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}])
        );
        assert_eq!(s["process"]["args"], json!(["/run/berth-init", "--", "sh"]));
        let mounts = s["mounts"].as_array().expect("mounts");
        let m = mounts.last().expect("init mount");
        assert_eq!(
            (&m["destination"], &m["source"]),
            (&json!("/run/berth-init"), &json!("/usr/bin/catatonit"))
        );
        assert!(m["options"]
            .as_array()
            .expect("options")
            .contains(&json!("ro")));
    }
}
