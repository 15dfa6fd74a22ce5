//! cgroup v1 interface files.

use super::{write, CgroupError, DeviceRule};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory};
use std::path::Path;

pub(super) fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let v = |x: i64| {
        if x < 0 {
            "-1".to_string()
        } else {
            x.to_string()
        }
    };
    if let Some(r) = m.reservation() {
        write(
            dir,
            "memory.soft_limit_in_bytes",
            &v(r),
            "linux.resources.memory.reservation",
        )?;
    }
    // memsw must stay >= the limit: raise memsw first when growing, the limit first otherwise.
    let limit = m.limit();
    let swap = m.swap();
    let write_limit = |l: i64| {
        write(
            dir,
            "memory.limit_in_bytes",
            &v(l),
            "linux.resources.memory.limit",
        )
    };
    let write_swap = |s: i64| -> Result<(), CgroupError> {
        if !dir.join("memory.memsw.limit_in_bytes").exists() {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.memory.swap".into(),
                problem: "memory.memsw.limit_in_bytes is missing: this kernel does not account swap (swapaccount=1)".into(),
            });
        }
        write(
            dir,
            "memory.memsw.limit_in_bytes",
            &v(s),
            "linux.resources.memory.swap",
        )
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let current: i64 = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .ok()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(i64::MAX);
            if s == -1 || l > current || l == -1 {
                write_swap(s)?;
                write_limit(l)?;
            } else {
                write_limit(l)?;
                write_swap(s)?;
            }
        }
        (Some(l), None) => write_limit(l)?,
        (None, Some(s)) => write_swap(s)?,
        (None, None) => {}
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.memory.swappiness".into(),
                problem: format!("{s} is above 100"),
            });
        }
        write(
            dir,
            "memory.swappiness",
            &s.to_string(),
            "linux.resources.memory.swappiness",
        )?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(
            dir,
            "memory.oom_control",
            "1",
            "linux.resources.memory.disableOOMKiller",
        )?;
    }
    Ok(())
}

pub(super) fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares() {
        write(
            dir,
            "cpu.shares",
            &s.to_string(),
            "linux.resources.cpu.shares",
        )?;
    }
    if let Some(p) = c.period() {
        write(
            dir,
            "cpu.cfs_period_us",
            &p.to_string(),
            "linux.resources.cpu.period",
        )?;
    }
    if let Some(q) = c.quota() {
        write(
            dir,
            "cpu.cfs_quota_us",
            &q.to_string(),
            "linux.resources.cpu.quota",
        )?;
    }
    if let Some(b) = c.burst() {
        write(
            dir,
            "cpu.cfs_burst_us",
            &b.to_string(),
            "linux.resources.cpu.burst",
        )?;
    }
    if let Some(p) = c.realtime_period() {
        write(
            dir,
            "cpu.rt_period_us",
            &p.to_string(),
            "linux.resources.cpu.realtimePeriod",
        )?;
    }
    if let Some(r) = c.realtime_runtime() {
        write(
            dir,
            "cpu.rt_runtime_us",
            &r.to_string(),
            "linux.resources.cpu.realtimeRuntime",
        )?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    Ok(())
}

/// cpuset.cpus / cpuset.mems (the same file names in v1 and v2).
pub(super) fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus() {
        write(dir, "cpuset.cpus", cpus, "linux.resources.cpu.cpus")?;
    }
    if let Some(mems) = c.mems() {
        write(dir, "cpuset.mems", mems, "linux.resources.cpu.mems")?;
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus and mems and refuses tasks until they
/// are set: copy them down from the nearest ancestor that has them.
pub(super) fn init_cpuset(mount: &Path, dir: &Path) {
    let mut chain = Vec::new();
    let mut d = dir.to_path_buf();
    while d.starts_with(mount) && d != mount {
        chain.push(d.clone());
        if !d.pop() {
            break;
        }
    }
    for level in chain.into_iter().rev() {
        let parent = level
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| mount.to_path_buf());
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let cur = std::fs::read_to_string(level.join(file)).unwrap_or_default();
            if cur.trim().is_empty() {
                if let Ok(p) = std::fs::read_to_string(parent.join(file)) {
                    let _ = std::fs::write(level.join(file), p.trim());
                }
            }
        }
    }
}

pub(super) fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let weight_file = if dir.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    if let Some(w) = b.weight() {
        if !dir.join(weight_file).exists() {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.blockIO.weight".into(),
                problem: "this kernel has no blkio weight (no CFQ/BFQ scheduler)".into(),
            });
        }
        write(
            dir,
            weight_file,
            &w.to_string(),
            "linux.resources.blockIO.weight",
        )?;
    }
    if let Some(w) = b.leaf_weight() {
        write(
            dir,
            "blkio.leaf_weight",
            &w.to_string(),
            "linux.resources.blockIO.leafWeight",
        )?;
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("linux.resources.blockIO.weightDevice[{i}]");
        if let Some(w) = d.weight() {
            write(
                dir,
                "blkio.weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
                &field,
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
                &field,
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, name, list) in throttles {
        for (i, t) in list.iter().flatten().enumerate() {
            let field = format!("linux.resources.blockIO.{name}[{i}]");
            write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                &field,
            )?;
        }
    }
    Ok(())
}

pub(super) fn devices(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    for (i, r) in rules.iter().enumerate() {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(
            dir,
            file,
            &r.to_v1(),
            &format!("linux.resources.devices[{i}]"),
        )?;
    }
    Ok(())
}
