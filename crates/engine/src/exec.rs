//! `exec`: a new process in a running container, started by the runtime library in
//! this process (no runtime binary exec'd). The process starts from the container's
//! own (its config.json process: env, user, capabilities, cwd) with the caller's
//! options on top, as docker's exec does.
//!
//! With `detach` or a terminal the runtime returns once the process runs and the caller
//! owns it (a child of this process: wait for it, proxy its pty); otherwise the runtime
//! forwards our signals to it and returns its exit code.

use crate::container::{ContainerError, Engine, Status};
use crate::user;
use berth_runtime::container::{ExecOptions as RuntimeExec, Outcome};
use oci_spec::runtime::{Capabilities, Process, User};
use std::path::PathBuf;

/// What the caller asks of the new process.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments (not empty).
    pub command: Vec<String>,
    /// KEY=VALUE, over the container's environment.
    pub env: Vec<String>,
    /// USER[:GROUP], names resolved from the container's /etc/passwd and /etc/group.
    pub user: Option<String>,
    /// An absolute path in the container.
    pub workdir: Option<String>,
    /// A pty for the process: its master goes to `console_socket`.
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    /// Every capability this host allows, in every set.
    pub privileged: bool,
    /// Return once the process runs.
    pub detach: bool,
}

/// How an exec ended for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// Still running (`detach`, or a terminal the caller proxies); our child.
    Started {
        pid: i32,
    },
    Exited {
        code: i32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec: no command given")]
    NoCommand,
    #[error("--workdir {0:?}: must be an absolute path")]
    RelativeWorkdir(String),
    #[error("--env {0:?}: expected KEY=VALUE")]
    BadEnv(String),
}

impl Engine {
    /// `exec`: runs `o.command` in the running container `key`. A container that is not
    /// running is [`ContainerError::NotRunning`]; a program that cannot be started is
    /// [`ContainerError::StartFailed`] (its message says why: not found, permission).
    pub fn exec(&self, key: &str, o: &ExecOptions) -> Result<ExecOutcome, ContainerError> {
        let c = self.find(key)?;
        if c.status != Status::Running {
            return Err(ContainerError::NotRunning(c.name));
        }
        let rt = self.runtime_root();
        let process = self.exec_process(&c.id, o)?;
        let opts = RuntimeExec {
            root: rt,
            id: c.id.clone(),
            process,
            console_socket: o.console_socket.clone(),
            pid_file: None,
            detach: o.detach || o.tty,
            preserve_fds: 0,
            ignore_paused: false,
            sub_cgroups: vec![],
        };
        match berth_runtime::container::exec(&opts) {
            Ok(Outcome::Started { pid }) => Ok(ExecOutcome::Started { pid }),
            Ok(Outcome::Exited { code }) => Ok(ExecOutcome::Exited { code }),
            // The program could not be started (not found, not executable, bad cwd):
            // docker's 127/126 from the failed step's errno.
            Err(e @ berth_runtime::Error::Spawn(_)) => {
                let e = ContainerError::from(e);
                Err(ContainerError::StartFailed {
                    message: e.to_string(),
                    code: crate::lifecycle::start_failure_code(&e),
                })
            }
            Err(
                berth_runtime::Error::WrongStatus { .. } | berth_runtime::Error::NotRunning { .. },
            ) => Err(ContainerError::NotRunning(c.name)),
            Err(e) => Err(e.into()),
        }
    }

    /// The process `exec` starts: the container's, with `o` applied.
    pub fn exec_process(&self, id: &str, o: &ExecOptions) -> Result<Process, ContainerError> {
        if o.command.is_empty() {
            return Err(ExecError::NoCommand.into());
        }
        let mut p = berth_runtime::container::base_process(&self.runtime_root(), id)?;
        p.set_args(Some(o.command.clone()));
        let mut env = p.env().clone().unwrap_or_default();
        if let Some(w) = &o.workdir {
            if !w.starts_with('/') {
                return Err(ExecError::RelativeWorkdir(w.clone()).into());
            }
            p.set_cwd(w.into());
        }
        if let Some(spec) = &o.user {
            let rootfs = self.dir(id).join("rootfs");
            let passwd = user::read_in_root(&rootfs, "/etc/passwd").unwrap_or_default();
            let group = user::read_in_root(&rootfs, "/etc/group").unwrap_or_default();
            let u = user::resolve(spec, &passwd, &group).map_err(crate::spec::SpecError::from)?;
            let mut pu = User::default();
            pu.set_uid(u.uid);
            pu.set_gid(u.gid);
            pu.set_additional_gids(Some(u.additional_gids));
            p.set_user(pu);
            // The container's HOME was the container user's.
            if let Some(h) = u.home {
                set_env(&mut env, &format!("HOME={h}"));
            }
        }
        if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        for e in &o.env {
            if !e.contains('=') || e.starts_with('=') {
                return Err(ExecError::BadEnv(e.clone()).into());
            }
            set_env(&mut env, e);
        }
        p.set_env(Some(env));
        p.set_terminal(Some(o.tty));
        p.set_console_size(None);
        let mut caps = p.capabilities().clone().unwrap_or_default();
        if o.privileged {
            let all: Capabilities = crate::spec::host_caps()
                .iter()
                .filter_map(|n| serde_json::from_value(serde_json::Value::String(n.clone())).ok())
                .collect();
            caps.set_bounding(Some(all.clone()));
            caps.set_permitted(Some(all.clone()));
            caps.set_effective(Some(all));
        }
        // A non-root user keeps no effective capabilities (as the container's own
        // process does, and docker's exec).
        if p.user().uid() != 0 {
            caps.set_effective(Some(Capabilities::new()));
            caps.set_ambient(None);
        } else {
            caps.set_effective(caps.permitted().clone());
        }
        p.set_capabilities(Some(caps));
        Ok(p)
    }
}

fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}
