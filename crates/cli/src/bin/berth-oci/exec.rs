//! `exec` flags, as runc's: the process comes whole from `--process`, or is the
//! container's own config.json process with the command and the flags applied.

use anyhow::{bail, Context, Result};
use berth_runtime::container::{self, ExecOptions, Outcome};
use clap::Args;
use oci_spec::runtime::{Capabilities, Capability, Process};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master (with --tty).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<String>,
    /// Set an environment variable (KEY=VALUE); may be repeated.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Allocate a pseudo-TTY (needs --console-socket).
    #[arg(short = 't', long)]
    tty: bool,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// An additional gid; may be repeated.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// JSON file with the whole process (runtime-spec config.md#process).
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Return once the process has started.
    #[arg(short = 'd', long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// AppArmor profile for the process.
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability (to the bounding, effective and permitted sets); may be repeated.
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Pass N extra fds (3 .. 3+N-1) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Exec even if the container is paused.
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Run in an existing sub-cgroup of the container's: [CONTROLLER[,...]:]PATH; may be
    /// repeated.
    #[arg(long = "cgroup")]
    cgroup: Vec<String>,
    id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn exec(root: &Path, a: ExecArgs) -> Result<i32> {
    let process = match &a.process {
        Some(path) => read_process(path)?,
        None => process_from_flags(root, &a)?,
    };
    let opts = ExecOptions {
        root: root.to_path_buf(),
        id: a.id,
        process,
        console_socket: a.console_socket,
        pid_file: a.pid_file,
        detach: a.detach,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        sub_cgroups: a.cgroup,
    };
    match container::exec(&opts)? {
        Outcome::Started { .. } => Ok(0),
        Outcome::Exited { code } => Ok(code),
    }
}

fn read_process(path: &Path) -> Result<Process> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading --process {}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("--process {}: {}: {}", path.display(), e.path(), e.inner()))
}

fn process_from_flags(root: &Path, a: &ExecArgs) -> Result<Process> {
    if a.command.is_empty() {
        bail!("exec: no command given (pass it after the container id, or use --process)");
    }
    let mut p = container::base_process(root, &a.id)?;
    p.set_args(Some(a.command.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.into());
    }
    p.set_terminal(Some(a.tty));
    // The container's console size is the init's business; exec gets a new pty.
    p.set_console_size(None);
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("--user {u}: uid must be a number"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .with_context(|| format!("--user {u}: gid must be a number"))?,
            );
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: &Option<Capabilities>, extra: &[Capability]| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(extra.iter().copied());
            Some(s)
        };
        let extra = a
            .cap
            .iter()
            .map(|c| {
                let name = if c.starts_with("CAP_") {
                    c.clone()
                } else {
                    format!("CAP_{c}")
                };
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| anyhow::anyhow!("--cap {c}: unknown capability {name}"))
            })
            .collect::<Result<Vec<Capability>>>()?;
        caps.set_bounding(add(caps.bounding(), &extra));
        caps.set_effective(add(caps.effective(), &extra));
        caps.set_permitted(add(caps.permitted(), &extra));
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}
