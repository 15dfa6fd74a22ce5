//! Shared helpers for the networking integration tests: real plugins, real
//! namespaces, a private state/run dir per test, and per-test networks (own bridge,
//! own subnet) so the tests run in parallel.
#![allow(dead_code)]

use berth_network::{CreateOptions, Network, NetworkConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if berth_sys::process::getuid() != 0 {
        return Some("not root (network namespaces, veth and iptables need it)".into());
    }
    for plugin in ["bridge", "host-local", "portmap", "loopback"] {
        if !Path::new("/usr/lib/cni").join(plugin).exists()
            && !Path::new("/opt/cni/bin").join(plugin).exists()
        {
            return Some(format!(
                "CNI plugin {plugin} missing (Debian: containernetworking-plugins)"
            ));
        }
    }
    for tool in ["ip", "nsenter", "iptables-save", "busybox"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Some(format!("{tool} missing"));
        }
    }
    None
}

#[macro_export]
macro_rules! require_root {
    () => {
        if let Some(why) = common::skip_reason() {
            eprintln!("skipping: {why}");
            return;
        }
    };
}

/// A private berth state/run dir; on drop, deletes the bridges of its networks and
/// unmounts its netns dir.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub cfg: NetworkConfig,
    // Last: dropped after the cleanup in Drop.
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// Tests in one binary take turns: the default network's bridge (berth0) and subnet are
/// host-wide, while each Env has its own IPAM and cache, so two at once would hand out
/// the same address and one's cleanup would delete the other's bridge.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn env() -> Env {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::Builder::new()
        .prefix("berth-net-test")
        .tempdir()
        .expect("tempdir");
    let cfg = NetworkConfig::new(tmp.path().join("state"), tmp.path().join("run"));
    Env {
        tmp,
        cfg,
        _serial: serial,
    }
}

impl Env {
    /// A per-test bridge network on 10.123.`n`.0/24, bridge `bt<n>`.
    pub fn network(&self, name: &str, n: u8) -> Network {
        let opts = CreateOptions {
            name: name.into(),
            subnet: Some(format!("10.123.{n}.0/24").parse().expect("cidr")),
            bridge: Some(format!("btest{n}")),
            ..Default::default()
        };
        Network::create(&self.cfg, &opts).expect("create network")
    }
}

impl Drop for Env {
    /// Cleans up after a failed test too: detaches what is still attached, deletes
    /// the bridges, unmounts the netns dir.
    fn drop(&mut self) {
        if let Ok(attached) = berth_network::cache::list(&self.cfg.cache_dir()) {
            for a in attached {
                let _ = berth_network::detach(&self.cfg, &a.network, &a.container_id);
            }
        }
        if let Ok(nets) = std::fs::read_dir(&self.cfg.config_dir) {
            for entry in nets.flatten() {
                let name = entry
                    .path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Ok(net) = Network::inspect(&self.cfg, &name) {
                    // Ours alone: the chains are named after this Env's conflist.
                    let _ = berth_network::rules::remove(&self.cfg, &net);
                    if let Some(bridge) = net.bridge {
                        let _ = Command::new("ip")
                            .args(["link", "delete", &bridge])
                            .output();
                    }
                }
            }
        }
        let _ = rustix::mount::unmount(&self.cfg.netns_dir, rustix::mount::UnmountFlags::DETACH);
    }
}

/// A unique container id.
pub fn cid(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command inside a netns; returns (success, stdout+stderr).
pub fn in_netns(netns: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg("--")
        .args(args)
        .output()
        .expect("run nsenter");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("run sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// iptables-save (v4) without counters and comments.
pub fn iptables() -> Vec<String> {
    sh("iptables-save")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.rfind(" [") {
            Some(i) if l.starts_with(':') => l[..i].to_string(),
            _ => l.to_string(),
        })
        .collect()
}

/// The rules berth made for a network: its NAT and forward chains and the jumps to them.
pub fn network_rules(cfg: &NetworkConfig, network: &str) -> Vec<String> {
    let path = cfg.conflist_path(network);
    let chains = [
        berth_network::rules::nat_chain(&path),
        berth_network::rules::forward_chain(&path),
    ];
    iptables()
        .into_iter()
        .filter(|l| chains.iter().any(|c| l.contains(c.as_str())))
        .collect()
}

/// A host whose firewall drops forwarded traffic (as docker's FORWARD policy does),
/// for one subnet only so that parallel tests are not touched: DROP rules at the end
/// of FORWARD, deleted on drop.
pub struct ForwardDrop(Vec<String>);

impl ForwardDrop {
    pub fn new(subnet: &str) -> ForwardDrop {
        let rules = vec![
            format!("-s {subnet} -j DROP"),
            format!("-d {subnet} -j DROP"),
        ];
        for r in &rules {
            let out = sh(&format!("iptables -w -A FORWARD {r} && echo ok"));
            assert!(out.contains("ok"), "iptables -A FORWARD {r}: {out}");
        }
        ForwardDrop(rules)
    }
}

impl Drop for ForwardDrop {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = sh(&format!("iptables -w -D FORWARD {r}"));
        }
    }
}

/// The iptables lines that belong to one attachment: those naming the container id
/// or its address, and the per-container chains they jump to.
pub fn rules_of(rules: &[String], container_id: &str, ip: &str) -> Vec<String> {
    let own: Vec<&String> = rules
        .iter()
        .filter(|l| {
            l.contains(&format!("\\\"{container_id}\\\"")) || l.contains(&format!("{ip}/32"))
        })
        .collect();
    let chains: Vec<String> = own
        .iter()
        .filter_map(|l| l.split(" -j ").nth(1))
        .map(|c| c.split_whitespace().next().unwrap_or("").to_string())
        .filter(|c| {
            c.starts_with("CNI-")
                && !matches!(
                    c.as_str(),
                    "CNI-HOSTPORT-DNAT"
                        | "CNI-HOSTPORT-SETMARK"
                        | "CNI-HOSTPORT-MASQ"
                        | "CNI-FORWARD"
                        | "CNI-ADMIN"
                )
        })
        .collect();
    rules
        .iter()
        .filter(|l| {
            own.contains(l)
                || chains
                    .iter()
                    .any(|c| l.starts_with(&format!(":{c}")) || l.starts_with(&format!("-A {c} ")))
        })
        .cloned()
        .collect()
}

/// host-local's lease files for a network (one per IP, named by the IP).
pub fn leases(cfg: &NetworkConfig, network: &str) -> Vec<String> {
    std::fs::read_dir(cfg.ipam_dir().join(network))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The veths enslaved to a bridge.
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    sh(&format!("ip -o link show master {bridge} 2>/dev/null"))
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .collect()
}

pub fn files_in(dir: &PathBuf) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
