//! `stats`: a running container's resource use. Counters come from the runtime's stats
//! API (its cgroup, v1, hybrid or v2 alike), network bytes from the container's network
//! namespace as its init sees it (`/proc/PID/net/dev`). CPU is a rate, so a figure
//! needs two samples: [`Sample::usage`] turns a pair into what `docker stats` prints.

use crate::container::{Container, ContainerError, Engine, Status};
use serde::Serialize;
use std::time::Instant;

/// Counters at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// CPU time of every process in the container, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use less the inactive page cache (what docker shows), bytes.
    pub memory: u64,
    /// The memory limit, or the host's memory when there is none.
    pub memory_limit: u64,
    pub pids: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
}

/// One line of `stats`: rates over the interval between two samples, totals at the
/// second. Field names are docker's `--format json` keys, with numbers for numbers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Usage {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    /// 100 is one CPU busy for the whole interval.
    #[serde(rename = "CPUPerc")]
    pub cpu_perc: f64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub mem_perc: f64,
    pub net_input: u64,
    pub net_output: u64,
    pub block_input: u64,
    pub block_output: u64,
    #[serde(rename = "PIDs")]
    pub pids: u64,
}

impl Sample {
    /// What `docker stats` shows for the interval from `prev` to `self`.
    pub fn usage(&self, prev: &Sample, c: &Container) -> Usage {
        let wall = self.at.duration_since(prev.at).as_nanos() as f64;
        let cpu = self.cpu_ns.saturating_sub(prev.cpu_ns) as f64;
        Usage {
            id: c.id.clone(),
            name: c.name.clone(),
            cpu_perc: if wall > 0.0 { cpu / wall * 100.0 } else { 0.0 },
            mem_usage: self.memory,
            mem_limit: self.memory_limit,
            mem_perc: if self.memory_limit > 0 {
                self.memory as f64 / self.memory_limit as f64 * 100.0
            } else {
                0.0
            },
            net_input: self.net_rx,
            net_output: self.net_tx,
            block_input: self.block_read,
            block_output: self.block_write,
            pids: self.pids,
        }
    }
}

impl Engine {
    /// The container's counters now. A container that is not running is
    /// [`ContainerError::NotRunning`].
    pub fn stats_sample(&self, c: &Container) -> Result<Sample, ContainerError> {
        if c.status != Status::Running {
            return Err(ContainerError::NotRunning(c.name.clone()));
        }
        let rt = self.runtime_root();
        let (st, _) = berth_runtime::container::stats(&rt, &c.id).map_err(|e| match e {
            berth_runtime::Error::NotRunning { .. } => ContainerError::NotRunning(c.name.clone()),
            e => e.into(),
        })?;
        let at = Instant::now();
        let pid = berth_runtime::state::ContainerState::load(&rt, &c.id)
            .map(|s| s.pid)
            .ok();
        let (net_rx, net_tx) = pid.map(net_dev).unwrap_or((0, 0));
        let inactive = st
            .memory
            .raw
            .get("total_inactive_file")
            .or_else(|| st.memory.raw.get("inactive_file"))
            .copied()
            .unwrap_or(0);
        let usage = st.memory.usage.usage;
        let memory = if inactive < usage {
            usage - inactive
        } else {
            usage
        };
        let host = host_memory();
        let limit = st.memory.usage.limit;
        // v1 says "unlimited" with a huge page-rounded number, v2 with "max".
        let memory_limit = if limit == 0 || (host > 0 && limit > host) {
            host
        } else {
            limit
        };
        let mut block_read = 0;
        let mut block_write = 0;
        for e in &st.blkio.io_service_bytes_recursive {
            match e.op.to_ascii_lowercase().as_str() {
                "read" => block_read += e.value,
                "write" => block_write += e.value,
                _ => {}
            }
        }
        Ok(Sample {
            at,
            cpu_ns: st.cpu.usage.total,
            memory,
            memory_limit,
            pids: st.pids.current,
            net_rx,
            net_tx,
            block_read,
            block_write,
        })
    }
}

/// Bytes received and sent on every interface but loopback of the network namespace
/// `pid` is in.
fn net_dev(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    // Two header lines, then "IFACE: rx_bytes packets errs drop fifo frame compressed
    // multicast tx_bytes ...".
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// MemTotal in bytes (0 if unknown).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn net_dev_sums_all_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    1500      10    0    0    0     0          0         0      700       5    0    0    0     0       0          0\n  eth1: 5 0 0 0 0 0 0 0 6 0 0 0 0 0 0 0\n";
        assert_eq!(super::parse_net_dev(text), (1505, 706));
    }
}
