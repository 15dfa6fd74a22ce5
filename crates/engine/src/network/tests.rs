use super::*;
use berth_network::port::PortError;
use std::collections::BTreeMap;

fn pm(ip: Option<&str>, h: u16, c: u16, p: Protocol) -> PortMapping {
    PortMapping {
        host_ip: ip.map(|i| i.parse().expect("ip")),
        host_port: h,
        container_port: c,
        protocol: p,
    }
}

fn image(exposed: &[&str]) -> ImageConfig {
    let mut c = ImageConfig::default();
    c.rootfs.kind = "layers".into();
    c.config.cmd = Some(vec!["sh".into()]);
    if !exposed.is_empty() {
        c.config.exposed_ports = Some(
            exposed
                .iter()
                .map(|k| (k.to_string(), json!({})))
                .collect::<BTreeMap<_, _>>(),
        );
    }
    c
}

/// A private state/run root; only files are written (no namespaces, no root needed).
fn cfg() -> (tempfile::TempDir, NetworkConfig) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = NetworkConfig::new(tmp.path().join("root"), tmp.path().join("run"));
    (tmp, cfg)
}

#[test]
fn network_modes_parse_display_and_serialise() {
    assert_eq!("none".parse::<NetworkMode>().ok(), Some(NetworkMode::None));
    assert_eq!("host".parse::<NetworkMode>().ok(), Some(NetworkMode::Host));
    assert_eq!(
        "bridge".parse::<NetworkMode>().ok(),
        Some(NetworkMode::Network("berth".into()))
    );
    assert_eq!(NetworkMode::default_network().to_string(), "berth");
    assert_eq!(
        "my-net.1".parse::<NetworkMode>().ok(),
        Some(NetworkMode::Network("my-net.1".into()))
    );
    for bad in ["", "a/b", "container:web", "-x", "ns:/proc/1/ns/net"] {
        let err = bad.parse::<NetworkMode>().expect_err(bad);
        assert!(err.is_usage(), "{bad}: {err}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    for m in [
        NetworkMode::None,
        NetworkMode::Host,
        NetworkMode::Network("web".into()),
    ] {
        let text = serde_json::to_string(&m).expect("serialise");
        assert_eq!(text, format!("\"{m}\""));
        assert_eq!(
            serde_json::from_str::<NetworkMode>(&text).expect("parse"),
            m
        );
    }
    assert!(serde_json::from_str::<NetworkMode>("\"a/b\"").is_err());
}

#[test]
fn records_from_before_networking_read_as_none_without_ports() {
    let old = r#"{"id":"abc","name":"n","image":"i","image_id":"x","command":[],
        "created":1,"status":"exited","auto_remove":false}"#;
    let c: Container = serde_json::from_str(old).expect("old record");
    assert_eq!(c.network, NetworkMode::None);
    assert!(c.ports.is_empty() && c.hostname.is_empty());
    let mut c = c;
    c.network = NetworkMode::Network("berth".into());
    c.ports = vec![pm(None, 8080, 80, Protocol::Tcp)];
    let back: Container =
        serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("round trip");
    assert_eq!((back.network, back.ports), (c.network, c.ports));
}

#[test]
fn publish_values_parse_with_optional_host_ports() {
    let p = |s: &str| s.parse::<Publish>().map(|p| p.0);
    assert_eq!(p("8080:80"), Ok(vec![pm(None, 8080, 80, Protocol::Tcp)]));
    assert_eq!(p("80"), Ok(vec![pm(None, 0, 80, Protocol::Tcp)]));
    assert_eq!(
        p("127.0.0.1::53/udp"),
        Ok(vec![pm(Some("127.0.0.1"), 0, 53, Protocol::Udp)])
    );
    assert_eq!(
        p("8000-8001:80-81"),
        Ok(vec![
            pm(None, 8000, 80, Protocol::Tcp),
            pm(None, 8001, 81, Protocol::Tcp)
        ])
    );
    let err = p("99999").expect_err("too big");
    assert!(matches!(err, PortError::BadPort { .. }), "{err}");
    assert!(err.to_string().contains("\"99999\""), "{err}");
    assert!(matches!(p("80/sctp"), Err(PortError::BadProtocol { .. })));
    assert!(matches!(p("1-2:80"), Err(PortError::RangeMismatch { .. })));
    assert!(matches!(p("x:1:2"), Err(PortError::BadIp { .. })));
}

#[test]
fn exposed_ports_of_the_image() {
    let img = image(&["80/tcp", "53/udp", "8080", "9000-9001/tcp", "132/sctp"]);
    let mut got = exposed_ports(&img);
    got.sort_by_key(|(port, proto)| (*port, proto.to_string()));
    assert_eq!(
        got,
        vec![
            (53, Protocol::Udp),
            (80, Protocol::Tcp),
            (8080, Protocol::Tcp),
            (9000, Protocol::Tcp),
            (9001, Protocol::Tcp)
        ]
    );
}

#[test]
fn prepare_points_the_spec_at_the_netns_and_the_etc_files() {
    let (_tmp, cfg) = cfg();
    let dir = Path::new("/run/berth/containers/c1");
    let mut so = SpecOptions {
        network: NetworkMode::default_network(),
        publish: vec![pm(None, 0, 8080, Protocol::Tcp)],
        publish_all: true,
        ..Default::default()
    };
    let ports =
        prepare(&cfg, "c1", dir, &image(&["80/tcp", "8080/tcp"]), &mut so).expect("prepare");
    // -p 8080 and the exposed 80 (8080 is already published): free host ports.
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(
        ports.iter().map(|p| p.container_port).collect::<Vec<_>>(),
        vec![8080, 80]
    );
    assert!(ports.iter().all(|p| p.host_port != 0));
    assert_eq!(so.netns, Some(cfg.netns_path("c1")));
    let dests: Vec<_> = so.mounts.iter().map(|m| m["destination"].clone()).collect();
    assert_eq!(
        dests,
        vec![
            json!("/etc/hosts"),
            json!("/etc/resolv.conf"),
            json!("/etc/hostname")
        ]
    );
    assert_eq!(
        so.mounts[0]["source"],
        json!("/run/berth/containers/c1/hosts")
    );
    // The default network's conflist was written; the spec joins the netns by path.
    assert!(cfg.conflist_path("berth").exists());
    let spec = crate::spec::build(&image(&[]), Path::new("/nonexistent"), &so).expect("spec");
    let ns = spec["linux"]["namespaces"].as_array().expect("namespaces");
    assert!(ns.contains(&json!({"type": "network", "path": cfg.netns_path("c1")})));
    so.netns = None;
    assert!(matches!(
        crate::spec::build(&image(&[]), Path::new("/nonexistent"), &so),
        Err(crate::spec::SpecError::NoNetns(_))
    ));
}

#[test]
fn prepare_refuses_what_cannot_work() {
    let (_tmp, cfg) = cfg();
    let dir = Path::new("/d");
    let prep = |so: &mut SpecOptions| prepare(&cfg, "c1", dir, &image(&["80/tcp"]), so);
    // A missing network.
    let mut so = SpecOptions {
        network: NetworkMode::Network("nosuch".into()),
        ..Default::default()
    };
    let err = prep(&mut so).expect_err("no such network");
    assert!(err.is_not_found(), "{err}");
    // A host port in use.
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let mut so = SpecOptions {
        network: NetworkMode::default_network(),
        publish: vec![pm(None, port, 80, Protocol::Tcp)],
        ..Default::default()
    };
    let err = prep(&mut so).expect_err("in use");
    assert!(err.is_port_conflict(), "{err}");
    assert!(err.to_string().contains("already in use"), "{err}");
    // The same host port twice.
    drop(l);
    so.publish.push(pm(None, port, 81, Protocol::Tcp));
    assert!(prep(&mut so).expect_err("twice").is_port_conflict());
    // -p without a network to publish from; -P is ignored there.
    for mode in [NetworkMode::None, NetworkMode::Host] {
        let mut so = SpecOptions {
            network: mode.clone(),
            publish: vec![pm(None, 8080, 80, Protocol::Tcp)],
            ..Default::default()
        };
        let err = prep(&mut so).expect_err("nothing to publish to");
        assert!(err.is_usage(), "{err}");
        let mut so = SpecOptions {
            network: mode.clone(),
            publish_all: true,
            ..Default::default()
        };
        assert_eq!(prep(&mut so).expect("-P ignored"), vec![]);
        // none joins a namespace berth makes (lo up); host joins none.
        let want = (mode == NetworkMode::None).then(|| cfg.netns_path("c1"));
        assert_eq!(so.netns, want);
        assert_eq!(so.mounts.len(), 3);
    }
}

#[test]
fn a_user_mount_of_an_etc_file_wins() {
    let (_tmp, cfg) = cfg();
    let mut so = SpecOptions {
        mounts: vec![json!({"destination": "/etc/hosts", "type": "bind", "source": "/mine"})],
        ..Default::default()
    };
    prepare(&cfg, "c1", Path::new("/d"), &image(&[]), &mut so).expect("prepare");
    let hosts: Vec<_> = so
        .mounts
        .iter()
        .filter(|m| m["destination"] == "/etc/hosts")
        .collect();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["source"], "/mine");
    assert_eq!(so.mounts.len(), 3);
}

#[test]
fn ports_column_like_podman() {
    assert_eq!(format_ports(&[]), "");
    assert_eq!(
        format_ports(&[pm(None, 8080, 80, Protocol::Tcp)]),
        "0.0.0.0:8080->80/tcp"
    );
    assert_eq!(
        format_ports(&[
            pm(None, 8000, 80, Protocol::Tcp),
            pm(None, 8001, 81, Protocol::Tcp),
            pm(None, 8002, 82, Protocol::Udp),
            pm(Some("127.0.0.1"), 9000, 90, Protocol::Tcp),
            pm(Some("::1"), 53, 53, Protocol::Udp),
            pm(None, 7000, 70, Protocol::Tcp),
            pm(None, 7002, 71, Protocol::Tcp),
        ]),
        "0.0.0.0:8000-8001->80-81/tcp, 0.0.0.0:8002->82/udp, 127.0.0.1:9000->90/tcp, [::1]:53->53/udp, 0.0.0.0:7000->70/tcp, 0.0.0.0:7002->71/tcp"
    );
}
