use super::Error;
use crate::state::{ContainerState, Status};
use std::path::Path;

/// Freezes every process of a running container (the cgroup freezer, v1 or v2).
pub fn pause(root: &Path, id: &str) -> Result<(), Error> {
    let (st, status) = load(root, id)?;
    if status != Status::Running {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            message: format!("container {id} is not running ({status})"),
        });
    }
    Ok(cgroup(&st)?.freeze(true)?)
}

/// Thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<(), Error> {
    let (st, status) = load(root, id)?;
    if status != Status::Paused {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            message: format!("container {id} is not paused ({status})"),
        });
    }
    Ok(cgroup(&st)?.freeze(false)?)
}

fn load(root: &Path, id: &str) -> Result<(ContainerState, Status), Error> {
    super::validate_id(id)?;
    let st = ContainerState::load(root, id)?;
    let status = st.status();
    Ok((st, status))
}

pub(super) fn cgroup(st: &ContainerState) -> Result<&crate::cgroups::Cgroup, Error> {
    st.cgroup.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "container {} has no cgroup (it was created without one)",
            st.id
        ))
    })
}
