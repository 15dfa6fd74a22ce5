use super::Error;
use crate::hooks::{self, Kind};
use crate::state::{self, ContainerState, Phase, Status};
use rustix::fs::{Mode, OFlags};
use std::os::fd::AsFd;
use std::path::Path;

/// Releases a created container's init to exec the user's program.
pub fn start(root: &Path, id: &str) -> Result<(), Error> {
    super::validate_id(id)?;
    let mut st = ContainerState::load(root, id)?;
    let status = st.status();
    let message = match status {
        Status::Created => None,
        Status::Stopped => Some("cannot start a container that has stopped"),
        Status::Running | Status::Paused => Some("cannot start an already running container"),
        Status::Creating => Some("cannot start a container that is still being created"),
    };
    if let Some(m) = message {
        return Err(Error::WrongStatus {
            id: id.into(),
            status,
            message: m.into(),
        });
    }
    let fifo = state::dir(root, id).join(state::EXEC_FIFO);
    // Non-blocking: if the init is gone there is no reader, and open fails with ENXIO
    // instead of hanging.
    let fd = rustix::fs::open(
        &fifo,
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        what: "opening the exec fifo",
        path: fifo.clone(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    })?;
    let created = super::create::document(&st, st.pid, Status::Created);
    if let Err(e) = hooks::run(Kind::StartContainer, st.hooks.as_ref(), &created, st.pid) {
        // "stop the container, and continue the lifecycle at step 12": delete is next.
        let _ = berth_sys::process::kill(st.pid, libc::SIGKILL);
        return Err(e.into());
    }
    release(&fd, &fifo)?;
    st.phase = Phase::Started;
    st.save(root)?;
    let running = super::create::document(&st, st.pid, Status::Running);
    hooks::run_warn(Kind::Poststart, st.hooks.as_ref(), &running);
    Ok(())
}

/// Lets the init waiting on the exec fifo go on to exec.
pub(super) fn release(fd: &impl AsFd, fifo: &Path) -> Result<(), Error> {
    rustix::io::write(fd, b"0").map_err(|e| Error::Io {
        what: "writing the exec fifo",
        path: fifo.to_path_buf(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    })?;
    let _ = std::fs::remove_file(fifo);
    Ok(())
}
