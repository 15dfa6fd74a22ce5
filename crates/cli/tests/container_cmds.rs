//! The commands on running containers: exec (with and without a terminal), inspect,
//! top, stats, rename; and reclaiming disk: container prune, system df, system prune.
//! Containers run detached under their monitors (`berth run -d`).

mod common;

use common::host::Host;
use serde_json::Value;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Removes the named containers however the test ends, so a failed assertion does not
/// leave containers (and their monitors) running.
struct Containers<'a> {
    h: &'a Host,
    names: Vec<String>,
}

impl<'a> Containers<'a> {
    fn new(h: &'a Host) -> Self {
        Containers { h, names: vec![] }
    }

    /// `run -d --name NAME FLAGS IMAGE CMD`; its id.
    fn run(&mut self, name: &str, flags: &[&str], cmd: &[&str]) -> String {
        self.names.push(name.to_string());
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(flags);
        args.push(&self.h.image);
        args.extend_from_slice(cmd);
        let o = self.h.berth(&args);
        assert_eq!(o.code, 0, "run -d {name}: {}", o.stderr);
        o.stdout.trim().to_string()
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.h.berth(&["rm", "-f", n]);
        }
    }
}

fn json(h: &Host, args: &[&str]) -> Value {
    let o = h.berth(args);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", o.stdout))
}

/// Polls until `f` holds (a detached process's effect), failing after 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exec_in_a_running_container() {
    let Some(h) = Host::new() else { return };
    let mut cs = Containers::new(&h);
    cs.run("ex", &["-e", "FROM_RUN=1"], &["sleep", "1000"]);

    let o = h.berth(&["exec", "ex", "sh", "-c", "exit 5"]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    // The container's env (image's and run's) plus -e; the image's workdir.
    let o = h.berth(&[
        "exec",
        "-e",
        "FOO=bar",
        "-e",
        "FROM_IMAGE=over",
        "ex",
        "sh",
        "-c",
        "echo $FOO $FROM_IMAGE $FROM_RUN; pwd; id -u",
    ]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "bar over 1\n/work\n0\n"),
        "{}",
        o.stderr
    );
    let env_file = h.dir.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=f\n").expect("env file");
    let o = h.berth(&[
        "exec",
        "--env-file",
        env_file.to_str().expect("utf8"),
        "ex",
        "sh",
        "-c",
        "echo $FROM_FILE",
    ]);
    assert_eq!(o.stdout, "f\n", "{}", o.stderr);
    // Users by name from the container's /etc/passwd and /etc/group.
    let o = h.berth(&[
        "exec",
        "-u",
        "app",
        "-w",
        "/home",
        "ex",
        "sh",
        "-c",
        "id; pwd; echo $HOME; grep CapEff /proc/self/status",
    ]);
    assert_eq!(
        o.stdout,
        "uid=1000(app) gid=1000(app) groups=50(staff)\n/home\n/home/app\nCapEff:\t0000000000000000\n",
        "{}",
        o.stderr
    );
    let o = h.berth(&["exec", "-u", "app:staff", "ex", "id"]);
    assert_eq!(o.stdout, "uid=1000(app) gid=50(staff)\n", "{}", o.stderr);
    let o = h.berth(&["exec", "-u", "nobody-here", "ex", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nobody-here"), "{}", o.stderr);
    // --privileged: every capability of the host, not docker's default set.
    let o = h.berth(&["exec", "ex", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(o.stdout, "CapEff:\t00000000a80425fb\n", "{}", o.stderr);
    let host_bnd = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(str::to_string))
        .expect("CapBnd");
    let o = h.berth(&[
        "exec",
        "--privileged",
        "ex",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(o.stdout, format!("CapEff:{host_bnd}\n"), "{}", o.stderr);

    // stdin only with -i.
    let mut child = h
        .cmd()
        .args(["exec", "-i", "ex", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("exec -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"from stdin\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from stdin\ndone\n");
    let out = h
        .cmd()
        .args(["exec", "ex", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .output()
        .expect("exec without -i");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");

    // -d returns at once; the process goes on.
    let start = Instant::now();
    let o = h.berth(&[
        "exec",
        "-d",
        "ex",
        "sh",
        "-c",
        "sleep 1; echo later > /tmp/d",
    ]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{}", o.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "exec -d waited for the process"
    );
    eventually("the detached exec's file", || {
        h.berth(&["exec", "ex", "cat", "/tmp/d"]).stdout == "later\n"
    });

    // A missing program is docker's 127; a missing container 3.
    let o = h.berth(&["exec", "ex", "no-such-program"]);
    assert_eq!(o.code, 127, "{}", o.stderr);
    assert_eq!(h.berth(&["exec", "nope", "true"]).code, 3);

    // Not running: conflict.
    let o = h.berth(&["stop", "-t", "1", "ex"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = h.berth(&["exec", "ex", "true"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stderr.contains("not running"), "{}", o.stderr);
    cs.names.push("cr".into());
    let o = h.berth(&["create", "--name", "cr", &h.image, "sleep", "1000"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(h.berth(&["exec", "cr", "true"]).code, 6);
    drop(cs);
    h.assert_clean();
}

/// Reads the pty master until `marker` shows, failing after 20 s.
fn read_until(master: &OwnedFd, seen: &mut String, marker: &str) {
    use rustix::event::{poll, PollFd, PollFlags};
    let end = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    while !seen.contains(marker) {
        assert!(
            Instant::now() < end,
            "no {marker:?} from the pty; got {seen:?}"
        );
        let mut fds = [PollFd::new(master, PollFlags::IN)];
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        if poll(&mut fds, Some(&timeout)).unwrap_or(0) == 0 {
            continue;
        }
        match rustix::io::read(master, &mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => panic!("the pty closed before {marker:?}; got {seen:?}"),
        }
    }
}

#[test]
fn exec_with_a_terminal() {
    let Some(h) = Host::new() else { return };
    let mut cs = Containers::new(&h);
    cs.run("tt", &[], &["sleep", "1000"]);

    // Our stdout is a pipe: the process still gets a pty of its own.
    let o = h.berth(&[
        "exec",
        "-t",
        "tt",
        "sh",
        "-c",
        "tty; test -t 0 && echo in-is-tty; exit 3",
    ]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stdout.starts_with("/dev/pts/"), "{:?}", o.stdout);
    assert!(o.stdout.contains("in-is-tty\r\n"), "{:?}", o.stdout);

    // A terminal of our own: its size reaches the pty, keys go through raw, a resize
    // (SIGWINCH) follows, and the terminal is restored afterwards.
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use rustix::termios::{tcgetattr, tcsetwinsize, LocalModes, Winsize};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().expect("utf8"))
        .expect("open the pty's slave");
    let size = |rows, cols| Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&master, size(33, 101)).expect("winsize");
    let mut child = h
        .cmd()
        .args(["exec", "-it", "-e", "PS1=$ ", "tt", "sh"])
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("exec -it");
    let mut seen = String::new();
    let send = |s: &str| {
        rustix::io::write(&master, s.as_bytes()).expect("write to the pty");
    };
    send("stty size; tty; echo $TERM\n");
    read_until(&master, &mut seen, "33 101");
    read_until(&master, &mut seen, "xterm");
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    // Raw mode: our line discipline no longer echoes or buffers.
    let lflags = tcgetattr(slave.as_fd()).expect("tcgetattr").local_modes;
    assert!(!lflags.contains(LocalModes::ICANON), "not raw: {lflags:?}");
    tcsetwinsize(&master, size(44, 120)).expect("winsize");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::WINCH,
    )
    .expect("SIGWINCH");
    send("stty size\n");
    read_until(&master, &mut seen, "44 120");
    send("exit 7\n");
    let status = child.wait().expect("wait");
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
    assert_eq!(status.code(), Some(7), "{err}");
    let lflags = tcgetattr(slave.as_fd()).expect("tcgetattr").local_modes;
    assert!(
        lflags.contains(LocalModes::ICANON | LocalModes::ECHO),
        "not restored: {lflags:?}"
    );
    drop(cs);
    h.assert_clean();
}

#[test]
fn inspect_top_stats_and_rename() {
    let Some(h) = Host::new() else { return };
    let mut cs = Containers::new(&h);
    let id = cs.run(
        "insp",
        &[
            "--restart",
            "on-failure:3",
            "-m",
            "64m",
            "-e",
            "A=1",
            "-p",
            "8080",
            "-l",
            "k=v",
            "--stop-signal",
            "SIGUSR1",
        ],
        &["sleep", "1000"],
    );
    let all = json(&h, &["inspect", "insp"]);
    let c = &all[0];
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(c["Id"], id.as_str());
    assert_eq!(c["Name"], "/insp");
    assert_eq!(
        (c["Path"].clone(), c["Args"].clone()),
        ("sleep".into(), serde_json::json!(["1000"]))
    );
    let st = &c["State"];
    assert_eq!(
        (st["Status"].as_str(), st["Running"].as_bool()),
        (Some("running"), Some(true))
    );
    let pid = st["Pid"].as_i64().expect("pid");
    assert!(
        pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "{st}"
    );
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .expect("cmdline")
        .starts_with("sleep"));
    assert_ne!(st["StartedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(st["FinishedAt"], "0001-01-01T00:00:00Z");
    let hc = &c["HostConfig"];
    assert_eq!(
        hc["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 3})
    );
    assert_eq!(hc["Memory"], 64 << 20);
    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        env.contains(&"A=1") && env.contains(&"FROM_IMAGE=yes"),
        "{env:?}"
    );
    assert_eq!(c["Config"]["Labels"]["k"], "v");
    assert_eq!(c["Config"]["WorkingDir"], "/work");
    assert_eq!(c["Config"]["StopSignal"], "SIGUSR1");
    let bound = &c["NetworkSettings"]["Ports"]["8080/tcp"][0];
    let host_port: u16 = bound["HostPort"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("host port");
    assert!(host_port > 0, "{bound}");
    let net = &c["NetworkSettings"]["Networks"]["berth"];
    let ip = net["IPAddress"].as_str().expect("ip");
    assert!(ip.starts_with("10.89."), "{net}");
    assert_eq!(net["Gateway"], "10.89.0.1", "{net}");
    assert_eq!(
        net["MacAddress"].as_str().map(|m| m.len()),
        Some(17),
        "{net}"
    );
    // The address and MAC are the ones the container has.
    let o = h.berth(&[
        "exec",
        "insp",
        "sh",
        "-c",
        "cat /sys/class/net/eth0/address /proc/net/fib_trie",
    ]);
    let mac = net["MacAddress"].as_str().expect("mac");
    assert!(
        o.stdout.starts_with(&format!("{mac}\n")),
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert!(o.stdout.contains(&format!("|-- {ip}\n")), "{}", o.stdout);

    // One field; the container noun; images and volumes; a missing name.
    let o = h.berth(&["inspect", "--format", ".State.Pid", "insp"]);
    assert_eq!(o.stdout.trim(), pid.to_string(), "{}", o.stderr);
    let o = h.berth(&[
        "container",
        "inspect",
        "-f",
        "{{.HostConfig.RestartPolicy.Name}}",
        "insp",
    ]);
    assert_eq!(o.stdout, "on-failure\n", "{}", o.stderr);
    let img = json(&h, &["inspect", "--type", "image", &h.image]);
    assert!(
        img[0]["Id"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha256:")),
        "{img}"
    );
    assert_eq!(h.berth(&["inspect", "no-such-thing"]).code, 3);
    assert_eq!(h.berth(&["inspect", "--type", "volume", "insp"]).code, 3);

    // top: the sleep, by its host pid.
    let o = h.berth(&["top", "insp"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let line = o
        .stdout
        .lines()
        .find(|l| l.contains("sleep 1000"))
        .unwrap_or_else(|| panic!("{}", o.stdout));
    assert!(line.starts_with(&format!("{pid} ")), "{line}");
    assert!(line.contains(" root "), "{line}");
    h.berth(&["exec", "-d", "-u", "app", "insp", "sleep", "999"]);
    eventually("top to show app's process", || {
        let t: Value = serde_json::from_str(&h.berth(&["top", "--format", "json", "insp"]).stdout)
            .unwrap_or_default();
        t.as_array()
            .into_iter()
            .flatten()
            .any(|p| p["User"] == "app" && p["Command"] == "sleep 999")
    });

    // stats: the -m limit, at least the sleep.
    let s = json(&h, &["stats", "--no-stream", "--format", "json", "insp"]);
    let s = &s[0];
    assert_eq!(s["ID"], id.as_str());
    assert_eq!(s["MemLimit"], 64 << 20, "{s}");
    assert!(
        s["MemUsage"]
            .as_u64()
            .is_some_and(|m| m > 0 && m < 64 << 20),
        "{s}"
    );
    assert!(s["PIDs"].as_u64().is_some_and(|p| p >= 2), "{s}");
    assert!(s["CPUPerc"].as_f64().is_some_and(|c| c >= 0.0), "{s}");
    // Every running container by default; a stopped one is refused.
    let s = json(
        &h,
        &["container", "stats", "--no-stream", "--format", "json"],
    );
    assert_eq!(s.as_array().map(Vec::len), Some(1), "{s}");

    // rename: the new name finds it, the old does not, a taken name is a conflict.
    cs.run("other", &[], &["sleep", "1000"]);
    cs.names.push("insp2".into());
    let o = h.berth(&["rename", "insp", "insp2"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(json(&h, &["inspect", "insp2"])[0]["Id"], id.as_str());
    assert_eq!(h.berth(&["inspect", "--type", "container", "insp"]).code, 3);
    let o = h.berth(&["container", "rename", "insp2", "other"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert_eq!(h.berth(&["rename", "insp2", "bad/name"]).code, 2);
    // The name is free again for a new container.
    cs.run("insp", &[], &["true"]);
    drop(cs);
    h.assert_clean();
}

#[test]
fn prune_and_disk_usage() {
    let Some(h) = Host::new() else { return };
    let mut cs = Containers::new(&h);
    let keep = cs.run("keep", &[], &["sleep", "1000"]);
    let gone = cs.run(
        "gone",
        &[],
        &["sh", "-c", "head -c 300000 /dev/zero > /big; exit 3"],
    );
    assert_eq!(h.berth(&["wait", "gone"]).stdout.trim(), "3");
    assert_eq!(h.berth(&["volume", "create", "v1"]).code, 0);

    let df = json(&h, &["system", "df", "--format", "json"]);
    let row = |kind: &str| {
        df.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["Type"] == kind)
            .cloned()
            .expect(kind)
    };
    let c = row("Containers");
    assert_eq!(
        (c["Total"].as_u64(), c["Active"].as_u64()),
        (Some(2), Some(1)),
        "{df}"
    );
    // The exited one's writable layer holds the 300 kB file.
    assert!(
        c["Reclaimable"].as_u64().is_some_and(|r| r >= 300_000),
        "{df}"
    );
    let i = row("Images");
    assert_eq!(
        (
            i["Total"].as_u64(),
            i["Active"].as_u64(),
            i["Reclaimable"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{df}"
    );
    assert!(i["Size"].as_u64().is_some_and(|s| s > 100_000), "{df}");
    let v = row("Local Volumes");
    assert_eq!(
        (v["Total"].as_u64(), v["Active"].as_u64()),
        (Some(1), Some(0)),
        "{df}"
    );

    // Only the exited container goes.
    let o = h.berth(&["container", "prune", "-f"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(&gone) && !o.stdout.contains(&keep),
        "{}",
        o.stdout
    );
    let reclaimed = o.stdout.lines().last().unwrap_or_default();
    assert!(
        reclaimed.starts_with("Total reclaimed space: ") && !reclaimed.ends_with(" 0 B"),
        "{reclaimed}"
    );
    assert_eq!(
        h.berth(&["ps", "-aq", "--no-trunc"]).stdout,
        format!("{keep}\n")
    );
    // Without -f it asks; "n" keeps everything.
    let mut child = h
        .cmd()
        .args(["container", "prune"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prune");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"n\n")
        .expect("answer");
    assert_ne!(
        child.wait_with_output().expect("wait").status.code(),
        Some(0)
    );

    // system prune keeps the running container, its image and (without --volumes) volumes.
    let o = h.berth(&["system", "prune", "-f", "--volumes"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Deleted Volumes:\nv1\n"), "{}", o.stdout);
    assert_eq!(h.berth(&["ps", "-q"]).stdout.trim(), &keep[..12]);
    assert_eq!(h.berth(&["images", "-q"]).stdout.lines().count(), 1);
    assert_eq!(h.berth(&["rm", "-f", "keep"]).code, 0);
    let o = h.berth(&["system", "prune", "-f", "-a"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Deleted Images:"), "{}", o.stdout);
    assert_eq!(h.berth(&["images", "-q"]).stdout, "");
    let df = json(&h, &["system", "df", "--format", "json"]);
    assert!(
        df.as_array()
            .expect("rows")
            .iter()
            .all(|r| r["Total"] == 0 && r["Size"] == 0),
        "{df}"
    );
    drop(cs);
    h.assert_clean();
}
