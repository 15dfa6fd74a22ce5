use std::ffi::{CStr, CString};

/// A path inside the rootfs, pre-split so the child can create missing components
/// without allocating: `prefixes[i]` is the first i+1 components joined by '/', and
/// `names[i]` the i-th component alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPath {
    /// The path as the spec gave it, for error messages.
    pub display: String,
    pub prefixes: Vec<CString>,
    pub names: Vec<CString>,
}

impl RootPath {
    /// Splits a container path; `..` is resolved lexically and can never climb above
    /// the root, `.` and empty components vanish. None if a component has a NUL byte.
    pub fn new(path: &str) -> Option<Self> {
        let mut parts: Vec<&str> = Vec::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        let mut prefixes = Vec::with_capacity(parts.len());
        let mut names = Vec::with_capacity(parts.len());
        for i in 0..parts.len() {
            prefixes.push(CString::new(parts[..=i].join("/")).ok()?);
            names.push(CString::new(parts[i]).ok()?);
        }
        Some(RootPath {
            display: path.to_string(),
            prefixes,
            names,
        })
    }

    /// The whole path relative to the root ("." for the root itself).
    pub fn full(&self) -> &CStr {
        self.prefixes.last().map(|c| c.as_c_str()).unwrap_or(c".")
    }

    /// The last component, or "." for the root.
    pub fn name(&self) -> &CStr {
        self.names.last().map(|c| c.as_c_str()).unwrap_or(c".")
    }

    /// The parent's path relative to the root ("." when the parent is the root).
    pub fn parent(&self) -> &CStr {
        match self.prefixes.len() {
            0 | 1 => c".",
            n => self.prefixes[n - 2].as_c_str(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Whether the path lies under /proc (whose targets must really be procfs).
    pub fn under_proc(&self) -> bool {
        self.names.first().is_some_and(|n| n.as_bytes() == b"proc")
    }

    pub fn join(&self, child: &str) -> Option<Self> {
        let mut p = RootPath::new(&format!("{}/{}", self.display.trim_end_matches('/'), child))?;
        p.display = format!("{}/{}", self.display.trim_end_matches('/'), child);
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::RootPath;

    #[test]
    fn splits_and_clamps() {
        let p = RootPath::new("/dev/pts/../shm/").expect("valid");
        assert_eq!(p.full().to_str().ok(), Some("dev/shm"));
        assert_eq!(p.parent().to_str().ok(), Some("dev"));
        assert_eq!(p.name().to_str().ok(), Some("shm"));
        let up = RootPath::new("/../../etc/passwd").expect("valid");
        assert_eq!(up.full().to_str().ok(), Some("etc/passwd"));
        let root = RootPath::new("/").expect("valid");
        assert!(root.is_root());
        assert_eq!(root.full().to_str().ok(), Some("."));
        assert!(RootPath::new("/proc/sys").expect("valid").under_proc());
        assert!(RootPath::new("/a\0b").is_none());
    }
}
