//! `berth run` flags whose effect needs its own look: CPU and swap limits in the cgroup,
//! entrypoint and env files, pull policies against a registry whose tag moves,
//! `--stop-timeout`; and `logs -f`/`--since`, live `stats` and `restart`.

mod common;

use berth_testutil::image::{layer_tar, Entry, ImageBuilder};
use common::host::Host;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn cpu_and_swap_limits_land_in_the_cgroup_and_bad_values_are_refused() {
    let Some(h) = Host::new() else { return };
    // v1 file names first, then v2's (for a pure v2 host).
    let script = "if [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then cd /sys/fs/cgroup; \
                  cat cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares \
                  cpuset/cpuset.cpus memory/memory.memsw.limit_in_bytes; \
                  else cd /sys/fs/cgroup; cat cpu.max cpu.weight cpuset.cpus memory.swap.max; fi; \
                  nproc";
    let o = h.run(
        &[
            "--network",
            "none",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "-m",
            "64m",
            "--memory-swap",
            "128m",
        ],
        &["sh", "-c", script],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v1 = "150000\n100000\n512\n0\n134217728\n1\n";
    // v2: cpu.max is "quota period"; shares 512 is weight 20 (runc's conversion);
    // memory.swap.max is the swap alone (128m - 64m).
    let v2 = "150000 100000\n20\n0\n67108864\n1\n";
    assert!(o.stdout == v1 || o.stdout == v2, "{}", o.stdout);

    // Unlimited swap with a memory limit.
    let o = h.run(
        &["--network", "none", "-m", "64m", "--memory-swap", "-1"],
        &["true"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);

    // docker's rules, refused up front (exit 2) with the flag named, nothing made.
    for (flags, says) in [
        (vec!["--cpus", "0"], "--cpus 0: the range is 0.01 to"),
        (vec!["--cpus", "4096"], "CPUs online"),
        (vec!["--cpuset-cpus", "4095"], "CPU 4095 is not online"),
        (vec!["--cpuset-cpus", "1-x"], "expected a list like 0-3,5"),
        (vec!["--memory-swap", "1g"], "--memory-swap needs -m"),
        (vec!["-m", "100m", "--memory-swap", "50m"], "is below -m"),
    ] {
        let mut all = flags.clone();
        all.extend(["--name", "refused"]);
        let o = h.run(&all, &["true"]);
        assert_eq!(o.code, 2, "{flags:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{flags:?}: {}", o.stderr);
    }
    assert_eq!(h.berth(&["ps", "-aq"]).stdout, "");
    h.assert_clean();
}

#[test]
fn entrypoint_and_env_file() {
    let Some(h) = Host::new() else { return };
    let o = h.run(&["--entrypoint", "echo"], &["from", "entrypoint"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "from entrypoint\n"),
        "{}",
        o.stderr
    );
    // A created container keeps it for its start; inspect shows it.
    let o = h.berth(&[
        "create",
        "--name",
        "ep",
        "--entrypoint",
        "/bin/sh",
        &h.image,
        "-c",
        "echo a-b",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = h.berth(&["start", "-a", "ep"]);
    assert_eq!(o.stdout, "a-b\n", "{}", o.stderr);
    let o = h.berth(&["inspect", "ep"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v[0]["Config"]["Entrypoint"][0], "/bin/sh", "{}", o.stdout);
    assert_eq!(h.berth(&["rm", "ep"]).code, 0);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("env");
    std::fs::write(
        &file,
        "# a comment\n\nA=from-file\nB=two words\nFROM_HOST\nNOT_SET_ANYWHERE\n",
    )
    .expect("write");
    let f = file.to_str().expect("utf-8");
    let o: common::Out = h
        .cmd()
        .env("FROM_HOST", "host-value")
        .env_remove("NOT_SET_ANYWHERE")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--env-file",
            f,
            "-e",
            "A=from-flag",
        ])
        .arg(&h.image)
        .args([
            "sh",
            "-c",
            "echo \"$A|$B|$FROM_HOST|${NOT_SET_ANYWHERE-unset}|$FROM_IMAGE\"",
        ])
        .output()
        .expect("run")
        .into();
    // -e wins over the file; a bare name takes the host's value or is left out.
    assert_eq!(
        o.stdout, "from-flag|two words|host-value|unset|yes\n",
        "{}",
        o.stderr
    );
    let o = h.run(&["--env-file", "/nonexistent/env"], &["true"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("/nonexistent/env"), "{}", o.stderr);
    h.assert_clean();
}

/// An image whose /version says `v`, pushed as flip:v1 (the tag moves between pushes).
fn push_version(h: &Host, v: &str) -> String {
    let mut img = ImageBuilder::busybox().expect("image");
    img.layer(
        layer_tar(&[Entry::File(
            "version".into(),
            format!("{v}\n").into_bytes(),
            0o644,
        )])
        .expect("tar"),
    );
    img.push(h.reg.addr(), "flip", "v1").expect("push");
    format!("{}/flip:v1", h.reg.addr())
}

#[test]
fn pull_policies_always_missing_never() {
    let Some(h) = Host::new() else { return };
    let image = push_version(&h, "1");
    let version = |policy: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(policy);
        args.extend([image.as_str(), "cat", "/version"]);
        let o = h.berth(&args);
        assert_eq!(o.code, 0, "{policy:?}: {}", o.stderr);
        o.stdout
    };
    // Not stored: never refuses (exit 3, not found), missing (the default) pulls.
    let o = h.berth(&["run", "--rm", "--pull", "never", &image, "true"]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert_eq!(version(&["--pull", "missing"]), "1\n");

    // The tag moves on the registry: missing and never run what is stored, always
    // pulls the new one, which the default then runs.
    push_version(&h, "2");
    assert_eq!(version(&["--pull", "missing"]), "1\n");
    assert_eq!(version(&["--pull", "never"]), "1\n");
    assert_eq!(version(&[]), "1\n");
    assert_eq!(version(&["--pull", "always"]), "2\n");
    assert_eq!(version(&[]), "2\n");
    // always with the registry gone fails (and says so) rather than run the old one.
    let o = h.berth(&[
        "run",
        "--rm",
        "--pull",
        "always",
        "127.0.0.1:1/flip:v1",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("127.0.0.1:1"), "{}", o.stderr);
    let o = h.berth(&["run", "--rm", "--pull", "sometimes", &image, "true"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    h.assert_clean();
}

#[test]
fn stop_timeout_is_the_containers_own_default_for_stop() {
    let Some(h) = Host::new() else { return };
    // Ignores SIGTERM: only the SIGKILL after the timeout ends it.
    let o = h.berth(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--network",
        "none",
        "--stop-timeout",
        "1",
        &h.image,
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 1; done",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = h.berth(&["inspect", "stubborn"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v[0]["Config"]["StopTimeout"], 1, "{}", o.stdout);
    let t = Instant::now();
    let o = h.berth(&["stop", "stubborn"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Not the 10 s default: well under it (a behaviour bound, not a speed one).
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    let o = h.berth(&["inspect", "stubborn"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(v[0]["State"]["ExitCode"], 137, "{}", o.stdout);
    assert_eq!(h.berth(&["rm", "stubborn"]).code, 0);
    h.assert_clean();
}

#[test]
fn logs_follow_and_since() {
    let Some(h) = Host::new() else { return };
    let o = h.berth(&[
        "run",
        "-d",
        "--name",
        "talker",
        "--network",
        "none",
        &h.image,
        "sh",
        "-c",
        "echo one; sleep 1; echo two; sleep 1; echo three",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut follow = h
        .cmd()
        .args(["logs", "-f", "talker"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let mut out = BufReader::new(follow.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read");
    assert_eq!(first, "one\n");
    // The first line came while the container still ran: this is following, not a
    // read of a finished log.
    let o = h.berth(&["ps", "-q", "--filter", "name=talker"]);
    assert!(!o.stdout.trim().is_empty(), "already exited");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("read");
    assert_eq!(rest, "two\nthree\n");
    // It ends with the container.
    assert!(follow.wait().expect("wait").success());

    // --since: from the second line's own timestamp (inclusive) on.
    let o = h.berth(&["logs", "-t", "talker"]);
    let stamps: Vec<&str> = o
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(stamps.len(), 3, "{}", o.stdout);
    let o = h.berth(&["logs", "--since", stamps[1], "talker"]);
    assert_eq!(o.stdout, "two\nthree\n", "{}", o.stderr);
    let o = h.berth(&["logs", "--since", stamps[2], "--until", stamps[2], "talker"]);
    assert_eq!(o.stdout, "three\n", "{}", o.stderr);
    let o = h.berth(&["logs", "--since", "1 fortnight", "talker"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("--since"), "{}", o.stderr);
    assert_eq!(h.berth(&["rm", "talker"]).code, 0);
    h.assert_clean();
}

#[test]
fn live_stats_stream_in_a_pipe_and_redraw_on_a_terminal() {
    let Some(h) = Host::new() else { return };
    let o = h.berth(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--network",
        "none",
        "-m",
        "64m",
        &h.image,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Without --no-stream: one JSON array a second until killed.
    let mut live = h
        .cmd()
        .args(["stats", "--format", "json", "busy"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("stats");
    let mut out = BufReader::new(live.stdout.take().expect("stdout"));
    let mut rows = vec![];
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
        rows.push(v);
    }
    let _ = live.kill();
    let _ = live.wait();
    for v in &rows {
        assert_eq!(v[0]["Name"], "busy", "{v}");
        assert_eq!(v[0]["MemLimit"], 64 << 20, "{v}");
        assert!(v[0]["CPUPerc"].as_f64().unwrap_or(0.0) > 20.0, "{v}");
    }

    // On a terminal (script(1) gives it one), the table is redrawn in place.
    let berth = format!(
        "{} --root {} --runroot {} stats busy",
        common::host::berth(),
        h.dir.path().join("root").display(),
        h.runroot().display()
    );
    let o: common::Out = std::process::Command::new("timeout")
        .args(["3", "script", "-qfec", &berth, "/dev/null"])
        .output()
        .expect("script")
        .into();
    assert!(
        o.stdout.matches("\x1b[2J\x1b[H").count() >= 2,
        "{:?}",
        o.stdout
    );
    assert!(o.stdout.contains("busy"), "{:?}", o.stdout);
    assert_eq!(h.berth(&["rm", "-f", "busy"]).code, 0);
    h.assert_clean();
}

#[test]
fn restart_runs_a_new_process_and_says_so() {
    let Some(h) = Host::new() else { return };
    let o = h.berth(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "none",
        &h.image,
        "sleep",
        "1000",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let state = || {
        let o = h.berth(&["inspect", "again"]);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
        (
            v[0]["State"]["Pid"].as_i64().unwrap_or(0),
            v[0]["State"]["StartedAt"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            v[0]["State"]["Status"].as_str().unwrap_or("").to_string(),
        )
    };
    let before = state();
    assert_eq!(before.2, "running");
    let o = h.berth(&["restart", "-t", "0", "again"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "again\n"), "{}", o.stderr);
    let after = state();
    assert_eq!(after.2, "running");
    assert!(after.0 > 0 && after.0 != before.0, "{before:?} {after:?}");
    // (StartedAt has whole seconds, as the record keeps them.)
    assert!(after.1 >= before.1, "{before:?} {after:?}");
    // The old process is gone.
    assert!(!std::path::Path::new(&format!("/proc/{}", before.0)).exists());
    let events = common::recent_events(|a| h.berth(a), "container=again");
    let actions: Vec<String> = events.iter().map(|e| common::text(&e["action"])).collect();
    assert!(
        actions.ends_with(&["stop", "die", "start", "restart"].map(String::from))
            || actions.ends_with(&["die", "stop", "start", "restart"].map(String::from)),
        "{actions:?}"
    );
    // A stopped container restarts too.
    assert_eq!(h.berth(&["stop", "-t", "0", "again"]).code, 0);
    assert_eq!(h.berth(&["restart", "again"]).code, 0);
    assert_eq!(state().2, "running");
    let o = h.berth(&["restart", "nosuch"]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert_eq!(h.berth(&["rm", "-f", "again"]).code, 0);
    h.assert_clean();
}
