//! Mount options as the spec (config-linux.md#mounts, mount(8)) spells them, sorted
//! into what the new mount API wants: per-mount attributes (MOUNT_ATTR_*), recursive
//! attributes (the `r`-prefixed options of runtime-spec 1.1), propagation, superblock
//! flags, and filesystem parameters for fsconfig.

use berth_sys::mount::*;

/// What one option means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// A mount attribute to set (`set`) or clear; `recursive` for rro, rnosuid, ….
    Attr {
        set: u64,
        clear: u64,
        recursive: bool,
    },
    /// MS_SHARED / MS_SLAVE / MS_PRIVATE / MS_UNBINDABLE, with MS_REC when recursive.
    Propagation(u64),
    /// bind / rbind.
    Bind { recursive: bool },
    /// A superblock flag passed to fsconfig as a flag (sync, dirsync, lazytime, mand).
    SbFlag,
    /// Accepted and meaningless for the new mount API (defaults, async, …).
    Ignore,
    /// Passed to the filesystem (key or key=value).
    Data,
}

const ATIME: u64 = MOUNT_ATTR__ATIME;

fn attr(set: u64, clear: u64) -> Opt {
    Opt::Attr {
        set,
        clear,
        recursive: false,
    }
}

/// Classifies one option string.
pub fn classify(o: &str) -> Opt {
    let p = |flag: libc::c_ulong| Opt::Propagation(flag);
    let rec = libc::MS_REC;
    match o {
        "ro" => attr(MOUNT_ATTR_RDONLY, 0),
        "rw" => attr(0, MOUNT_ATTR_RDONLY),
        "nosuid" => attr(MOUNT_ATTR_NOSUID, 0),
        "suid" => attr(0, MOUNT_ATTR_NOSUID),
        "nodev" => attr(MOUNT_ATTR_NODEV, 0),
        "dev" => attr(0, MOUNT_ATTR_NODEV),
        "noexec" => attr(MOUNT_ATTR_NOEXEC, 0),
        "exec" => attr(0, MOUNT_ATTR_NOEXEC),
        "noatime" => attr(MOUNT_ATTR_NOATIME, ATIME),
        "relatime" => attr(MOUNT_ATTR_RELATIME, ATIME),
        "strictatime" => attr(MOUNT_ATTR_STRICTATIME, ATIME),
        // Clearing relatime/strictatime (or asking for plain "atime") leaves the
        // kernel's default atime mode, which is relatime (mount(8), mount(2) since
        // 2.6.30): not strictatime.
        "norelatime" | "atime" | "nostrictatime" => attr(MOUNT_ATTR_RELATIME, ATIME),
        "nodiratime" => attr(MOUNT_ATTR_NODIRATIME, 0),
        "diratime" => attr(0, MOUNT_ATTR_NODIRATIME),
        "nosymfollow" => attr(MOUNT_ATTR_NOSYMFOLLOW, 0),
        "symfollow" => attr(0, MOUNT_ATTR_NOSYMFOLLOW),
        "shared" => p(libc::MS_SHARED),
        "rshared" => p(libc::MS_SHARED | rec),
        "slave" => p(libc::MS_SLAVE),
        "rslave" => p(libc::MS_SLAVE | rec),
        "private" => p(libc::MS_PRIVATE),
        "rprivate" => p(libc::MS_PRIVATE | rec),
        "unbindable" => p(libc::MS_UNBINDABLE),
        "runbindable" => p(libc::MS_UNBINDABLE | rec),
        "bind" => Opt::Bind { recursive: false },
        "rbind" => Opt::Bind { recursive: true },
        "sync" | "dirsync" | "lazytime" | "mand" => Opt::SbFlag,
        "defaults" | "async" | "nolazytime" | "nomand" | "loud" | "silent" | "tmpcopyup" => {
            Opt::Ignore
        }
        _ => match o.strip_prefix('r').map(classify) {
            Some(Opt::Attr { set, clear, .. }) if o != "rw" => Opt::Attr {
                set,
                clear,
                recursive: true,
            },
            _ => Opt::Data,
        },
    }
}

/// Options the runtime knows but cannot honour (so validation can refuse them early).
pub fn is_unsupported(o: &str) -> bool {
    matches!(o, "remount" | "idmap" | "ridmap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_spec_options() {
        assert_eq!(classify("ro"), attr(MOUNT_ATTR_RDONLY, 0));
        assert_eq!(
            classify("rro"),
            Opt::Attr {
                set: MOUNT_ATTR_RDONLY,
                clear: 0,
                recursive: true
            }
        );
        assert_eq!(
            classify("rnoexec"),
            Opt::Attr {
                set: MOUNT_ATTR_NOEXEC,
                clear: 0,
                recursive: true
            }
        );
        assert_eq!(classify("rw"), attr(0, MOUNT_ATTR_RDONLY));
        assert_eq!(
            classify("rslave"),
            Opt::Propagation(libc::MS_SLAVE | libc::MS_REC)
        );
        assert_eq!(classify("rbind"), Opt::Bind { recursive: true });
        assert_eq!(classify("mode=755"), Opt::Data);
        assert_eq!(classify("newinstance"), Opt::Data);
        assert_eq!(classify("relatime"), attr(MOUNT_ATTR_RELATIME, ATIME));
        assert_eq!(classify("sync"), Opt::SbFlag);
    }
}
