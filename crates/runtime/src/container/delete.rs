use super::Error;
use crate::state::{self, ContainerState, StateError, Status};
use rustix::event::{poll, PollFd, PollFlags};
use std::path::Path;

/// Removes a container: its processes (when stopped, created, or with `force`), its
/// cgroups and its state directory.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), Error> {
    super::validate_id(id)?;
    let st = match ContainerState::load(root, id) {
        Ok(st) => st,
        Err(StateError::NotFound { .. }) => {
            // A create that died before writing state leaves at most an empty directory.
            let d = state::dir(root, id);
            if d.exists() && force {
                let _ = std::fs::remove_dir_all(&d);
                return Ok(());
            }
            if force {
                return Ok(());
            }
            return Err(StateError::NotFound { id: id.into() }.into());
        }
        Err(e) => return Err(e.into()),
    };
    let status = st.status();
    match status {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&st),
        Status::Running | Status::Paused | Status::Creating if force => kill_and_wait(&st),
        _ => {
            return Err(Error::WrongStatus {
                id: id.into(),
                status,
                message: format!("cannot delete container {id} that is not stopped: {status}"),
            })
        }
    }
    destroy(root, &st)
}

fn kill_and_wait(st: &ContainerState) {
    if let Some(cg) = &st.cgroup {
        cg.signal_all(libc::SIGKILL);
        super::kill::thaw(cg);
    }
    if st.init_alive() {
        let pidfd = rustix::process::Pid::from_raw(st.pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let _ = berth_sys::process::kill(st.pid, libc::SIGKILL);
        if let Some(fd) = pidfd {
            // Readable once the process has exited; bounded so a D-state process cannot hang delete.
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let timeout = rustix::time::Timespec {
                tv_sec: 5,
                tv_nsec: 0,
            };
            let _ = poll(&mut fds, Some(&timeout));
        }
    }
}

/// Removes the cgroup and the state directory; tries both and reports the first error.
pub(crate) fn destroy(root: &Path, st: &ContainerState) -> Result<(), Error> {
    let stopped = super::create::document(st, 0, Status::Stopped);
    let cg = st.cgroup.as_ref().map(|c| c.destroy()).unwrap_or(Ok(()));
    let d = state::dir(root, &st.id);
    let dir = match std::fs::remove_dir_all(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            what: "removing the state directory",
            path: d,
            source: e,
        }),
        _ => Ok(()),
    };
    // After the container is gone, before delete returns; failures only warn.
    crate::hooks::run_warn(crate::hooks::Kind::Poststop, st.hooks.as_ref(), &stopped);
    cg?;
    dir
}
