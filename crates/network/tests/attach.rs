//! attach with real plugins in real namespaces. Skipped (with the reason printed)
//! when not root or the plugins are missing.

mod common;

use berth_network::{attach, detach, NetworkError, PortMapping, DEFAULT_NETWORK};
use std::io::Read;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two containers on the default network: eth0 with an address in 10.89.0.0/16, lo
/// up, they reach each other and the gateway, and outbound NAT is in place. The only
/// test on the default network (its bridge and subnet are fixed).
#[test]
fn two_containers_on_the_default_network_reach_each_other_and_the_gateway() {
    require_root!();
    let env = common::env();
    let (id_a, id_b) = (common::cid("defa"), common::cid("defb"));
    let a = attach(&env.cfg, DEFAULT_NETWORK, &id_a, &[], "a").expect("attach a");
    let b = attach(&env.cfg, DEFAULT_NETWORK, &id_b, &[], "b").expect("attach b");
    let subnet: ipnet::IpNet = "10.89.0.0/16".parse().expect("cidr");
    let gateway: IpAddr = "10.89.0.1".parse().expect("ip");

    for att in [&a, &b] {
        assert_eq!(att.interface, "eth0");
        assert_eq!(att.ips.len(), 1, "{att:?}");
        assert!(subnet.contains(&att.ips[0].addr()), "{att:?}");
        assert_eq!(att.gateway, Some(gateway));
        assert!(att.mac.is_some());
        let (_, addrs) = common::in_netns(&att.netns, &["ip", "-o", "addr", "show", "dev", "eth0"]);
        assert!(addrs.contains(&att.ips[0].to_string()), "{addrs}");
        let (_, lo) = common::in_netns(&att.netns, &["ip", "-o", "link", "show", "lo"]);
        assert!(lo.contains(",UP"), "lo is down: {lo}");
        let (ok, out) = common::in_netns(
            &att.netns,
            &["busybox", "ping", "-c1", "-W2", &gateway.to_string()],
        );
        assert!(ok, "ping gateway: {out}");
        // No NAT of its own: the bridge plugin's per-container chain is not made.
        let ip = att.ips[0].addr().to_string();
        let nat = common::sh("iptables -t nat -S");
        assert!(
            !nat.lines().any(|l| l.contains(&format!("-s {ip}/32"))),
            "{nat}"
        );
    }
    // Outbound NAT and forwarding: one chain each for the network, for the whole subnet.
    let rules = common::network_rules(&env.cfg, DEFAULT_NETWORK);
    let path = env.cfg.conflist_path(DEFAULT_NETWORK);
    let (nat, fwd) = (
        berth_network::rules::nat_chain(&path),
        berth_network::rules::forward_chain(&path),
    );
    for want in [
        "-A POSTROUTING -s 10.89.0.0/16 ".to_string(),
        format!("-A {nat} -d 10.89.0.0/16 -j ACCEPT"),
        format!("-A {nat} ! -d 224.0.0.0/4 -j MASQUERADE"),
        "-A FORWARD -m comment --comment \"berth network ".to_string(),
        format!("-A {fwd} -d 10.89.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-A {fwd} -s 10.89.0.0/16 -j ACCEPT"),
    ] {
        assert!(
            rules.iter().any(|r| r.starts_with(&want)),
            "{want}: {rules:#?}"
        );
    }
    let (ok, out) = common::in_netns(
        &a.netns,
        &[
            "busybox",
            "ping",
            "-c1",
            "-W2",
            &b.ips[0].addr().to_string(),
        ],
    );
    assert!(ok, "a → b: {out}");
    let (ok, out) = common::in_netns(
        &b.netns,
        &[
            "busybox",
            "ping",
            "-c1",
            "-W2",
            &a.ips[0].addr().to_string(),
        ],
    );
    assert!(ok, "b → a: {out}");

    berth_network::check(&env.cfg, DEFAULT_NETWORK, &id_a).expect("CHECK a");

    detach(&env.cfg, DEFAULT_NETWORK, &id_a).expect("detach a");
    assert!(matches!(
        berth_network::check(&env.cfg, DEFAULT_NETWORK, &id_a),
        Err(NetworkError::NotAttached { .. })
    ));
    detach(&env.cfg, DEFAULT_NETWORK, &id_b).expect("detach b");
    assert!(!a.netns.exists() && !b.netns.exists());
}

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A TCP server inside the netns answers on the published host port, through
/// 127.0.0.1 (portmap's `snat` + route_localnet) and through the host's bridge IP.
#[test]
fn published_port_reaches_a_server_in_the_container() {
    require_root!();
    let env = common::env();
    env.network("ports", 1);
    let id = common::cid("port");
    let host_port = free_port();
    let mapping: PortMapping = format!("{host_port}:80").parse().expect("mapping");
    let att = attach(
        &env.cfg,
        "ports",
        &id,
        std::slice::from_ref(&mapping),
        "web",
    )
    .expect("attach");
    assert_eq!(att.ports, vec![mapping.clone()]);

    for target in ["127.0.0.1", "10.123.1.1"] {
        // A one-shot server: prints a line to whoever connects, then exits.
        let mut server = Command::new("nsenter")
            .arg(format!("--net={}", att.netns.display()))
            .args([
                "--",
                "busybox",
                "sh",
                "-c",
                "echo hello-from-container | busybox nc -l -p 80",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("server");
        let got = read_with_retry(&format!("{target}:{host_port}"));
        let _ = server.kill();
        let _ = server.wait();
        assert_eq!(got.trim(), "hello-from-container", "via {target}");
    }

    // The port is now published: a second container cannot take it.
    let other = common::cid("port2");
    let err = attach(&env.cfg, "ports", &other, &[mapping], "web2").expect_err("port taken");
    assert!(
        err.to_string().contains(&format!(
            "port {host_port}/tcp is already published by container {id}"
        )),
        "{err}"
    );
    assert!(!env.cfg.netns_path(&other).exists());

    detach(&env.cfg, "ports", &id).expect("detach");
}

fn read_with_retry(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = TcpStream::connect(addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        });
        match attempt {
            Ok(text) if !text.is_empty() => return text,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("no answer from {addr}: {other:?}"),
        }
    }
}

/// A host port already bound is refused before anything is created.
#[test]
fn port_in_use_is_refused_and_leaves_nothing() {
    require_root!();
    let env = common::env();
    env.network("busy", 2);
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let id = common::cid("busy");
    let mapping: PortMapping = format!("{port}:80").parse().expect("mapping");
    let before = common::iptables();
    let err = attach(&env.cfg, "busy", &id, &[mapping], "x").expect_err("in use");
    assert!(matches!(err, NetworkError::Port(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("port {port}/tcp is already in use")
    );
    assert!(!env.cfg.netns_path(&id).exists());
    assert!(common::files_in(&env.cfg.cache_dir()).is_empty());
    assert!(common::leases(&env.cfg, "busy").is_empty());
    assert_eq!(
        common::rules_of(&common::iptables(), &id, "10.123.2."),
        common::rules_of(&before, &id, "10.123.2.")
    );
}

/// A namespace outside every container network, joined to the host by a veth:
/// host 198.51.100.1/30, outside 198.51.100.2/30 (TEST-NET-2;
/// the VM's own network is TEST-NET-1), no route back to any container
/// subnet. Removed on drop.
struct Outside {
    ns: String,
    host_if: String,
}

impl Outside {
    fn new() -> Outside {
        let n = std::process::id() % 100_000;
        let o = Outside {
            ns: format!("berth-test-outside-{n}"),
            host_if: format!("vnat{n}"),
        };
        let peer = format!("vnato{n}");
        for cmd in [
            format!("ip netns add {}", o.ns),
            format!("ip link add {} type veth peer name {peer}", o.host_if),
            format!("ip link set {peer} netns {}", o.ns),
            format!("ip addr add 198.51.100.1/30 dev {}", o.host_if),
            format!("ip link set {} up", o.host_if),
            format!("ip -n {} addr add 198.51.100.2/30 dev {peer}", o.ns),
            format!("ip -n {} link set {peer} up", o.ns),
            format!("ip -n {} link set lo up", o.ns),
        ] {
            let out = Command::new("sh").args(["-c", &cmd]).output().expect("sh");
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        o
    }

    /// Serves one connection on 198.51.100.2:`port` inside the namespace; the thread
    /// returns the address the connection came from.
    fn accept_one(&self, port: u16) -> std::thread::JoinHandle<std::io::Result<IpAddr>> {
        use std::io::Write;
        use std::os::fd::AsFd;
        let path = format!("/run/netns/{}", self.ns);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            // The network namespace is per thread: only this thread moves.
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            let listener = TcpListener::bind(("198.51.100.2", port))?;
            let _ = ready_tx.send(());
            listener.set_nonblocking(true)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        // Read the request first: closing with unread bytes would reset
                        // the connection under the client's feet.
                        conn.set_nonblocking(false)?;
                        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
                        let mut req = Vec::new();
                        let mut b = [0u8; 1024];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut b)? {
                                0 => break,
                                n => req.extend_from_slice(&b[..n]),
                            }
                        }
                        conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")?;
                        return Ok(peer.ip());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "none"));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(e),
                }
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
            panic!("no server in {}: {:?}", self.ns, handle.join());
        }
        handle
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// Outbound NAT and forwarding for real, on a host that drops forwarded traffic: a
/// server outside sees a container's connection come from the host's address. Without
/// berth's rules (removed, as a reboot would) the same connection fails; the next attach
/// makes them again; `network rm` takes them away.
#[test]
fn outbound_nat_and_forwarding_work_past_a_drop_and_go_with_the_network() {
    require_root!();
    let env = common::env();
    let net = env.network("nat", 8);
    let host_drops = common::ForwardDrop::new("10.123.8.0/24");
    let outside = Outside::new();
    let fetch = |att: &berth_network::Attachment, port: u16| {
        common::in_netns(
            &att.netns,
            // Not wget's -T: Debian's busybox 1.35 wget crashes with it.
            &[
                "busybox",
                "timeout",
                "3",
                "busybox",
                "wget",
                "-q",
                "-O-",
                &format!("http://198.51.100.2:{port}/"),
            ],
        )
    };

    let a = attach(&env.cfg, "nat", &common::cid("nata"), &[], "a").expect("attach");
    assert!(!common::network_rules(&env.cfg, "nat").is_empty());
    let server = outside.accept_one(18081);
    let (ok, out) = fetch(&a, 18081);
    assert!(ok && out.contains("ok"), "fetch through NAT: {out}");
    let peer = server.join().expect("thread").expect("a connection");
    assert_eq!(
        peer.to_string(),
        "198.51.100.1",
        "the server saw the host's address"
    );

    // The rules gone (as after a reboot, which empties the run root's marker too).
    berth_network::rules::remove(&env.cfg, &net).expect("remove the network's rules");
    assert_eq!(common::network_rules(&env.cfg, "nat"), Vec::<String>::new());
    let server = outside.accept_one(18082);
    let (ok, out) = fetch(&a, 18082);
    assert!(!ok, "reached the outside without NAT: {out}");
    drop(server);

    // The next attach makes them again, and both containers get out.
    let b = attach(&env.cfg, "nat", &common::cid("natb"), &[], "b").expect("attach");
    for (att, port) in [(&a, 18083), (&b, 18084)] {
        let server = outside.accept_one(port);
        let (ok, out) = fetch(att, port);
        assert!(
            ok && out.contains("ok"),
            "fetch after the rules came back: {out}"
        );
        assert_eq!(
            server.join().expect("thread").expect("conn").to_string(),
            "198.51.100.1"
        );
    }

    // Refused while in use; gone with the network.
    assert!(matches!(
        berth_network::Network::remove(&env.cfg, "nat"),
        Err(NetworkError::InUse { .. })
    ));
    assert!(!common::network_rules(&env.cfg, "nat").is_empty());
    detach(&env.cfg, "nat", &a.container_id).expect("detach a");
    detach(&env.cfg, "nat", &b.container_id).expect("detach b");
    assert!(
        !common::network_rules(&env.cfg, "nat").is_empty(),
        "kept while the network is"
    );
    berth_network::Network::remove(&env.cfg, "nat").expect("network rm");
    assert_eq!(common::network_rules(&env.cfg, "nat"), Vec::<String>::new());
    drop(host_drops);
    let left: Vec<String> = common::iptables()
        .into_iter()
        .filter(|l| l.contains("10.123.8."))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

/// An internal network: its containers reach each other (across a host that drops
/// forwarded traffic: the bridge's packets pass FORWARD when br_netfilter is loaded),
/// and what leaves the subnet is dropped by the network's own chain, not masqueraded.
#[test]
fn internal_network_forwards_only_inside_itself() {
    require_root!();
    let env = common::env();
    let opts = berth_network::CreateOptions {
        name: "inner".into(),
        subnet: Some("10.123.9.0/24".parse().expect("cidr")),
        bridge: Some("btest9".into()),
        internal: true,
        ..Default::default()
    };
    let net = berth_network::Network::create(&env.cfg, &opts).expect("create");
    let _drop = common::ForwardDrop::new("10.123.9.0/24");
    let a = attach(&env.cfg, "inner", &common::cid("inna"), &[], "a").expect("attach a");
    let b = attach(&env.cfg, "inner", &common::cid("innb"), &[], "b").expect("attach b");

    let rules = common::network_rules(&env.cfg, "inner");
    let fwd = berth_network::rules::forward_chain(&net.path);
    for want in [
        format!("-A {fwd} -s 10.123.9.0/24 -d 10.123.9.0/24 -j ACCEPT"),
        format!("-A {fwd} -s 10.123.9.0/24 -j DROP"),
        format!("-A {fwd} -d 10.123.9.0/24 -j DROP"),
    ] {
        assert!(rules.contains(&want), "{want}: {rules:#?}");
    }
    assert!(
        !rules.iter().any(|r| r.contains("MASQUERADE")),
        "{rules:#?}"
    );

    let (ok, out) = common::in_netns(
        &a.netns,
        &[
            "busybox",
            "ping",
            "-c1",
            "-W2",
            &b.ips[0].addr().to_string(),
        ],
    );
    assert!(ok, "a → b: {out}");

    // Off the network (TEST-NET-3, routed out through the host's default route).
    let dropped = || {
        common::sh(&format!("iptables -w -L {fwd} -n -v -x"))
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 8 && f[2] == "DROP" && f[7] == "10.123.9.0/24")
            .and_then(|f| f[0].parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = dropped();
    let (ok, out) = common::in_netns(&a.netns, &["busybox", "ping", "-c1", "-W1", "203.0.113.1"]);
    assert!(!ok, "an internal container reached out: {out}");
    assert!(dropped() > before, "not dropped by {fwd}");

    detach(&env.cfg, "inner", &a.container_id).expect("detach a");
    detach(&env.cfg, "inner", &b.container_id).expect("detach b");
    berth_network::Network::remove(&env.cfg, "inner").expect("network rm");
    assert_eq!(
        common::network_rules(&env.cfg, "inner"),
        Vec::<String>::new()
    );
}
