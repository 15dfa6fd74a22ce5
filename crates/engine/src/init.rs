//! `--init`: a small static init (Debian's catatonit, or tini-static) bind-mounted
//! read-only into the container and run as its PID 1, so that orphans are reaped and
//! signals reach the command (a PID 1 without a handler ignores SIGTERM).

use std::path::{Path, PathBuf};

/// Where the init appears inside the container.
pub const CONTAINER_PATH: &str = "/run/berth-init";

/// Looked for in this order when `--init-path` is not given. Only static builds: the
/// image may have no C library, or a different one.
pub const CANDIDATES: &[&str] = &[
    "/usr/libexec/podman/catatonit",
    "/usr/bin/catatonit",
    "/usr/bin/tini-static",
];

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("--init: no init found (looked for {}); install Debian's catatonit (or tini) package, or give --init-path", CANDIDATES.join(", "))]
    NotInstalled,
    #[error("--init-path {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--init-path {path}: {problem}")]
    Unusable { path: PathBuf, problem: String },
}

/// The init to mount: `explicit` (from `--init-path`) or the first installed candidate.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, InitError> {
    find_among(explicit, CANDIDATES)
}

fn find_among(explicit: Option<&Path>, candidates: &[&str]) -> Result<PathBuf, InitError> {
    if let Some(p) = explicit {
        check(p)?;
        return Ok(p.to_path_buf());
    }
    let found = candidates
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or(InitError::NotInstalled)?;
    check(found)?;
    Ok(found.to_path_buf())
}

/// The command line that runs `args` under the init.
pub fn wrap(args: Vec<String>) -> Vec<String> {
    // Both catatonit and tini take the program after "--".
    [CONTAINER_PATH.to_string(), "--".into()]
        .into_iter()
        .chain(args)
        .collect()
}

/// A regular, executable, statically linked ELF file.
fn check(path: &Path) -> Result<(), InitError> {
    use std::os::unix::fs::PermissionsExt;
    let unusable = |problem: &str| InitError::Unusable {
        path: path.to_path_buf(),
        problem: problem.into(),
    };
    let meta = std::fs::metadata(path).map_err(|source| InitError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(unusable("not an executable file"));
    }
    let bytes = std::fs::read(path).map_err(|source| InitError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    match elf_interpreter(&bytes) {
        None => Err(unusable("not an ELF executable")),
        Some(Some(interp)) => Err(unusable(&format!(
            "dynamically linked (needs {interp}), so it cannot run in an image without that loader; use a static init such as catatonit or tini-static"
        ))),
        Some(None) => Ok(()),
    }
}

/// For an ELF file, its PT_INTERP (the dynamic loader) if any; None if not ELF.
fn elf_interpreter(b: &[u8]) -> Option<Option<String>> {
    if b.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = *b.get(4)? == 2;
    let little = *b.get(5)? == 1;
    let num = |at: usize, len: usize| -> Option<u64> {
        let s = b.get(at..at.checked_add(len)?)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { s[len - 1 - i] } else { s[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    // e_phoff, e_phentsize and e_phnum, then each program header's p_type, p_offset
    // and p_filesz, at their 32- or 64-bit offsets.
    let (phoff, phentsize, phnum) = if wide {
        (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?)
    } else {
        (num(0x1c, 4)?, num(0x2a, 2)?, num(0x2c, 2)?)
    };
    for i in 0..phnum {
        let h = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        const PT_INTERP: u64 = 3;
        if num(h, 4)? != PT_INTERP {
            continue;
        }
        let (off, size) = if wide {
            (num(h + 8, 8)?, num(h + 32, 8)?)
        } else {
            (num(h + 4, 4)?, num(h + 16, 4)?)
        };
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let name = b.get(start..end)?;
        let name = name.split(|c| *c == 0).next().unwrap_or_default();
        return Some(Some(String::from_utf8_lossy(name).into_owned()));
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        // The test binary itself is dynamically linked; busybox-static is not.
        let me = std::fs::read("/proc/self/exe").expect("self");
        let interp = elf_interpreter(&me).expect("ELF").expect("dynamic");
        assert!(interp.contains("ld-"), "{interp}");
        let bb = Path::new("/bin/busybox");
        if bb.exists() {
            let b = std::fs::read(bb).expect("busybox");
            assert_eq!(elf_interpreter(&b), Some(None));
            check(bb).expect("static busybox is usable");
        }
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(elf_interpreter(b"\x7fELF\x02\x01"), None);
        let e = check(Path::new("/proc/self/exe")).expect_err("dynamic");
        assert!(e.to_string().contains("dynamically linked"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("init");
        std::fs::write(&plain, &me).expect("copy");
        let e = check(&plain).expect_err("not executable");
        assert!(e.to_string().contains("not an executable"), "{e}");
        let e = find(Some(Path::new("/nonexistent/init"))).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/init"), "{e}");
    }

    #[test]
    fn none_installed_says_what_to_install() {
        let e = find_among(None, &["/nonexistent/catatonit"]).expect_err("none");
        let m = e.to_string();
        assert!(
            m.contains("catatonit")
                && m.contains("--init-path")
                && m.contains("/usr/bin/tini-static"),
            "{m}"
        );
        if Path::new("/bin/busybox").exists() {
            assert_eq!(
                find_among(None, &["/nonexistent/x", "/bin/busybox"]).expect("found"),
                Path::new("/bin/busybox")
            );
        }
    }

    #[test]
    fn wraps_the_command() {
        assert_eq!(
            wrap(vec!["sleep".into(), "1".into()]),
            ["/run/berth-init", "--", "sleep", "1"]
        );
    }
}
