//! The engine's attach/detach on real CNI plugins, the calls the container lifecycle
//! makes around the runtime: again after a crash left an attachment, again after a
//! "reboot" emptied the run root, and detach twice. Skipped (with the reason printed)
//! without root or the plugins.

use berth_engine::container::{Container, Status};
use berth_engine::network::{attach, detach, NetworkMode};
use berth_network::{CreateOptions, Network, NetworkConfig, PortMapping};
use std::path::Path;
use std::process::Command;

fn skip() -> bool {
    let plugins = ["bridge", "host-local", "portmap", "loopback"];
    let ok = rustix::process::geteuid().is_root()
        && plugins
            .iter()
            .all(|p| Path::new("/usr/lib/cni").join(p).exists());
    if !ok {
        eprintln!("SKIP: needs root and the CNI plugins");
    }
    !ok
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
                .filter(|f| f != "lock" && !f.starts_with("last_reserved_ip"))
                .collect()
        })
        .unwrap_or_default()
}

fn record(id: &str, network: NetworkMode, ports: Vec<PortMapping>) -> Container {
    Container {
        id: id.into(),
        name: "engine-net".into(),
        image: "img".into(),
        image_id: "sha256:x".into(),
        command: vec![],
        created: 0,
        status: Status::Created,
        exit_code: None,
        finished: None,
        auto_remove: false,
        labels: vec![],
        life: Default::default(),
        volumes: vec![],
        network,
        ports,
        hostname: "enet".into(),
        entrypoint: None,
    }
}

/// Removes the network and its bridge, and anything still attached, even after a
/// failed assertion.
struct Net {
    cfg: NetworkConfig,
    c: Container,
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = detach(&self.cfg, &self.c);
        let _ = Network::remove(&self.cfg, "ne1");
        let _ = Command::new("ip")
            .args(["link", "delete", "bne1"])
            .stderr(std::process::Stdio::null())
            .output();
    }
}

#[test]
fn attach_again_after_a_crash_and_after_a_reboot_then_detach_leaves_nothing() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = NetworkConfig::new(tmp.path().join("root"), tmp.path().join("run"));
    Network::create(
        &cfg,
        &CreateOptions {
            name: "ne1".into(),
            subnet: Some("10.125.1.0/24".parse().expect("cidr")),
            bridge: Some("bne1".into()),
            ..Default::default()
        },
    )
    .expect("network");
    let id = format!("enginenet{}", std::process::id());
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let ports = vec![format!("{port}:80").parse().expect("mapping")];
    let net = Net {
        cfg: cfg.clone(),
        c: record(&id, NetworkMode::Network("ne1".into()), ports),
    };
    let dir = tmp.path().join("run/containers").join(&id);
    let leases = cfg.ipam_dir().join("ne1");

    let att = attach(&cfg, &net.c, &dir)
        .expect("attach")
        .expect("an attachment");
    assert_eq!(att.netns, cfg.netns_path(&id), "the path the spec names");
    assert!(berth_network::netns::is_netns(&att.netns));
    let ip = att.ips[0].addr().to_string();
    let hosts = std::fs::read_to_string(dir.join("hosts")).expect("hosts");
    assert!(
        hosts.contains(&format!("{ip}\tenet engine-net\n")),
        "{hosts}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("hostname")).expect("hostname"),
        "enet\n"
    );
    assert!(dir.join("resolv.conf").exists());

    // A crash: the init died, nothing detached. Attach again: the stale attachment goes
    // first, so there is still one veth, one lease, one cache entry.
    let again = attach(&cfg, &net.c, &dir)
        .expect("attach over a stale attachment")
        .expect("an attachment");
    assert_eq!(sh("ip -o link show master bne1").lines().count(), 1);
    assert_eq!(files(&leases), vec![again.ips[0].addr().to_string()]);
    assert_eq!(files(&cfg.cache_dir()).len(), 1);

    // A reboot: kernel state (netns, veth, bridge, iptables) and the run root are gone;
    // the CNI cache and the leases under the state root are not. Made by detaching
    // properly and putting the persistent files back.
    let kept: Vec<(std::path::PathBuf, Vec<u8>)> = [cfg.cache_dir(), leases.clone()]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("dir").flatten())
        .map(|e| (e.path(), std::fs::read(e.path()).expect("read")))
        .collect();
    detach(&cfg, &net.c).expect("detach before the reboot");
    for (path, bytes) in &kept {
        std::fs::write(path, bytes).expect("restore");
    }
    std::fs::remove_dir_all(tmp.path().join("run")).expect("run root");
    sh("ip link delete bne1");
    assert_eq!(files(&cfg.cache_dir()).len(), 1, "a stale cache entry");
    let rebooted = attach(&cfg, &net.c, &dir)
        .expect("attach after a reboot")
        .expect("an attachment");
    assert!(berth_network::netns::is_netns(&rebooted.netns));
    assert!(dir.join("hosts").exists(), "files written again");
    assert_eq!(sh("ip -o link show master bne1").lines().count(), 1);
    assert_eq!(files(&leases), vec![rebooted.ips[0].addr().to_string()]);
    let rules = sh("iptables-save");
    assert!(rules.contains(&id) && rules.contains(&format!("--dport {port}")));

    detach(&cfg, &net.c).expect("detach");
    detach(&cfg, &net.c).expect("detach twice");
    assert_eq!(sh("ip -o link show master bne1"), "", "veth left");
    assert_eq!(files(&leases), Vec::<String>::new(), "lease left");
    assert_eq!(files(&cfg.cache_dir()), Vec::<String>::new(), "cache left");
    assert!(!cfg.netns_path(&id).exists(), "netns left");
    // The network's NAT and forward chains stay with the network, and go with it.
    let path = cfg.conflist_path("ne1");
    let nat = berth_network::rules::nat_chain(&path);
    let fwd = berth_network::rules::forward_chain(&path);
    let saved = sh("iptables-save");
    assert!(saved.contains(&nat) && saved.contains(&fwd), "{saved}");
    Network::remove(&cfg, "ne1").expect("network rm");
    let left: Vec<String> = sh("iptables-save")
        .lines()
        .filter(|l| {
            l.contains(&id) || l.contains("10.125.1.") || l.contains(&nat) || l.contains(&fwd)
        })
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "{left:#?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&tmp.path().display().to_string()));
}

#[test]
fn none_and_host_attach_only_write_the_files() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = NetworkConfig::new(tmp.path().join("root"), tmp.path().join("run"));
    for mode in [NetworkMode::None, NetworkMode::Host] {
        let c = record("enginenone", mode.clone(), vec![]);
        let dir = tmp.path().join(mode.to_string());
        assert_eq!(attach(&cfg, &c, &dir).expect("attach"), None);
        let hosts = std::fs::read_to_string(dir.join("hosts")).expect("hosts");
        assert!(hosts.ends_with("127.0.1.1\tenet engine-net\n"), "{hosts}");
        detach(&cfg, &c).expect("detach");
    }
    assert!(!cfg.netns_dir.exists() && !cfg.cache_dir().exists());
}
