//! `top`: the processes of a running container (its cgroup's pids, from the runtime),
//! read from the host's /proc. User names come from the container's own /etc/passwd,
//! since that is who the uid is inside.

use crate::container::{ContainerError, Engine, Status};
use serde::Serialize;

/// One process, as `top` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Proc {
    /// Host pid.
    pub pid: i32,
    pub ppid: i32,
    /// The container's name for the real uid, else the number.
    pub user: String,
    /// CPU time (user + system), seconds.
    pub cpu_seconds: u64,
    /// The command line; `[comm]` for a process without one (a kernel thread, a zombie).
    pub command: String,
}

impl Engine {
    /// The processes of the running container `key`, by pid.
    pub fn top(&self, key: &str) -> Result<Vec<Proc>, ContainerError> {
        let c = self.find(key)?;
        if c.status != Status::Running {
            return Err(ContainerError::NotRunning(c.name));
        }
        let mut pids =
            berth_runtime::container::pids(&self.runtime_root(), &c.id).map_err(|e| match e {
                berth_runtime::Error::NotRunning { .. } => {
                    ContainerError::NotRunning(c.name.clone())
                }
                e => e.into(),
            })?;
        pids.sort_unstable();
        let passwd = crate::user::read_in_root(&self.dir(&c.id).join("rootfs"), "/etc/passwd")
            .unwrap_or_default();
        let ticks = rustix::param::clock_ticks_per_second().max(1);
        // A process may exit between the listing and the read: it is left out.
        Ok(pids
            .into_iter()
            .filter_map(|pid| read_proc(pid, &passwd, ticks))
            .collect())
    }
}

fn read_proc(pid: i32, passwd: &str, ticks: u64) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": comm may hold spaces and parentheses, so split at
    // the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // Fields after comm, from 0: state, ppid (1), ..., utime (11), stime (12).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    Some(Proc {
        pid,
        ppid,
        user: user_name(passwd, uid),
        cpu_seconds: (utime + stime) / ticks,
        command: if command.is_empty() {
            format!("[{comm}]")
        } else {
            command
        },
    })
}

fn user_name(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[2].parse() == Ok(uid))
        .map_or_else(|| uid.to_string(), |f| f[0].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_names_from_the_containers_passwd() {
        let p = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
        assert_eq!(super::user_name(p, 1000), "app");
        assert_eq!(super::user_name(p, 0), "root");
        assert_eq!(super::user_name(p, 42), "42");
    }
}
