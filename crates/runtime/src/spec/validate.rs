//! Validate everything before applying anything (a failed check leaves nothing behind).

use super::SpecError;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::Path;

/// Checks the rules of config.md / config-linux.md that berth can check without side
/// effects. `bundle` resolves a relative root.path.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<(), SpecError> {
    version(spec)?;
    root(spec, bundle)?;
    process(spec)?;
    mounts(spec)?;
    linux(spec)?;
    if let Some(h) = spec.hooks() {
        crate::hooks::validate(h)?;
    }
    Ok(())
}

fn version(spec: &Spec) -> Result<(), SpecError> {
    let v = spec.version();
    if v.is_empty() {
        return Err(SpecError::invalid(
            "ociVersion",
            "missing",
            "config.md#specification-version",
        ));
    }
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || p.parse::<u64>().is_err())
    {
        return Err(SpecError::invalid(
            "ociVersion",
            format!("{v:?} is not a SemVer 2.0.0 version"),
            "config.md#specification-version",
        ));
    }
    if parts[0] != "1" {
        return Err(SpecError::invalid(
            "ociVersion",
            format!(
                "{v:?}: this runtime implements runtime-spec 1.x and cannot run a {}.x config",
                parts[0]
            ),
            "config.md#specification-version",
        ));
    }
    Ok(())
}

fn root(spec: &Spec, bundle: &Path) -> Result<(), SpecError> {
    let root = spec.root().as_ref().ok_or_else(|| {
        SpecError::invalid("root", "missing (REQUIRED on Linux)", "config.md#root")
    })?;
    let path = bundle.join(root.path());
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SpecError::invalid(
            "root.path",
            format!("{} is not a directory", path.display()),
            "config.md#root",
        )),
        Err(e) => Err(SpecError::invalid(
            "root.path",
            format!("{}: {e}", path.display()),
            "config.md#root",
        )),
    }
}

fn process(spec: &Spec) -> Result<(), SpecError> {
    let p = spec.process().as_ref().ok_or_else(|| {
        SpecError::invalid(
            "process",
            "missing (REQUIRED when start is called)",
            "config.md#process",
        )
    })?;
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(SpecError::invalid(
            "process.args",
            "missing or empty",
            "config.md#process",
        ));
    }
    if !p.cwd().is_absolute() {
        return Err(SpecError::invalid(
            "process.cwd",
            format!("{:?} is not an absolute path", p.cwd()),
            "config.md#process",
        ));
    }
    if let Some(env) = p.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') {
                return Err(SpecError::invalid(
                    format!("process.env[{i}]"),
                    format!("{e:?} is not of the form KEY=value"),
                    "config.md#process",
                ));
            }
        }
    }
    if let Some(rlimits) = p.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rlimits.iter().enumerate() {
            if !seen.insert(r.typ().to_string()) {
                return Err(SpecError::invalid(
                    format!("process.rlimits[{i}]"),
                    format!("{} is listed more than once", r.typ()),
                    "config.md#posix-process",
                ));
            }
            if r.soft() > r.hard() {
                return Err(SpecError::invalid(
                    format!("process.rlimits[{i}]"),
                    format!("soft limit {} is above hard limit {}", r.soft(), r.hard()),
                    "config.md#posix-process",
                ));
            }
        }
    }
    Ok(())
}

fn mounts(spec: &Spec) -> Result<(), SpecError> {
    let known = known_filesystems();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(SpecError::invalid(
                format!("mounts[{i}].destination"),
                format!("{:?} is not an absolute path", m.destination()),
                "config.md#mounts",
            ));
        }
        let options = m.options().as_deref().unwrap_or_default();
        let bind = options.iter().any(|o| o == "bind" || o == "rbind");
        let typ = m.typ().as_deref().unwrap_or("");
        if !bind && typ != "bind" {
            if typ.is_empty() {
                return Err(SpecError::invalid(
                    format!("mounts[{i}].type"),
                    "missing for a mount that is not a bind mount",
                    "config-linux.md#mounts",
                ));
            }
            if !known.is_empty() && typ != "cgroup" && !known.contains(typ) {
                return Err(SpecError::invalid(
                    format!("mounts[{i}].type"),
                    format!("unknown filesystem type {typ:?} (not in /proc/filesystems)"),
                    "config-linux.md#mounts",
                ));
            }
        } else if m.source().is_none() {
            return Err(SpecError::invalid(
                format!("mounts[{i}].source"),
                "a bind mount needs a source",
                "config.md#mounts",
            ));
        }
        for (j, o) in options.iter().enumerate() {
            if crate::rootfs::options::is_unsupported(o) {
                return Err(SpecError::invalid(
                    format!("mounts[{i}].options[{j}]"),
                    format!("{o:?} is not supported by this runtime"),
                    "config.md#mounts",
                ));
            }
        }
    }
    Ok(())
}

fn known_filesystems() -> HashSet<String> {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_whitespace().last())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn linux(spec: &Spec) -> Result<(), SpecError> {
    let Some(linux) = spec.linux() else {
        return Err(SpecError::invalid(
            "linux",
            "missing (this runtime needs a Linux config)",
            "config-linux.md",
        ));
    };
    if linux.intel_rdt().is_some() {
        let problem = if std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
            "Intel RDT (resctrl) is not implemented by this berth-oci build"
        } else {
            "this host has no resctrl filesystem mounted at /sys/fs/resctrl (no Intel RDT / AMD QoS), so the limits cannot be applied"
        };
        return Err(SpecError::invalid(
            "linux.intelRdt",
            problem,
            "config-linux.md#intelrdt",
        ));
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty())
        && crate::process::attrs::selinux_enabled()
    {
        return Err(SpecError::invalid(
            "linux.mountLabel",
            "SELinux mount labels are not implemented by this berth-oci build",
            "config-linux.md#mount-label",
        ));
    }
    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(SpecError::invalid(
                format!("linux.namespaces[{i}]"),
                format!("namespace type {} is listed more than once", ns.typ()),
                "config-linux.md#namespaces",
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(SpecError::invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{p:?} is not an absolute path"),
                    "config-linux.md#namespaces",
                ));
            }
        }
    }
    let has_new = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    let new_userns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_userns && !has_maps {
        return Err(SpecError::invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
            "config-linux.md#user-namespace-mappings",
        ));
    }
    if !has_new(LinuxNamespaceType::User) && has_maps {
        return Err(SpecError::invalid(
            "linux.uidMappings",
            "mappings given without a user namespace",
            "config-linux.md#user-namespace-mappings",
        ));
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has_new(LinuxNamespaceType::Uts)
    {
        return Err(SpecError::invalid(
            "hostname",
            "setting the hostname needs a uts namespace of the container's",
            "config.md#hostname",
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty())
        && !has_new(LinuxNamespaceType::Uts)
    {
        return Err(SpecError::invalid(
            "domainname",
            "setting the domainname needs a uts namespace of the container's",
            "config.md#domainname",
        ));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        let new_time = namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
        if !new_time {
            return Err(SpecError::invalid(
                "linux.timeOffsets",
                "time offsets need a new time namespace",
                "config-linux.md#offset-for-time-namespace",
            ));
        }
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in paths.iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return Err(SpecError::invalid(
                    format!("{field}[{i}]"),
                    format!("{p:?} is not an absolute path"),
                    "config-linux.md",
                ));
            }
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(SpecError::invalid(
                format!("linux.devices[{i}].path"),
                format!("{:?} is not an absolute path", d.path()),
                "config-linux.md#devices",
            ));
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            sysctl_allowed(key, &has_new)?;
        }
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only when the container has that namespace
/// (otherwise the write would change the host).
fn sysctl_allowed(
    key: &str,
    has_new: &dyn Fn(LinuxNamespaceType) -> bool,
) -> Result<(), SpecError> {
    let field = format!("linux.sysctl[{key:?}]");
    if key.contains("..") || key.starts_with(['/', '.']) {
        return Err(SpecError::invalid(
            field,
            "not a sysctl name",
            "config-linux.md#sysctl",
        ));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let (ns, name) = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        (LinuxNamespaceType::Ipc, "ipc")
    } else if key.starts_with("net.") {
        (LinuxNamespaceType::Network, "network")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        (LinuxNamespaceType::Uts, "uts")
    } else {
        return Err(SpecError::invalid(
            field,
            "not a namespaced sysctl: setting it would change the host",
            "config-linux.md#sysctl",
        ));
    };
    if !has_new(ns) {
        return Err(SpecError::invalid(
            field,
            format!("needs a {name} namespace of the container's"),
            "config-linux.md#sysctl",
        ));
    }
    Ok(())
}
