use super::Error;
use crate::state::{ContainerState, Status};
use std::path::Path;

/// Sends `signal` to the init, or with `all` to every process in the container's cgroup.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<(), Error> {
    super::validate_id(id)?;
    let st = ContainerState::load(root, id)?;
    match st.status() {
        Status::Stopped | Status::Creating => return Err(Error::NotRunning { id: id.into() }),
        Status::Created | Status::Running | Status::Paused => {}
    }
    if all {
        if let Some(cg) = &st.cgroup {
            cg.signal_all(signal);
            if signal == libc::SIGKILL {
                thaw(cg);
            }
            return Ok(());
        }
    }
    berth_sys::process::kill(st.pid, signal).map_err(|e| Error::Io {
        what: "signalling the init, pid",
        path: st.pid.to_string().into(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    })
}

/// A frozen process cannot act on SIGKILL; thaw so it dies.
pub(super) fn thaw(cg: &crate::cgroups::Cgroup) {
    // Also for a cgroup caught half-way (v1 FREEZING); best effort, the kill goes
    // ahead either way.
    let _ = cg.freeze(false);
}
