//! A child process the runtime forked and must not leave behind.

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

/// Kills and reaps the child on drop, unless it was reaped ([`Child::reap`]) or let go
/// ([`Child::disarm`]) first: an error path can never leave a half-started process.
pub(crate) struct Child(Option<Pid>);

impl Child {
    pub(crate) fn new(pid: Pid) -> Self {
        Child(Some(pid))
    }

    /// Waits for the child to exit and returns its status.
    pub(crate) fn reap(mut self) -> Option<WaitStatus> {
        let pid = self.0.take()?;
        rustix::process::waitpid(Some(pid), WaitOptions::empty())
            .ok()
            .flatten()
            .map(|(_, s)| s)
    }

    /// Leaves the child running (it now belongs to the caller's caller).
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
        }
    }
}
