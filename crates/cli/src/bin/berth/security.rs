//! `berth run`'s security and process flags: --security-opt, --ulimit, --init. Everything
//! is parsed and checked here, before any container is made, so a bad profile or an
//! impossible limit leaves nothing behind.

use crate::exit::Usage;
use anyhow::{bail, Context, Result};
use berth_engine::seccomp::{Policy, Profile};
use berth_engine::spec::SpecOptions;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct SecurityArgs {
    /// no-new-privileges, seccomp=unconfined, or seccomp=PATH (a docker or OCI seccomp
    /// profile; docs/SECCOMP.md).
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD] with docker's names (nofile, nproc, core,
    /// memlock, stack, ...); -1 or unlimited for none. Never above the host's hard limit
    /// unless berth has CAP_SYS_RESOURCE.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimit: Vec<String>,
    /// Run a small init (catatonit or tini-static) as PID 1: it reaps orphans and passes
    /// signals on to the command.
    #[arg(long)]
    init: bool,
    /// The init binary for --init (a static executable); implies --init.
    #[arg(long = "init-path", value_name = "PATH")]
    init_path: Option<PathBuf>,
}

impl SecurityArgs {
    /// Sets the spec's seccomp policy, no_new_privileges, ulimits and init.
    pub fn apply(&self, spec: &mut SpecOptions) -> Result<()> {
        for s in &self.security_opt {
            // docker writes both seccomp=X and seccomp:X.
            let (key, value) = s
                .split_once(['=', ':'])
                .map_or((s.as_str(), None), |(k, v)| (k, Some(v)));
            match (key, value) {
                ("no-new-privileges", None | Some("true")) => spec.no_new_privileges = true,
                ("no-new-privileges", Some("false")) => spec.no_new_privileges = false,
                ("seccomp", Some("unconfined")) => spec.seccomp = Policy::Unconfined,
                ("seccomp", Some(path)) if !path.is_empty() => {
                    let p = Profile::from_file(std::path::Path::new(path))
                        .with_context(|| format!("--security-opt {s}"))?;
                    spec.seccomp = Policy::Custom(Box::new(p));
                }
                _ => bail!(Usage(format!(
                    "--security-opt {s:?}: not supported (no-new-privileges, seccomp=unconfined, seccomp=PATH)"
                ))),
            }
        }
        spec.ulimits = berth_engine::ulimit::parse_all(&self.ulimit)?;
        if self.init || self.init_path.is_some() {
            spec.init = Some(berth_engine::init::find(self.init_path.as_deref())?);
        }
        Ok(())
    }
}
