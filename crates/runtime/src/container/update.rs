use super::Error;
use crate::cgroups::stats::Stats;
use crate::state::{ContainerState, Status};
use oci_spec::runtime::LinuxResources;
use std::path::Path;

/// Changes a live container's resources (only those given).
pub fn update(root: &Path, id: &str, resources: &LinuxResources) -> Result<(), Error> {
    let st = live(root, id)?;
    Ok(super::pause::cgroup(&st)?.update(resources)?)
}

/// The container's pids, from its cgroup (the init and everything it or `exec` started).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, Error> {
    let st = live(root, id)?;
    Ok(super::pause::cgroup(&st)?.pids())
}

/// Resource usage now, and the OOM kill count so far.
pub fn stats(root: &Path, id: &str) -> Result<(Stats, u64), Error> {
    let st = live(root, id)?;
    let cg = super::pause::cgroup(&st)?;
    Ok((cg.stats(), cg.oom_kills()))
}

/// The OOM kill count, also once the container has stopped (its cgroup stays until
/// delete), so a watcher sees the kill that stopped it.
pub fn oom_kills(root: &Path, id: &str) -> Result<u64, Error> {
    super::validate_id(id)?;
    let st = ContainerState::load(root, id)?;
    Ok(super::pause::cgroup(&st)?.oom_kills())
}

fn live(root: &Path, id: &str) -> Result<ContainerState, Error> {
    super::validate_id(id)?;
    let st = ContainerState::load(root, id)?;
    match st.status() {
        Status::Stopped => Err(Error::NotRunning { id: id.into() }),
        _ => Ok(st),
    }
}
