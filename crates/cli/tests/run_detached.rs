//! Containers under their monitor: `run -d`, logs, stop/start/restart/kill/wait,
//! create + start -a, restart policies, log rotation, a killed monitor, a reboot.

mod common;

use common::host::Host;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn json(h: &Host, name: &str) -> serde_json::Value {
    let o = h.berth(&["ps", "-a", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("ps json");
    v.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn run_d(h: &Host, name: &str, flags: &[&str], cmd: &[&str]) {
    let mut args = vec!["run", "-d", "--network", "none", "--name", name];
    args.extend_from_slice(flags);
    args.push(&h.image);
    args.extend_from_slice(cmd);
    let o = h.berth(&args);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim().len(), 64, "prints the id: {}", o.stdout);
}

fn monitors(h: &Host) -> usize {
    let o = Command::new("pgrep")
        .args(["-f", &format!("berth-monitor.*{}", h.dir.path().display())])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&o.stdout).lines().count()
}

#[test]
fn detached_logs_stop_start_kill_wait() {
    let Some(h) = Host::new() else { return };
    run_d(
        &h,
        "tick",
        &[],
        &["sh", "-c", "echo start; echo oops >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"],
    );
    assert_eq!(json(&h, "tick")["status"], "running");
    assert_eq!(monitors(&h), 1);
    wait_for("three ticks", || {
        h.berth(&["logs", "tick"]).stdout.contains("tick 2")
    });
    let o = h.berth(&["logs", "tick"]);
    assert!(o.stdout.starts_with("start\ntick 0\n"), "{}", o.stdout);
    assert_eq!(o.stderr, "oops\n", "stderr stays stderr");
    let o = h.berth(&["logs", "--tail", "1", "-t", "tick"]);
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
    assert!(
        o.stdout.starts_with("20") && o.stdout.contains("Z tick "),
        "{}",
        o.stdout
    );
    assert_eq!(
        h.berth(&["logs", "--since", "1h", "tick"])
            .stdout
            .lines()
            .next(),
        Some("start")
    );
    assert_eq!(h.berth(&["logs", "--until", "1h", "tick"]).stdout, "");
    assert_ne!(h.berth(&["logs", "--since", "yesterday", "tick"]).code, 0);

    // sh as PID 1 ignores SIGTERM: stop waits its timeout, then SIGKILL.
    let t = Instant::now();
    let o = h.berth(&["stop", "-t", "1", "tick"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(t.elapsed() >= Duration::from_secs(1));
    let c = json(&h, "tick");
    assert_eq!(
        (c["status"].as_str(), c["exit_code"].as_i64()),
        (Some("exited"), Some(137))
    );
    assert_eq!(monitors(&h), 0, "the monitor leaves with its container");
    let before = h.berth(&["logs", "tick"]).stdout.lines().count();
    assert!(before > 3, "logs survive the exit");

    // start again: a new monitor; the log goes on.
    assert_eq!(h.berth(&["start", "tick"]).code, 0);
    assert_eq!(json(&h, "tick")["status"], "running");
    wait_for("more output", || {
        h.berth(&["logs", "tick"]).stdout.lines().count() > before + 2
    });
    // kill -s and wait print the code.
    let w = h
        .cmd()
        .args(["wait", "tick"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("wait");
    // (An init ignores signals it has no handler for, except KILL.)
    assert_eq!(h.berth(&["kill", "tick"]).code, 0);
    let o = w.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "137\n");
    assert_ne!(h.berth(&["kill", "tick"]).code, 0, "not running");
    assert_ne!(h.berth(&["kill", "-s", "NOPE", "tick"]).code, 0);

    // A handled stop signal: the program exits by itself with its own code.
    run_d(
        &h,
        "polite",
        &["--stop-signal", "USR2"],
        &[
            "sh",
            "-c",
            "trap 'exit 9' USR2; while true; do sleep 0.1; done",
        ],
    );
    let o = h.berth(&["restart", "polite"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(json(&h, "polite")["status"], "running");
    assert_eq!(h.berth(&["stop", "polite"]).code, 0);
    assert_eq!(json(&h, "polite")["exit_code"], 9);
    assert_eq!(h.berth(&["rm", "tick", "polite"]).code, 0);
    h.assert_clean();
}

#[test]
fn create_then_start_attach_and_foreground_stdio() {
    let Some(h) = Host::new() else { return };
    let o = h.berth(&[
        "create",
        "--network",
        "none",
        "--name",
        "later",
        &h.image,
        "sh",
        "-c",
        "echo from-later; exit 5",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(json(&h, "later")["status"], "created");
    let o = h.berth(&["start", "-a", "later"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (5, "from-later\n"),
        "{}",
        o.stderr
    );
    assert_eq!(h.berth(&["logs", "later"]).stdout, "from-later\n");
    // start -a of an exited container runs it again under a new monitor.
    let o = h.berth(&["start", "-a", "later"]);
    assert_eq!((o.code, o.stdout.as_str()), (5, "from-later\n"));

    // -i: stdin reaches the container; output without a final newline stays so.
    let mut c = h
        .cmd()
        .args([
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            &h.image,
            "sh",
            "-c",
            "tr a-z A-Z; printf end",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(b"hello\n")
        .expect("write");
    let o = c.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "HELLO\nend");
    // Without -i stdin is empty.
    let o = h.run(&["--network", "none"], &["sh", "-c", "cat; echo done"]);
    assert_eq!(o.stdout, "done\n");
    // -d -i: an open, empty stdin keeps `cat` running.
    run_d(&h, "cat", &["-i"], &["cat"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(json(&h, "cat")["status"], "running");

    // Foreground: a signal to the CLI goes to the container.
    let mut c = h
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            &h.image,
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = c.stdout.take().expect("stdout");
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).expect("ready");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(c.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("kill");
    assert_eq!(c.wait().expect("wait").code(), Some(42));

    // A program that cannot start: docker's codes, a clear message.
    let o = h.run(&["--network", "none"], &["/no/such/program"]);
    assert_eq!(o.code, 127, "{}", o.stderr);
    assert!(o.stderr.contains("/no/such/program"), "{}", o.stderr);
    let o = h.run(&["--network", "none"], &["/etc/passwd"]);
    assert_eq!(o.code, 126, "found but not executable: {}", o.stderr);
    assert_eq!(h.berth(&["rm", "-f", "later", "cat"]).code, 0);
    h.assert_clean();
}

#[test]
fn restart_policies_and_rm() {
    let Some(h) = Host::new() else { return };
    run_d(
        &h,
        "fails",
        &["--restart", "on-failure:2"],
        &["sh", "-c", "echo run; exit 3"],
    );
    wait_for("two restarts", || {
        let c = json(&h, "fails");
        c["status"] == "exited" && c["restart_count"] == 2
    });
    assert_eq!(h.berth(&["logs", "fails"]).stdout, "run\nrun\nrun\n");
    assert_eq!(json(&h, "fails")["exit_code"], 3);

    // always: a container that exits is started again, until stop.
    run_d(
        &h,
        "again",
        &["--restart", "always"],
        &["sh", "-c", "echo up; sleep 0.2"],
    );
    wait_for("a restart", || {
        h.berth(&["logs", "again"]).stdout.lines().count() >= 2
    });
    assert_eq!(h.berth(&["stop", "-t", "1", "again"]).code, 0);
    std::thread::sleep(Duration::from_millis(700));
    let c = json(&h, "again");
    assert_eq!(c["status"], "exited", "stop suspends the policy: {c}");
    assert_eq!(monitors(&h), 0);

    // --rm with -d: gone once it exits; --rm and --restart conflict.
    run_d(&h, "gone", &["--rm"], &["true"]);
    wait_for("removal", || json(&h, "gone").is_null());
    let o = h.berth(&["run", "-d", "--rm", "--restart", "always", &h.image, "true"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    let o = h.berth(&["run", "-d", "--restart", "sometimes", &h.image, "true"]);
    assert_ne!(o.code, 0);

    // Rotation: max-size and max-file bound what is kept.
    run_d(
        &h,
        "chatty",
        &["--log-opt", "max-size=2k", "--log-opt", "max-file=2"],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done",
        ],
    );
    assert_eq!(h.berth(&["wait", "chatty"]).stdout, "0\n");
    let id = json(&h, "chatty")["id"].as_str().expect("id").to_string();
    let dir = h.dir.path().join("root/containers").join(&id);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("log dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ctr.log"))
        .map(|e| e.metadata().expect("meta").len())
        .collect();
    assert_eq!(files.len(), 2, "current and one rotated");
    assert!(files.iter().all(|&n| n <= 2048), "{files:?}");
    let o = h.berth(&["logs", "chatty"]);
    assert!(o.stdout.ends_with("line 399\n"), "{}", o.stdout);
    assert!(!o.stdout.contains("line 0\n"), "rotated away");
    assert_eq!(h.berth(&["rm", "fails", "again", "chatty"]).code, 0);
    h.assert_clean();
}

#[test]
fn killed_monitor_and_a_reboot_are_recovered() {
    let Some(h) = Host::new() else { return };
    run_d(&h, "keep", &["--restart", "always"], &["sleep", "1000"]);
    run_d(&h, "plain", &[], &["sleep", "1000"]);
    run_d(
        &h,
        "stopped",
        &["--restart", "unless-stopped"],
        &["sleep", "1000"],
    );
    assert_eq!(h.berth(&["stop", "-t", "0", "stopped"]).code, 0);
    // A "reboot": every process of it killed, the run root's mounts and files gone.
    let root = h.dir.path().display().to_string();
    let _ = Command::new("pkill")
        .args(["-9", "-f", &format!("berth-monitor.*{root}")])
        .status();
    let _ = Command::new("pkill")
        .args(["-9", "-f", "sleep 1000"])
        .status();
    let run = h.dir.path().join("run");
    for p in common::host::mounts_under(&run).into_iter().rev() {
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
    }
    std::fs::remove_dir_all(&run).expect("empty the run root");
    for n in ["keep", "plain", "stopped"] {
        assert_eq!(json(&h, n)["status"], "exited", "{n} after the reboot");
    }
    let o = h.berth(&["system", "recover"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "keep\n"), "{}", o.stderr);
    assert_eq!(json(&h, "keep")["status"], "running");
    assert_eq!(json(&h, "plain")["status"], "exited");
    assert_eq!(h.berth(&["start", "plain"]).code, 0);
    assert_eq!(json(&h, "plain")["status"], "running");
    assert_eq!(h.berth(&["rm", "-f", "keep", "plain", "stopped"]).code, 0);
    assert_eq!(monitors(&h), 0);
    h.assert_clean();
}

#[test]
fn httpd_detached_with_a_published_port() {
    let Some(h) = Host::new() else { return };
    let port = common::host::free_port();
    let p = format!("{port}:80");
    let o = h.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &p,
        &h.image,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-berth > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut body = String::new();
    wait_for("httpd", || {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = s.read_to_string(&mut body);
        body.contains("hello-from-berth")
    });
    assert_eq!(h.berth(&["rm", "-f", "web"]).code, 0);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port released"
    );
    h.assert_clean();
}

#[test]
fn run_it_gives_the_container_a_terminal() {
    let Some(h) = Host::new() else { return };
    // script(1) gives the CLI a terminal of its own, as a person's shell would.
    let line = format!(
        "{} --root {} --runroot {} run -it --rm --network none {} sh -c 'tty; exit 3'",
        common::host::berth(),
        h.dir.path().join("root").display(),
        h.dir.path().join("run").display(),
        h.image
    );
    let o: common::Out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script")
        .into();
    assert_eq!(o.code, 3, "{} {}", o.stdout, o.stderr);
    assert!(o.stdout.contains("/dev/pts/0"), "{}", o.stdout);
    h.assert_clean();
}

/// `-d -t` (docker's `run -dit IMAGE sh` habit): the monitor holds the terminal, so an
/// interactive shell waits on it instead of ending at EOF, and what it prints, prompt
/// included, is in the log. Each restart gets a new terminal; so does `create -t` and a
/// plain `start`.
#[test]
fn run_dt_gives_a_detached_container_a_terminal_the_monitor_holds() {
    let Some(h) = Host::new() else { return };
    run_d(&h, "shell", &["-i", "-t"], &["sh"]);
    wait_for("the prompt in the log", || {
        h.berth(&["logs", "shell"]).stdout.contains("/work # ")
    });
    assert_eq!(
        json(&h, "shell")["status"],
        "running",
        "sh waits on its terminal"
    );
    let o = h.berth(&[
        "exec",
        "shell",
        "sh",
        "-c",
        "for f in 0 1 2; do readlink /proc/1/fd/$f; done; stty -F /dev/pts/0 size",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "/dev/pts/0\n/dev/pts/0\n/dev/pts/0\n24 80\n");

    run_d(
        &h,
        "again",
        &["-t", "--restart", "on-failure:1"],
        &[
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo on a terminal; exit 3",
        ],
    );
    wait_for("one restart, then the end", || {
        let c = json(&h, "again");
        c["status"] == "exited" && c["restart_count"] == 1
    });
    let logs = h.berth(&["logs", "again"]).stdout;
    assert_eq!(logs.matches("/dev/pts/0").count(), 2, "{logs}");
    assert_eq!(logs.matches("on a terminal").count(), 2, "{logs}");

    let o = h.berth(&[
        "create",
        "-t",
        "--network",
        "none",
        "--name",
        "made",
        &h.image,
        "sh",
        "-c",
        "tty; sleep 100",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(h.berth(&["start", "made"]).code, 0);
    wait_for("made's terminal", || {
        h.berth(&["logs", "made"]).stdout.contains("/dev/pts/0")
    });

    let o = h.berth(&["rm", "-f", "shell", "again", "made"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    wait_for("no monitors", || monitors(&h) == 0);
    // Under the run root when the path fits, else in the temporary directory's top.
    let top = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
        .map(|e| e.path());
    let sockets: Vec<_> = walk(h.dir.path())
        .into_iter()
        .chain(top)
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name == "console.sock" || name.starts_with("berth-console-")
        })
        .collect();
    assert_eq!(
        sockets,
        Vec::<std::path::PathBuf>::new(),
        "console sockets left"
    );
    h.assert_clean();
}

/// Every path under `dir` (not following symlinks), for leftover checks.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn events_and_ps_filters() {
    let Some(h) = Host::new() else { return };
    let mut follow = h
        .cmd()
        .args(["events", "--format", "json", "--filter", "container=ev"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("events");
    std::thread::sleep(Duration::from_millis(300));
    run_d(&h, "ev", &["-l", "tier=web"], &["sleep", "1000"]);
    run_d(&h, "other", &[], &["sh", "-c", "exit 4"]);
    assert_eq!(h.berth(&["wait", "other"]).stdout, "4\n");
    // ps filters: name, label, status (which looks at all), exited, bad keys.
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "json"];
        a.extend_from_slice(args);
        let o = h.berth(&a);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
        let mut n: Vec<String> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&["-f", "label=tier=web"]), ["ev"]);
    assert_eq!(names(&["-f", "status=exited"]), ["other"]);
    assert_eq!(names(&["-a", "-f", "exited=4"]), ["other"]);
    assert_eq!(
        names(&["-a", "-f", "name=ev", "-f", "name=oth"]),
        ["ev", "other"]
    );
    assert_eq!(h.berth(&["ps", "-f", "colour=red"]).code, 2);
    assert_eq!(h.berth(&["rename", "ev", "ev2"]).code, 0);
    assert_eq!(h.berth(&["stop", "-t", "0", "ev2"]).code, 0);
    assert_eq!(h.berth(&["rm", "ev2", "other"]).code, 0);
    // The log has the whole story, in order; the follower saw it live.
    let o = h.berth(&[
        "events", "--since", "1m", "--until", "0s", "--format", "json",
    ]);
    let actions: Vec<(String, String)> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event"))
        .map(|e| {
            (
                e["attributes"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let of = |n: &str| -> Vec<&str> {
        actions
            .iter()
            .filter(|(name, _)| name == n)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert_eq!(of("ev"), ["create", "start"], "{actions:?}");
    assert_eq!(
        of("ev2"),
        ["rename", "die", "stop", "destroy"],
        "{actions:?}"
    );
    assert_eq!(
        of("other"),
        ["create", "start", "die", "destroy"],
        "{actions:?}"
    );
    std::thread::sleep(Duration::from_millis(400));
    let _ = follow.kill();
    let out = follow.wait_with_output().expect("events output");
    let live = String::from_utf8_lossy(&out.stdout);
    assert!(
        live.contains("\"action\":\"create\"") && live.contains("\"action\":\"start\""),
        "{live}"
    );
    assert!(!live.contains("\"name\":\"other\""), "filtered: {live}");
    h.assert_clean();
}
