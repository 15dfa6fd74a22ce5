//! Deferred deletion. Removing a container's directories (its writable layer, bundle,
//! log directory) costs a dozen unlinks, ~0.3 ms each on ext4 here: more time than the
//! rest of a `run --rm`'s cleanup. A directory is instead renamed into a trash directory
//! on its filesystem (one rename: it is gone from where anything looks), and emptied
//! later: by the container's monitor after a foreground run (which the user is not
//! waiting for), otherwise when the engine is dropped, and by `system prune` for what a
//! killed process left.

use crate::container::Engine;
use std::path::{Path, PathBuf};

/// The trash directories: one under the root, one under the run root (a tmpfs, usually).
pub(crate) fn dirs(e: &Engine) -> [PathBuf; 2] {
    [e.root.join("trash"), e.runroot.join("trash")]
}

impl Engine {
    /// Moves `path` (under the root or the run root) into the trash, to be emptied
    /// later; removes it at once where it cannot be moved (another filesystem). Gone
    /// already is fine.
    pub(crate) fn discard(&self, path: &Path) -> std::io::Result<()> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        let [under_root, under_runroot] = dirs(self);
        let trash = if path.starts_with(&self.runroot) {
            under_runroot
        } else {
            under_root
        };
        let mut b = [0u8; 8];
        let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
        let name = format!(
            "{}.{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        );
        let to = trash.join(name);
        let moved = std::fs::create_dir_all(&trash).and_then(|_| std::fs::rename(path, &to));
        match moved {
            Ok(()) => {
                self.trash
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(to);
                Ok(())
            }
            Err(_) => match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// What this process put in the trash and has not emptied; the caller empties it
    /// (a monitor, told by [`crate::lifecycle::MonitorHandle::exited`]).
    pub(crate) fn take_trash(&self) -> Vec<PathBuf> {
        std::mem::take(&mut *self.trash.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Empties both trash directories entirely (`system prune`): what killed processes
    /// left too. Returns the bytes freed.
    pub fn empty_trash(&self) -> u64 {
        let mut freed = 0;
        for d in dirs(self) {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                freed += crate::prune::du(&e.path());
                let _ = remove(&e.path());
            }
        }
        self.take_trash();
        freed
    }
}

fn remove(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => Ok(()),
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for p in self.take_trash() {
            let _ = remove(&p);
        }
    }
}
