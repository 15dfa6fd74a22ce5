//! `berth run` networking on real CNI plugins: the default bridge network, published
//! ports (-p, -P), the /etc files, none and host, refusals, and that `rm -f` leaves no
//! veth, netns, lease, iptables rule or cache entry. Each test but the default
//! network's uses a network of its own (bridge bntN, 10.124.N.0/24), so they can run
//! in parallel; the default network's test is the only one on berth0.

mod common;

use berth_network::{CreateOptions, Network, NetworkConfig};
use common::host::{free_port, Host};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Serves `marker` over HTTP on port 80 in the container.
const HTTPD: &str =
    "mkdir -p /www && echo served-by-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

fn cni_ready() -> bool {
    let ok = ["bridge", "host-local", "portmap", "loopback"]
        .iter()
        .all(|p| std::path::Path::new("/usr/lib/cni").join(p).exists());
    if !ok {
        eprintln!("SKIP: CNI plugins missing (Debian: containernetworking-plugins)");
    }
    ok
}

fn host() -> Option<Host> {
    if !common::is_root() || !cni_ready() {
        eprintln!("SKIP: needs root and the CNI plugins");
        return None;
    }
    Host::new()
}

fn net_cfg(h: &Host) -> NetworkConfig {
    NetworkConfig::new(h.dir.path().join("root"), h.runroot())
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network of the test's own, removed (with its bridge) on drop.
struct TestNet {
    cfg: NetworkConfig,
    name: String,
    bridge: String,
    /// What every address of the subnet starts with.
    prefix: String,
    gateway: String,
}

impl TestNet {
    fn new(h: &Host, n: u8) -> TestNet {
        let cfg = net_cfg(h);
        let name = format!("nt{n}");
        let bridge = format!("bnt{n}");
        let opts = CreateOptions {
            name: name.clone(),
            subnet: Some(format!("10.124.{n}.0/24").parse().expect("cidr")),
            bridge: Some(bridge.clone()),
            ..Default::default()
        };
        Network::create(&cfg, &opts).expect("create network");
        TestNet {
            cfg,
            name,
            bridge,
            prefix: format!("10.124.{n}."),
            gateway: format!("10.124.{n}.1"),
        }
    }

    /// The default network `berth` (berth0, 10.89.0.0/16); its bridge is deleted on
    /// drop only when nothing is attached to it any more.
    fn default(h: &Host) -> TestNet {
        TestNet {
            cfg: net_cfg(h),
            name: "berth".into(),
            bridge: "berth0".into(),
            prefix: "10.89.".into(),
            gateway: "10.89.0.1".into(),
        }
    }

    /// Nothing of any container remains on this network: no veth on the bridge, no
    /// lease, no cache entry, no netns, no iptables rule naming the subnet or `ids`.
    fn assert_clean(&self, ids: &[&str]) {
        let ports = sh(&format!(
            "ip -o link show master {} 2>/dev/null",
            self.bridge
        ));
        assert_eq!(ports, "", "veths left on {}", self.bridge);
        let leases: Vec<String> = files(&self.cfg.ipam_dir().join(&self.name))
            .into_iter()
            .filter(|f| f != "lock" && !f.starts_with("last_reserved_ip"))
            .collect();
        assert!(leases.is_empty(), "leases left: {leases:?}");
        assert_eq!(files(&self.cfg.cache_dir()), Vec::<String>::new(), "cache");
        assert_eq!(files(&self.cfg.netns_dir), Vec::<String>::new(), "netns");
        // A network's own NAT and forward chains stay while the network does; so do
        // those of the same subnet made by berths with other roots (the default network's).
        let rules: Vec<String> = sh("iptables-save")
            .lines()
            .filter(|l| l.contains(&self.prefix) || ids.iter().any(|id| l.contains(id)))
            .filter(|l| !l.contains("BERTH-NAT-") && !l.contains("BERTH-FWD-"))
            .map(str::to_string)
            .collect();
        assert!(rules.is_empty(), "iptables rules left: {rules:#?}");
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if self.name == "berth" {
            if sh(&format!("ip -o link show master {}", self.bridge)).is_empty() {
                let _ = Command::new("ip")
                    .args(["link", "delete", &self.bridge])
                    .output();
            }
            return;
        }
        let _ = Network::remove(&self.cfg, &self.name);
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .stderr(Stdio::null())
            .output();
    }
}

fn files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A foreground `berth run` as a background child (there is no `-d` yet); `rm -f`
/// and a kill on drop, so a failing test leaves nothing running.
struct Bg<'a> {
    h: &'a Host,
    name: String,
    child: Child,
}

impl<'a> Bg<'a> {
    fn start(h: &'a Host, image: &str, name: &str, flags: &[&str], cmd: &[&str]) -> Bg<'a> {
        let child = h
            .cmd()
            .args(["run", "--name", name])
            .args(flags)
            .arg(image)
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth run");
        Bg {
            h,
            name: name.into(),
            child,
        }
    }

    /// Waits until `ps` says running; returns its JSON entry.
    fn running(&mut self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("berth run exited early ({status}): {err}");
            }
            let o = self.h.berth(&["ps", "--format", "json"]);
            let all: serde_json::Value = serde_json::from_str(&o.stdout).expect("ps json");
            if let Some(c) = all
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == self.name.as_str())
            {
                return c.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} not running after 20s", self.name);
    }

    /// `rm -f`, then the CLI must exit on its own; returns what it wrote to stderr.
    fn remove(mut self) -> String {
        let o = self.h.berth(&["rm", "-f", &self.name]);
        assert_eq!(o.code, 0, "rm -f: {}", o.stderr);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "berth run still running after rm -f"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Bg<'_> {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.h.berth(&["rm", "-f", &self.name]);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET / from `addr`, retried until the server answers (or 10 s pass).
fn http_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = (|| -> std::io::Result<String> {
            let sock = addr.parse().expect("socket address");
            let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match got {
            Ok(body) if body.contains("200") => return body,
            other if Instant::now() > deadline => panic!("GET {addr}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn default_network_publishes_a_port_and_rm_leaves_nothing() {
    let Some(h) = host() else { return };
    let net = TestNet::default(&h);
    let port = free_port();
    let publish = format!("{port}:80");
    let mut web = Bg::start(
        &h,
        &h.image,
        "web",
        &["-p", &publish, "--hostname", "web1"],
        &["sh", "-c", HTTPD],
    );
    let rec = web.running();
    let id = rec["id"].as_str().expect("id").to_string();
    assert_eq!(rec["network"], "berth", "{rec}");
    assert_eq!(
        rec["ports"],
        serde_json::json!([{"hostPort": port, "containerPort": 80, "protocol": "tcp"}])
    );
    // From the host: through loopback and through the bridge's own address.
    let body = http_get(&format!("127.0.0.1:{port}"));
    assert!(body.contains("served-by-web1"), "{body}");
    let body = http_get(&format!("{}:{port}", net.gateway));
    assert!(body.contains("served-by-web1"), "{body}");
    // While attached: a veth on berth0, a netns, a cache entry, rules naming the id.
    assert!(!sh("ip -o link show master berth0").is_empty());
    assert!(h.runroot().join("netns").join(&id).exists());
    assert!(sh("iptables-save").contains(&id));
    let ps = h.berth(&["ps"]);
    assert!(ps.stdout.lines().next().unwrap_or("").contains("PORTS"));
    assert!(
        ps.stdout.contains(&format!("0.0.0.0:{port}->80/tcp")),
        "{}",
        ps.stdout
    );

    // The same host port again: refused as a conflict, nothing made.
    let o = h.berth(&["run", "--rm", "-p", &publish, &h.image, "true"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!(
            "port {port}/tcp is already published by container {id}"
        )),
        "{}",
        o.stderr
    );
    assert_eq!(h.berth(&["ps", "-aq"]).stdout.lines().count(), 1);
    assert_eq!(files(&net.cfg.cache_dir()).len(), 1);

    // The exiting `run` and `rm -f` both detach: neither complains.
    let err = web.remove();
    assert_eq!(err, "", "berth run after rm -f");
    net.assert_clean(&[&id]);
    h.assert_clean();
}

#[test]
fn containers_reach_the_host_and_get_hosts_resolv_conf_and_hostname() {
    let Some(h) = host() else { return };
    let net = TestNet::new(&h, 1);
    // A host server on every address, reached from the container at the gateway.
    let server = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = server.local_addr().expect("addr").port();
    let serve = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut s, _)) = server.accept() else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nhost-pong\n");
        }
    });
    let script = format!(
        "wget -qO- http://{gw}:{port}/ && wget -qO- http://host.containers.internal:{port}/ ; \
         echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname; \
         echo ---; busybox ip -4 -o addr show eth0",
        gw = net.gateway
    );
    let o = h.run(
        &["--network", "nt1", "--name", "talk", "--hostname", "box"],
        &["sh", "-c", &script],
    );
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let parts: Vec<&str> = o.stdout.split("---\n").collect();
    assert_eq!(parts.len(), 5, "{}", o.stdout);
    assert_eq!(parts[0], "host-pong\nhost-pong\n", "{}", o.stderr);
    let _ = serve.join();
    let ip = parts[4]
        .split_whitespace()
        .find(|w| w.starts_with(&net.prefix))
        .and_then(|w| w.split('/').next())
        .unwrap_or_else(|| panic!("no address in {}", parts[4]))
        .to_string();
    let hosts = parts[1];
    assert!(hosts.starts_with("127.0.0.1\tlocalhost"), "{hosts}");
    assert!(hosts.contains(&format!("{ip}\tbox talk\n")), "{hosts}");
    assert!(
        hosts.contains(&format!("{}\thost.containers.internal\n", net.gateway)),
        "{hosts}"
    );
    // resolv.conf: the host's servers minus loopback ones.
    let resolv = parts[2];
    assert!(resolv.starts_with("# Generated by berth\n"), "{resolv}");
    let host_resolv =
        std::fs::read_to_string(berth_network::resolv::host_resolv_path()).unwrap_or_default();
    let expected = berth_network::resolv_conf(&host_resolv, None).contents;
    assert_eq!(resolv, expected);
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    assert_eq!(parts[3], "box\n");
    net.assert_clean(&[]);
    h.assert_clean();
}

#[test]
fn none_and_host_keep_their_meaning_and_bad_values_are_refused() {
    let Some(h) = host() else { return };
    let o = h.run(
        &["--network", "none", "--hostname", "solo", "--name", "solo"],
        &[
            "sh",
            "-c",
            "ls /sys/class/net; cat /etc/hosts /etc/hostname",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.starts_with("lo\n127.0.0.1\tlocalhost"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.ends_with("127.0.1.1\tsolo\nsolo\n"),
        "{}",
        o.stdout
    );
    let o = h.run(
        &["--network", "host"],
        &[
            "sh",
            "-c",
            "ls /sys/class/net | wc -l; cat /etc/resolv.conf",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (count, resolv) = o.stdout.split_once('\n').expect("two parts");
    assert_ne!(count.trim(), "1", "the host's interfaces");
    assert_eq!(
        resolv,
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        "the host's resolv.conf, loopback servers included"
    );
    // Usage errors (2), a missing network (3): each leaves nothing behind.
    for (flags, code, says) in [
        (vec!["-p", "99999"], 2, "99999"),
        (vec!["-p", "8080:80/sctp"], 2, "sctp"),
        (vec!["-p", "1-2:80"], 2, "differ in length"),
        (vec!["--network", "a/b"], 2, "a/b"),
        (vec!["--network", "none", "-p", "8080:80"], 2, "--publish"),
        (vec!["--network", "host", "-p", "8080:80"], 2, "--publish"),
        (vec!["--network", "nosuch"], 3, "nosuch"),
    ] {
        let o = h.run(&flags, &["true"]);
        assert_eq!(o.code, code, "{flags:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{flags:?}: {}", o.stderr);
    }
    h.assert_clean();
    assert_eq!(files(&net_cfg(&h).cache_dir()), Vec::<String>::new());
}

#[test]
fn a_host_port_in_use_is_refused_and_leaves_nothing() {
    let Some(h) = host() else { return };
    let net = TestNet::new(&h, 2);
    let taken = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let publish = format!("{port}:80");
    let o = h.berth(&[
        "run",
        "--network",
        "nt2",
        "-p",
        &publish,
        "--name",
        "busy",
        &h.image,
        "true",
    ]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(
        o.stderr
            .contains(&format!("port {port}/tcp is already in use")),
        "{}",
        o.stderr
    );
    assert_eq!(h.berth(&["ps", "-aq"]).stdout, "", "no container record");
    net.assert_clean(&[]);
    h.assert_clean();
    // Freed, the same port works.
    drop(taken);
    let o = h.run(&["--network", "nt2", "-p", &publish], &["true"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    net.assert_clean(&[]);
    h.assert_clean();
}

#[test]
fn publish_all_maps_exposed_ports_to_free_host_ports() {
    let Some(h) = host() else { return };
    let net = TestNet::new(&h, 3);
    let mut img = berth_testutil::image::ImageBuilder::busybox().expect("image");
    img.config["config"]["ExposedPorts"] = serde_json::json!({"80/tcp": {}});
    img.push(h.reg.addr(), "exposed", "v1").expect("push");
    let image = format!("{}/exposed:v1", h.reg.addr());
    let mut web = Bg::start(
        &h,
        &image,
        "pall",
        &[
            "--network",
            "nt3",
            "-P",
            "-p",
            "127.0.0.1::81",
            "--hostname",
            "pall",
        ],
        &["sh", "-c", HTTPD],
    );
    let rec = web.running();
    let id = rec["id"].as_str().expect("id").to_string();
    let ports = rec["ports"].as_array().expect("ports").clone();
    assert_eq!(ports.len(), 2, "{rec}");
    let p81 = &ports[0];
    assert_eq!(
        (p81["hostIP"].as_str(), p81["containerPort"].as_u64()),
        (Some("127.0.0.1"), Some(81))
    );
    let p80 = &ports[1];
    assert_eq!(p80["containerPort"], 80);
    let host_port = p80["hostPort"].as_u64().expect("host port");
    assert!(host_port > 0);
    let body = http_get(&format!("127.0.0.1:{host_port}"));
    assert!(body.contains("served-by-pall"), "{body}");
    let ps = h.berth(&["ps"]).stdout;
    assert!(
        ps.contains(&format!(
            "127.0.0.1:{}->81/tcp, 0.0.0.0:{host_port}->80/tcp",
            p81["hostPort"]
        )),
        "{ps}"
    );
    web.remove();
    net.assert_clean(&[&id]);
    h.assert_clean();
}

#[test]
fn a_killed_cli_leaves_an_attachment_that_rm_f_removes() {
    let Some(h) = host() else { return };
    let net = TestNet::new(&h, 4);
    let port = free_port();
    let publish = format!("{port}:80");
    let mut web = Bg::start(
        &h,
        &h.image,
        "orphan",
        &["--network", "nt4", "-p", &publish],
        &["sh", "-c", HTTPD],
    );
    let id = web.running()["id"].as_str().expect("id").to_string();
    http_get(&format!("127.0.0.1:{port}"));
    // The CLI dies without detaching; the container and its network stay up.
    let _ = web.child.kill();
    let _ = web.child.wait();
    http_get(&format!("127.0.0.1:{port}"));
    let netns: PathBuf = h.runroot().join("netns").join(&id);
    assert!(netns.exists());
    let o = h.berth(&["rm", "-f", "orphan"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!netns.exists());
    net.assert_clean(&[&id]);
    h.assert_clean();
}

/// `kill -9` of the CLI at any point of `run` (a network, a published port, a named
/// volume): `ps -a` tells the truth about what is left, and `rm -f` removes all of it.
/// The kill lands at spread delays, so it hits the record, the snapshot, the netns and
/// ADD, the runtime's create and start, and a running container.
#[test]
fn a_cli_killed_at_any_point_of_run_leaves_state_rm_f_cleans() {
    let Some(h) = host() else { return };
    let net = TestNet::new(&h, 5);
    let mut ids = vec![];
    for (i, delay) in [0u64, 3, 6, 10, 15, 20, 30, 40, 60, 90, 130, 200]
        .into_iter()
        .enumerate()
    {
        let name = format!("cut{i}");
        let publish = format!("{}:80", free_port());
        let volume = format!("cutvol{i}:/data");
        let mut child = h
            .cmd()
            .args([
                "run",
                "--name",
                &name,
                "--network",
                "nt5",
                "-p",
                &publish,
                "-v",
            ])
            .args([volume.as_str(), h.image.as_str(), "sleep", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();

        // What ps says is so: a running container has its process; any other state,
        // none of this container's processes run.
        let o = h.berth(&["ps", "-a", "--format", "json"]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
        if let Some(c) = v
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["name"] == name.as_str())
        {
            let id = c["id"].as_str().expect("id").to_string();
            let o = h.berth(&["inspect", &name]);
            let state: serde_json::Value = serde_json::from_str(&o.stdout).expect("inspect");
            // Status and pid from one look: an in-flight start (in the monitor, the CLI
            // being gone) may move the container on between two commands.
            let pid = state[0]["State"]["Pid"].as_i64().unwrap_or(0);
            let status = state[0]["State"]["Status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if status == "running" {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                assert_eq!(cmd, b"sleep\x001000\x00", "{name} after {delay} ms: {c}");
            } else {
                assert_eq!(pid, 0, "{name} after {delay} ms: {c}");
            }
            ids.push(id);
        }
        let o = h.berth(&["rm", "-f", "-v", &name]);
        assert!(
            o.code == 0 || (o.code == 3 && o.stderr.contains("not found")),
            "{name} after {delay} ms: {} {}",
            o.code,
            o.stderr
        );
        // The named volume is kept by rm -v, as docker does; it is not in use now.
        let o = h.berth(&["volume", "rm", &format!("cutvol{i}")]);
        assert!(o.code == 0 || o.code == 3, "{}", o.stderr);
    }
    assert_eq!(h.berth(&["ps", "-aq"]).stdout, "");
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    net.assert_clean(&ids);
    h.assert_clean();
    // No process (monitor, CLI, container) of this root is left.
    let dir = h.dir.path().display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&dir))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "processes left");
}

/// `berth network`: create (with its refusals), ls, inspect, a container on the
/// network, rm refused while a container uses it and forced with -f, the NAT chain
/// made on first use and gone with the network, --internal without NAT, prune.
#[test]
fn network_create_ls_inspect_rm_prune() {
    let Some(h) = host() else { return };
    let cfg = net_cfg(&h);
    // Bridges go however the test ends (containers first: Host's drop comes later).
    struct Bridges<'a>(&'a Host);
    impl Drop for Bridges<'_> {
        fn drop(&mut self) {
            let _ = self.0.berth(&["rm", "-f", "nt9", "nt10"]);
            sh("ip link delete bnt9 2>/dev/null; ip link delete bnt10 2>/dev/null");
        }
    }
    let _bridges = Bridges(&h);
    let o = h.berth(&[
        "network",
        "create",
        "--subnet",
        "10.124.9.0/24",
        "--interface-name",
        "bnt9",
        "nt9",
    ]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "nt9\n"), "{}", o.stderr);
    let o = h.berth(&[
        "network",
        "create",
        "--subnet",
        "10.124.10.0/24",
        "--interface-name",
        "bnt10",
        "--internal",
        "nt10",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for (args, code, says) in [
        (vec!["network", "create", "nt9"], 6, "already exists"),
        (
            vec!["network", "create", "--subnet", "10.124.9.128/25", "x"],
            6,
            "overlaps network \"nt9\"",
        ),
        (
            vec!["network", "create", "--subnet", "ten", "x"],
            2,
            "--subnet",
        ),
        (
            vec!["network", "create", "--driver", "macvlan", "x"],
            2,
            "only bridge",
        ),
        (vec!["network", "rm", "berth"], 2, "default network"),
        (vec!["network", "rm", "nope"], 3, "not found"),
        (vec!["network", "inspect", "nope"], 3, "not found"),
    ] {
        let o = h.berth(&args);
        assert_eq!(o.code, code, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "said once: {}", o.stderr);
    }

    let o = h.berth(&["network", "ls", "-q"]);
    assert_eq!(o.stdout, "berth\nnt10\nnt9\n");
    let o = h.berth(&["network", "ls", "--format", "json"]);
    let all: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    let nt9 = all
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == "nt9"))
        .expect("nt9 listed");
    assert_eq!(nt9["network_interface"], "bnt9");
    assert_eq!(nt9["subnets"][0]["subnet"], "10.124.9.0/24");
    assert_eq!(nt9["subnets"][0]["gateway"], "10.124.9.1");
    assert_eq!(nt9["internal"], false);
    let o = h.berth(&["network", "inspect", "nt10"]);
    let nt10: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(nt10[0]["internal"], true);

    // A container on each: the NAT chain is made for nt9 only.
    for net in ["nt9", "nt10"] {
        let o = h.berth(&[
            "run",
            "-d",
            "--name",
            net,
            "--network",
            net,
            &h.image,
            "sleep",
            "100",
        ]);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let chain = |n: &str| berth_network::rules::nat_chain(&cfg.conflist_path(n));
    let fwd = |n: &str| berth_network::rules::forward_chain(&cfg.conflist_path(n));
    let rules = sh("iptables-save");
    assert!(
        rules.contains(&format!(
            "-s 10.124.9.0/24 -m comment --comment \"berth network {}\" -j {}",
            cfg.conflist_path("nt9").display(),
            chain("nt9")
        )),
        "{rules}"
    );
    assert!(
        !rules.contains(&chain("nt10")),
        "an internal network has no NAT"
    );
    assert!(
        rules.contains(&format!("-A {} -s 10.124.9.0/24 -j ACCEPT", fwd("nt9")))
            && rules.contains(&format!("-A {} -s 10.124.10.0/24 -j DROP", fwd("nt10"))),
        "{rules}"
    );
    let o = h.berth(&["inspect", "nt9"]);
    assert!(o.stdout.contains("10.124.9."), "{}", o.stdout);

    // In use, even stopped: refused, naming the container; -f removes it too.
    assert_eq!(h.berth(&["stop", "-t", "0", "nt9"]).code, 0);
    let o = h.berth(&["network", "rm", "nt9"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stderr.contains("[\"nt9\"]"), "{}", o.stderr);
    let o = h.berth(&["network", "rm", "-f", "nt9"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "nt9\n"), "{}", o.stderr);
    assert_eq!(h.berth(&["ps", "-aq", "--filter", "name=nt9"]).stdout, "");
    let saved = sh("iptables-save");
    assert!(
        !saved.contains(&chain("nt9")) && !saved.contains(&fwd("nt9")),
        "NAT or forward chain left"
    );
    assert_eq!(sh("ip -o link show bnt9 2>/dev/null"), "", "bridge left");

    // prune keeps the default network and networks in use.
    let o = h.berth(&["network", "prune", "-f"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{}", o.stderr);
    assert_eq!(h.berth(&["rm", "-f", "nt10"]).code, 0);
    let o = h.berth(&["network", "prune", "-f"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "nt10\n"), "{}", o.stderr);
    assert_eq!(h.berth(&["network", "ls", "-q"]).stdout, "berth\n");
    assert_eq!(sh("ip -o link show bnt10 2>/dev/null"), "", "bridge left");

    // The event log has each network's life; refusals left none.
    let events = common::recent_events(|a| h.berth(a), "type=network");
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| (common::text(&e["id"]), common::text(&e["action"])))
        .collect();
    let want = [
        ("nt9", "create"),
        ("nt10", "create"),
        ("nt9", "destroy"),
        ("nt10", "destroy"),
    ];
    assert_eq!(
        seen,
        want.map(|(a, b)| (a.to_string(), b.to_string())),
        "{events:?}"
    );
    h.assert_clean();
}
