//! A host for `berth` (CLI) tests: a local registry with a busybox image pulled into a
//! private --root/--runroot, and checks that nothing of any container is left behind.

use super::Out;
use berth_testutil::image::{layer_tar, Entry, ImageBuilder};
use berth_testutil::registry::Registry;
use std::path::PathBuf;
use std::process::Command;

pub fn berth() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

pub struct Host {
    pub dir: tempfile::TempDir,
    pub image: String,
    pub reg: Registry,
}

impl Host {
    /// A registry with a busybox image that has a user `app` (uid 1000) in group `staff`.
    pub fn new() -> Option<Host> {
        if !super::is_root() {
            eprintln!("SKIP: needs root");
            return None;
        }
        let reg = Registry::start_or_skip()?;
        let mut img = ImageBuilder::busybox().expect("image");
        img.layer(
            layer_tar(&[
                Entry::File(
                    "etc/passwd".into(),
                    b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".to_vec(),
                    0o644,
                ),
                Entry::File(
                    "etc/group".into(),
                    b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n".to_vec(),
                    0o644,
                ),
                Entry::Dir("home", 0o755),
                Entry::Dir("work", 0o755),
            ])
            .expect("tar"),
        );
        img.config["config"]["Env"] = serde_json::json!(["PATH=/bin", "FROM_IMAGE=yes"]);
        img.config["config"]["WorkingDir"] = serde_json::json!("/work");
        img.push(reg.addr(), "runme", "v1").expect("push");
        let image = format!("{}/runme:v1", reg.addr());
        let h = Host {
            dir: tempfile::tempdir().expect("tempdir"),
            image,
            reg,
        };
        let o = h.berth(&["pull", "-q", &h.image]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        Some(h)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(berth());
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"));
        c
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        self.cmd().args(args).output().expect("run berth").into()
    }

    pub fn run(&self, flags: &[&str], command: &[&str]) -> Out {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.push(&self.image);
        args.extend_from_slice(command);
        self.berth(&args)
    }

    pub fn runroot(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Nothing of any container is left: no mounts under the runroot, no records, no
    /// writable snapshots.
    pub fn assert_clean(&self) {
        let rr = self.runroot();
        assert_eq!(
            mounts_under(&rr),
            Vec::<PathBuf>::new(),
            "leaked mounts under {rr:?}"
        );
        let o = self.berth(&["ps", "-aq"]);
        assert_eq!(o.stdout, "", "leftover containers");
        let active = self.dir.path().join("root/snapshots/active");
        assert_eq!(
            std::fs::read_dir(&active).map(|d| d.count()).unwrap_or(0),
            0,
            "leftover snapshots"
        );
    }
}

impl Drop for Host {
    /// Removes what is left of its containers, and takes away the NAT and forward chains
    /// berth made for this root's networks: kernel state,
    /// host-wide, that would outlive the temp dir (each root has its own chains).
    fn drop(&mut self) {
        // A failed test's containers would outlive it (their monitors are detached),
        // and a later test that looks at host processes would find them.
        let ids = self.berth(&["ps", "-aq"]).stdout;
        if !ids.trim().is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.split_whitespace());
            let _ = self.berth(&args);
        }
        let root = self.dir.path().join("root");
        if !root.join("networks").exists() {
            return;
        }
        let cfg = berth_network::NetworkConfig::new(root, self.runroot());
        for net in berth_network::Network::list(&cfg).unwrap_or_default() {
            let _ = berth_network::rules::remove(&cfg, &net);
        }
    }
}

/// Mount points at or under `dir`, in mount order (unmount in reverse).
pub fn mounts_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&d))
        .map(PathBuf::from)
        .collect()
}

/// A TCP port free on the host right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
