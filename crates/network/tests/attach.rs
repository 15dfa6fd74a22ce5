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
        // Outbound NAT: a POSTROUTING rule for the container's address into a chain that masquerades.
        let nat = common::sh("iptables -t nat -S");
        let ip = att.ips[0].addr().to_string();
        let jump = nat
            .lines()
            .find(|l| l.starts_with("-A POSTROUTING") && l.contains(&format!("-s {ip}/32")))
            .unwrap_or_else(|| panic!("no NAT rule for {ip}:\n{nat}"));
        let chain = jump.rsplit(" -j ").next().expect("a jump");
        assert!(
            nat.contains(&format!("-A {chain} ! -d 224.0.0.0/4")) && nat.contains("MASQUERADE"),
            "{nat}"
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
