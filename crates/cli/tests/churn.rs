//! Churn: many `run -d` + `rm -f` cycles, then nothing of any of them is left: no mount,
//! cgroup, netns, veth, IP lease, iptables rule, monitor or container process, volume
//! mount or record. One leak per cycle is invisible in a single-container test and fatal
//! on a node that starts containers all day.
//!
//! Most cycles use `--network none` (the cheap path); every 10th is on the default
//! network with a published port (veth, lease, portmap rules); a few mount a named
//! volume; two cycles run at a time. What each kind of cycle makes is first checked to exist while its container
//! runs, so the final checks are known to look in the right places.

mod common;

use common::host::{free_port, mounts_under, Host};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Cycles by default; BERTH_CHURN_CYCLES=N for a longer soak or a quicker run.
const CYCLES: usize = 200;
/// Cycles run this many at a time.
const LANES: usize = 2;
const VOLUME: &str = "churnvol";
const BRIDGE: &str = "berth0";

fn cni_ready() -> bool {
    ["bridge", "host-local", "portmap", "loopback"]
        .iter()
        .all(|p| Path::new("/usr/lib/cni").join(p).exists())
}

/// The host of the test; on drop (also after a failed assertion) removes whatever is
/// left, so a failing run leaks nothing either.
struct Churn {
    h: Host,
}

impl Drop for Churn {
    fn drop(&mut self) {
        let ids = self.h.berth(&["ps", "-aq", "--no-trunc"]).stdout;
        for id in ids.lines() {
            let _ = self.h.berth(&["rm", "-f", id]);
        }
        let _ = self.h.berth(&["volume", "rm", "-f", VOLUME]);
        for m in mounts_under(self.h.dir.path()).into_iter().rev() {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
        // The default network's bridge is shared with other tests: it goes only when
        // nothing is attached to it.
        if sh(&format!("ip -o link show master {BRIDGE} 2>/dev/null")).is_empty() {
            let _ = Command::new("ip")
                .args(["link", "delete", BRIDGE])
                .stderr(std::process::Stdio::null())
                .output();
        }
    }
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every cgroup hierarchy's root (v1 controllers, v1 named, the v2 unified tree), each
/// once (cpu and cpuacct are often links to one "cpu,cpuacct").
fn hierarchies() -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .expect("read /sys/fs/cgroup")
        .flatten()
    {
        if let Ok(p) = e.path().canonicalize() {
            if p.is_dir() {
                seen.insert(p);
            }
        }
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        seen.insert(PathBuf::from("/sys/fs/cgroup"));
    }
    seen.into_iter().collect()
}

/// The cgroup directories of `ids` (under `parent`, relative to each hierarchy's root)
/// that exist.
fn cgroups_of(parent: &str, ids: &[String]) -> Vec<PathBuf> {
    let mut found = vec![];
    for h in hierarchies() {
        for id in ids {
            let p = h.join(parent.trim_start_matches('/')).join(id);
            if p.exists() {
                found.push(p);
            }
        }
    }
    found
}

/// Processes that sit in a cgroup of one of `ids` (container processes), or whose
/// command line names `dir` (monitors and `berth internal` helpers): "pid cmdline".
fn processes_of(dir: &Path, ids: &[String]) -> Vec<String> {
    let dir = dir.display().to_string();
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if cmdline.contains(&dir) || ids.iter().any(|id| cgroup.contains(id.as_str())) {
            found.push(format!("{name} {cmdline}"));
        }
    }
    found
}

/// The host-side ifindex of the container's veth: the peer of eth0 in its netns.
fn host_veth_index(netns: &Path) -> u32 {
    let o = sh(&format!(
        "nsenter --net={} ip -o link show eth0",
        netns.display()
    ));
    // "2: eth0@if45: <...> ..."
    o.split_once("@if")
        .and_then(|(_, rest)| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no veth peer in {o:?}"))
}

fn link_exists(index: u32) -> bool {
    sh("ip -o link show")
        .lines()
        .any(|l| l.split(':').next() == Some(&index.to_string()))
}

fn leases(h: &Host) -> Vec<String> {
    files(&h.dir.path().join("root/cni/ipam/berth"))
        .into_iter()
        .filter(|f| f != "lock" && !f.starts_with("last_reserved_ip"))
        .collect()
}

/// What the cycles leave for the final checks.
#[derive(Default)]
struct Seen {
    ids: Vec<String>,
    /// Host-side ifindex of each networked container's veth.
    veths: Vec<u32>,
    /// Host ports handed out, so two lanes never publish the same one.
    ports: BTreeSet<u16>,
    cgroup_parent: Option<String>,
    networked: usize,
    with_volume: usize,
}

/// One `run -d` + `rm -f` cycle; cycle `i` decides the flags. The first cycles of each
/// kind also check that what the final checks look for exists while the container runs.
fn cycle(h: &Host, i: usize, seen: &Mutex<Seen>) {
    let dir = h.dir.path();
    let name = format!("c{i}");
    let on_network = i.is_multiple_of(10);
    let volume = i % 50 == 5;
    let publish = if on_network {
        let mut s = seen.lock().expect("lock");
        let port = loop {
            let p = free_port();
            if s.ports.insert(p) {
                break p;
            }
        };
        format!("{port}:80")
    } else {
        String::new()
    };
    let mut args = vec!["run", "-d", "--name", &name];
    if on_network {
        args.extend(["-p", &publish]);
    } else {
        args.extend(["--network", "none"]);
    }
    let mount = format!("{VOLUME}:/data");
    if volume {
        args.extend(["-v", &mount]);
    }
    args.extend([h.image.as_str(), "sleep", "100"]);
    let o = h.berth(&args);
    assert_eq!(o.code, 0, "cycle {i}: run -d: {}", o.stderr);
    let id = o.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "cycle {i}: run -d printed {:?}", o.stdout);

    let parent = {
        let mut s = seen.lock().expect("lock");
        s.ids.push(id.clone());
        s.networked += usize::from(on_network);
        s.with_volume += usize::from(volume);
        if s.cgroup_parent.is_none() {
            // Where berth puts container cgroups, from what it gave the runtime.
            let cfg = h.runroot().join("containers").join(&id).join("config.json");
            let spec: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&cfg).expect("config.json"))
                    .expect("parse config.json");
            let path = spec["linux"]["cgroupsPath"]
                .as_str()
                .expect("linux.cgroupsPath");
            let (parent, last) = path.rsplit_once('/').expect("cgroupsPath has a parent");
            assert_eq!(last, id, "cgroupsPath {path}");
            s.cgroup_parent = Some(parent.to_string());
        }
        s.cgroup_parent.clone().expect("set above")
    };
    if i < 2 {
        let one = [id.clone()];
        assert!(!cgroups_of(&parent, &one).is_empty(), "no cgroup for {id}");
        let procs = processes_of(dir, &one);
        assert!(
            procs.iter().any(|p| p.contains("berth-monitor")),
            "no monitor found: {procs:?}"
        );
        assert!(
            procs.iter().any(|p| p.contains("sleep 100")),
            "no container process found: {procs:?}"
        );
        assert!(
            !mounts_under(dir).is_empty(),
            "no rootfs mount under {dir:?}"
        );
    }
    if on_network {
        let netns = h.runroot().join("netns").join(&id);
        assert!(netns.exists(), "cycle {i}: no netns file {netns:?}");
        let veth = host_veth_index(&netns);
        assert!(link_exists(veth), "cycle {i}: veth {veth} not on the host");
        if i == 0 {
            assert!(!leases(h).is_empty(), "no IP lease while attached");
            assert!(sh("iptables-save").contains(&id), "no rule names {id}");
        }
        seen.lock().expect("lock").veths.push(veth);
    }

    let o = h.berth(&["rm", "-f", &name]);
    assert_eq!(o.code, 0, "cycle {i}: rm -f: {}", o.stderr);
}

#[test]
fn run_rm_churn_leaks_nothing() {
    if !common::is_root() || !cni_ready() {
        eprintln!("SKIP: needs root and the CNI plugins (Debian: containernetworking-plugins)");
        return;
    }
    let Some(h) = Host::new() else { return };
    let c = Churn { h };
    let h = &c.h;
    let started = Instant::now();
    let dir = h.dir.path().to_path_buf();
    // A few lanes at once: the cycles also race each other on the store, the default
    // network and the volume, as a busy node's do (and the debug build's wall time
    // stays within CI's budget).
    let cycles_wanted = std::env::var("BERTH_CHURN_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CYCLES)
        .max(60);
    let seen = Mutex::new(Seen::default());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..LANES {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cycles_wanted {
                    break;
                }
                cycle(h, i, &seen);
            });
        }
    });
    let cycles = started.elapsed();
    let seen = seen.into_inner().expect("no lane panicked");
    assert_eq!(seen.ids.len(), cycles_wanted);
    assert!(seen.networked >= 6 && seen.with_volume >= 2);
    let ids = &seen.ids;

    // Records.
    let o = h.berth(&["ps", "-aq"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "records left");
    // The volume outlives its containers and is not in use any more.
    let o = h.berth(&["volume", "rm", VOLUME]);
    assert_eq!(o.code, 0, "volume rm: {}", o.stderr);
    // Mounts (rootfs overlays, the netns dir, volumes) under root and runroot.
    assert_eq!(mounts_under(&dir), Vec::<PathBuf>::new(), "mounts left");
    // Cgroups of every container, in every hierarchy.
    let parent = seen.cgroup_parent.expect("at least one cycle ran");
    assert_eq!(
        cgroups_of(&parent, ids),
        Vec::<PathBuf>::new(),
        "cgroups left"
    );
    // Monitors, helpers and container processes.
    assert_eq!(
        processes_of(&dir, ids),
        Vec::<String>::new(),
        "processes left"
    );
    // Network: netns files, veths, leases, iptables rules, the attachment cache.
    assert_eq!(files(&h.runroot().join("netns")), Vec::<String>::new());
    let links: Vec<u32> = seen.veths.into_iter().filter(|v| link_exists(*v)).collect();
    assert_eq!(links, Vec::<u32>::new(), "veths left");
    assert_eq!(leases(h), Vec::<String>::new(), "IP leases left");
    assert_eq!(files(&dir.join("root/cni/results")), Vec::<String>::new());
    let rules: Vec<String> = sh("iptables-save")
        .lines()
        .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        .map(str::to_string)
        .collect();
    assert_eq!(rules, Vec::<String>::new(), "iptables rules left");
    // Container directories and writable snapshots.
    assert_eq!(files(&h.runroot().join("containers")), Vec::<String>::new());
    h.assert_clean();
    eprintln!(
        "churn: {cycles_wanted} cycles in {LANES} lanes ({} networked, {} with a volume) in {:.1} s, checks {:.1} s",
        seen.networked,
        seen.with_volume,
        cycles.as_secs_f64(),
        (started.elapsed() - cycles).as_secs_f64()
    );
}
