//! Keeps cgroup migrations fast while a helper moves a new container into its cgroups.
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`) takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing. That percpu rwsem switches its readers to the
//! slow path through `rcu_sync`, and the first writer after a quiet spell waits a whole
//! RCU grace period for it: 7–30 ms on the hosts we measured, the largest single cost of a
//! `berth run` on cgroup v1 and hybrid hosts (and of podman's and crun's too). A writer
//! that comes while the switch is still in force, or within a grace period of the last
//! writer leaving, does not wait.
//!
//! So while the CLI waits for a monitor's helper to create the container, a thread of
//! the CLI rewrites its own pid into its own cgroup every millisecond: a migration to
//! where it already is, which changes nothing but keeps the switch in force. The helper's
//! real migration then takes ~0.5 ms instead. The thread lives in the CLI, never in the
//! process that clones the container (the runtime core stays single-threaded), and it
//! stops as soon as the start is reported. Where the write is refused (no permission, a
//! read-only cgroupfs) the thread just ends: the start is only slower.
//!
//! On a pure cgroup v2 host the runtime clones the init straight into its cgroup
//! (`clone3(CLONE_INTO_CGROUP)`, which only reads that lock): there is no migration to
//! speed up, so no warmer either.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Warmer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Warmer {
    /// Starts the thread; None on pure cgroup v2 and where this process's cgroup cannot
    /// be found.
    pub fn start() -> Option<Warmer> {
        if berth_runtime::cgroups::Mode::detect() == berth_runtime::cgroups::Mode::Unified {
            return None;
        }
        let procs = own_procs_file()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let pid = std::process::id().to_string();
        let thread = std::thread::Builder::new()
            .name("cgroup-warm".into())
            .spawn(move || {
                // Bounded, in case nobody stops us (a start that hangs).
                for _ in 0..30_000 {
                    if flag.load(Ordering::Relaxed) || std::fs::write(&procs, &pid).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .ok()?;
        Some(Warmer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Warmer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `cgroup.procs` of this process's cgroup in some hierarchy (the rwsem is shared by
/// all of them).
fn own_procs_file() -> Option<std::path::PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let dirs: Vec<String> = if controllers.is_empty() {
            vec!["unified".into(), String::new()]
        } else {
            let first = controllers.split(',').next()?;
            vec![
                controllers.to_string(),
                first.trim_start_matches("name=").to_string(),
            ]
        };
        dirs.into_iter()
            .map(|d| {
                std::path::Path::new("/sys/fs/cgroup")
                    .join(d)
                    .join(path)
                    .join("cgroup.procs")
            })
            .find(|p| p.exists())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_this_process_in_its_cgroup() {
        let Some(p) = super::own_procs_file() else {
            return; // no cgroupfs in this sandbox
        };
        let me = std::process::id().to_string();
        let listed = std::fs::read_to_string(&p).expect("read cgroup.procs");
        assert!(
            listed.lines().any(|l| l == me),
            "{} does not list pid {me}",
            p.display()
        );
    }
}
