//! cgroup v2 interface files, with the spec's v1-shaped values converted.

use super::{write, CgroupError};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory};
use std::path::Path;

/// Enables every available controller in each ancestor's subtree_control, from the
/// root down to the leaf's parent, so the leaf gets them all.
pub(super) fn enable_controllers(mount: &Path, leaf: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = leaf.strip_prefix(mount) else {
        return Ok(());
    };
    let mut dir = mount.to_path_buf();
    for comp in rel.components() {
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let enabled =
            std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<&str> = available
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if !missing.is_empty() {
            let all: String = missing.iter().map(|c| format!("+{c} ")).collect();
            if std::fs::write(dir.join("cgroup.subtree_control"), all.trim_end()).is_err() {
                // One controller refusing (e.g. a threaded subtree) must not block the others.
                for c in missing {
                    let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
                }
            }
        }
        dir.push(comp);
        if !dir.exists() {
            std::fs::create_dir(&dir).map_err(|source| CgroupError::Create {
                dir: dir.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

pub(super) fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    if let Some(r) = m.reservation() {
        write(
            dir,
            "memory.low",
            &max_or(r),
            "linux.resources.memory.reservation",
        )?;
    }
    if let Some(swap) = m.swap() {
        // The spec's swap is memory+swap (v1's memsw); v2's swap.max is swap alone.
        let value = match (swap, m.limit()) {
            (s, _) if s < 0 => "max".to_string(),
            (s, Some(l)) if l >= 0 => {
                if s < l {
                    return Err(CgroupError::Unsupported {
                        field: "linux.resources.memory.swap".into(),
                        problem: format!(
                            "{s} is below memory.limit {l} (swap counts memory plus swap)"
                        ),
                    });
                }
                (s - l).to_string()
            }
            (s, _) => s.to_string(),
        };
        if !dir.join("memory.swap.max").exists() {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.memory.swap".into(),
                problem: "memory.swap.max is missing: this kernel does not account swap".into(),
            });
        }
        write(
            dir,
            "memory.swap.max",
            &value,
            "linux.resources.memory.swap",
        )?;
    }
    if let Some(l) = m.limit() {
        write(
            dir,
            "memory.max",
            &max_or(l),
            "linux.resources.memory.limit",
        )?;
    }
    if m.swappiness().is_some_and(|s| s != 0 && s != 60) {
        return Err(CgroupError::Unsupported {
            field: "linux.resources.memory.swappiness".into(),
            problem: "cgroup v2 has no per-cgroup swappiness".into(),
        });
    }
    Ok(())
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

pub(super) fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares() {
        write(
            dir,
            "cpu.weight",
            &shares_to_weight(s).to_string(),
            "linux.resources.cpu.shares",
        )?;
    }
    if c.quota().is_some() || c.period().is_some() {
        let quota = c.quota().map(max_or).unwrap_or_else(|| "max".into());
        let period = c.period().unwrap_or(100_000);
        write(
            dir,
            "cpu.max",
            &format!("{quota} {period}"),
            "linux.resources.cpu.quota",
        )?;
    }
    if let Some(b) = c.burst() {
        write(
            dir,
            "cpu.max.burst",
            &b.to_string(),
            "linux.resources.cpu.burst",
        )?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        return Err(CgroupError::Unsupported {
            field: "linux.resources.cpu.realtimeRuntime".into(),
            problem: "cgroup v2 has no real-time CPU budget".into(),
        });
    }
    Ok(())
}

/// blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

pub(super) fn io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(w) = b.weight() {
        let (file, value) = if dir.join("io.bfq.weight").exists() {
            ("io.bfq.weight", w.to_string())
        } else {
            ("io.weight", format!("default {}", blkio_to_io_weight(w)))
        };
        write(dir, file, &value, "linux.resources.blockIO.weight")?;
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        if let Some(w) = d.weight() {
            let field = format!("linux.resources.blockIO.weightDevice[{i}]");
            write(
                dir,
                "io.weight",
                &format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w)),
                &field,
            )?;
        }
    }
    let throttles = [
        (
            "rbps",
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
        ),
        (
            "wbps",
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
        ),
        (
            "riops",
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
        ),
        (
            "wiops",
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
        ),
    ];
    for (key, name, list) in throttles {
        for (i, t) in list.iter().flatten().enumerate() {
            let field = format!("linux.resources.blockIO.{name}[{i}]");
            write(
                dir,
                "io.max",
                &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                &field,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_the_published_formulas() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }
}
