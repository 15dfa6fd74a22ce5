//! Resource usage read from the container's cgroup, in the shape of runc's `events`
//! stats (its types/events.go), which tools that parse runc's output expect. v1 and
//! v2 files are mapped onto the same fields; a missing file leaves its field zero.

use super::Cgroup;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    /// Nanoseconds.
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Memory {
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    pub current: u64,
    pub limit: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A number, with "max" (v2's unlimited) as u64::MAX.
fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .map(|s| {
            let s = s.trim();
            if s == "max" {
                u64::MAX
            } else {
                s.parse().unwrap_or(0)
            }
        })
        .unwrap_or(0)
}

/// "key value" lines (cpu.stat, memory.stat, memory.events, cpuacct.stat).
fn flat_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_string(), v.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
const NS_PER_TICK: u64 = 10_000_000;

impl Cgroup {
    pub fn stats(&self) -> Stats {
        let mut st = Stats::default();
        if let Some(d) = self.dir_for("cpuacct").or_else(|| self.dir_for("cpu")) {
            if d.v2 {
                let c = flat_keyed(&d.path, "cpu.stat");
                let us = |k: &str| c.get(k).copied().unwrap_or(0) * 1000;
                st.cpu.usage.total = us("usage_usec");
                st.cpu.usage.user = us("user_usec");
                st.cpu.usage.kernel = us("system_usec");
                st.cpu.throttling.periods = c.get("nr_periods").copied().unwrap_or(0);
                st.cpu.throttling.throttled_periods = c.get("nr_throttled").copied().unwrap_or(0);
                st.cpu.throttling.throttled_time = us("throttled_usec");
            } else {
                st.cpu.usage.total = num(&d.path, "cpuacct.usage");
                st.cpu.usage.percpu = read(&d.path, "cpuacct.usage_percpu")
                    .map(|s| {
                        s.split_whitespace()
                            .filter_map(|v| v.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                let t = flat_keyed(&d.path, "cpuacct.stat");
                st.cpu.usage.user = t.get("user").copied().unwrap_or(0) * NS_PER_TICK;
                st.cpu.usage.kernel = t.get("system").copied().unwrap_or(0) * NS_PER_TICK;
            }
        }
        if let Some(d) = self.dir_for("cpu").filter(|d| !d.v2) {
            let c = flat_keyed(&d.path, "cpu.stat");
            st.cpu.throttling.periods = c.get("nr_periods").copied().unwrap_or(0);
            st.cpu.throttling.throttled_periods = c.get("nr_throttled").copied().unwrap_or(0);
            st.cpu.throttling.throttled_time = c.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(d) = self.dir_for("memory") {
            let p = &d.path;
            if d.v2 {
                st.memory.usage = MemoryEntry {
                    limit: num(p, "memory.max"),
                    usage: num(p, "memory.current"),
                    max: num(p, "memory.peak"),
                    failcnt: flat_keyed(p, "memory.events")
                        .get("max")
                        .copied()
                        .unwrap_or(0),
                };
                st.memory.swap = MemoryEntry {
                    limit: num(p, "memory.swap.max"),
                    usage: num(p, "memory.swap.current"),
                    max: num(p, "memory.swap.peak"),
                    failcnt: 0,
                };
                st.memory.raw = flat_keyed(p, "memory.stat");
                st.memory.cache = st.memory.raw.get("file").copied().unwrap_or(0);
            } else {
                st.memory.usage = MemoryEntry {
                    limit: num(p, "memory.limit_in_bytes"),
                    usage: num(p, "memory.usage_in_bytes"),
                    max: num(p, "memory.max_usage_in_bytes"),
                    failcnt: num(p, "memory.failcnt"),
                };
                st.memory.swap = MemoryEntry {
                    limit: num(p, "memory.memsw.limit_in_bytes"),
                    usage: num(p, "memory.memsw.usage_in_bytes"),
                    max: num(p, "memory.memsw.max_usage_in_bytes"),
                    failcnt: num(p, "memory.memsw.failcnt"),
                };
                st.memory.raw = flat_keyed(p, "memory.stat");
                st.memory.cache = st.memory.raw.get("cache").copied().unwrap_or(0);
            }
        }
        if let Some(d) = self.dir_for("pids") {
            st.pids = Pids {
                current: num(&d.path, "pids.current"),
                limit: match num(&d.path, "pids.max") {
                    u64::MAX => 0,
                    l => l,
                },
            };
        }
        if let Some(d) = self.dir_for("blkio").or_else(|| self.dir_for("io")) {
            st.blkio.io_service_bytes_recursive = if d.v2 {
                io_stat(&d.path)
            } else {
                blkio_bytes(&d.path)
            };
        }
        if let Some(d) = self.dir_for("hugetlb") {
            for size in hugepage_sizes() {
                let (usage, max, failcnt) = if d.v2 {
                    (
                        num(&d.path, &format!("hugetlb.{size}.current")),
                        num(&d.path, &format!("hugetlb.{size}.max")),
                        flat_keyed(&d.path, &format!("hugetlb.{size}.events"))
                            .get("max")
                            .copied()
                            .unwrap_or(0),
                    )
                } else {
                    (
                        num(&d.path, &format!("hugetlb.{size}.usage_in_bytes")),
                        num(&d.path, &format!("hugetlb.{size}.max_usage_in_bytes")),
                        num(&d.path, &format!("hugetlb.{size}.failcnt")),
                    )
                };
                st.hugetlb.insert(
                    size,
                    Hugetlb {
                        usage,
                        max,
                        failcnt,
                    },
                );
            }
        }
        st
    }

    /// How many times the kernel's OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        match self.dir_for("memory") {
            Some(d) if d.v2 => flat_keyed(&d.path, "memory.events")
                .get("oom_kill")
                .copied()
                .unwrap_or(0),
            Some(d) => flat_keyed(&d.path, "memory.oom_control")
                .get("oom_kill")
                .copied()
                .unwrap_or(0),
            None => 0,
        }
    }
}

/// "2MB", "1GB": the names the hugetlb files use, from /sys/kernel/mm/hugepages.
fn hugepage_sizes() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let kb: u64 = e
                .file_name()
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(if kb >= 1 << 20 {
                format!("{}GB", kb >> 20)
            } else if kb >= 1 << 10 {
                format!("{}MB", kb >> 10)
            } else {
                format!("{kb}KB")
            })
        })
        .collect();
    out.sort();
    out
}

/// v1 blkio.throttle.io_service_bytes_recursive: "MAJ:MIN Op value" lines.
fn blkio_bytes(dir: &Path) -> Vec<BlkioEntry> {
    read(dir, "blkio.throttle.io_service_bytes_recursive")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (maj, min) = f.next()?.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f.next()?.to_string(),
                value: f.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// v2 io.stat: "MAJ:MIN rbytes=.. wbytes=.. ..." lines, as runc maps them.
fn io_stat(dir: &Path) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for l in read(dir, "io.stat").unwrap_or_default().lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let op = match k {
                "rbytes" => "Read",
                "wbytes" => "Write",
                _ => continue,
            };
            out.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: v.parse().unwrap_or(0),
            });
        }
    }
    out
}
