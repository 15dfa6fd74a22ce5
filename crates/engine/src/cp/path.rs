//! The two path shapes `cp` deals in, as pure functions on bytes (unit-tested without a
//! filesystem): a path the user gave (split into the directory to resolve and the final
//! name, with docker's `/.` and trailing-slash meanings), and a tar entry's name
//! (cleaned, and refused when it climbs out of the destination).

/// A path the user gave, on either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserPath {
    /// The directory holding the final name: relative to the container's root (never
    /// empty: "." is the root) or a host path as given ("." for a bare name).
    pub parent: Vec<u8>,
    /// The final component; `None` when the path names a directory as a whole (`/`,
    /// `dir/.`).
    pub name: Option<Vec<u8>>,
    /// Ends in `/.` (or is `/`): a directory's content rather than the directory.
    pub contents: bool,
    /// Ends in `/`: must be a directory.
    pub trailing_slash: bool,
}

impl UserPath {
    /// The path of the whole thing, for resolving it in one go.
    pub fn full(&self) -> Vec<u8> {
        match &self.name {
            None => self.parent.clone(),
            Some(n) if self.parent == b"." => n.clone(),
            Some(n) if self.parent.ends_with(b"/") => [&self.parent[..], n].concat(),
            Some(n) => [&self.parent[..], b"/", n].concat(),
        }
    }
}

/// Splits `raw`. In the container every path is taken from its root (docker: "the
/// initial / is optional"); on the host a relative path is relative to the working
/// directory. Inner `..` are left to the kernel (which keeps them inside the root for
/// the container); a final `..` is refused since it has no name to copy under.
pub(crate) fn user_path(raw: &[u8], in_container: bool) -> Result<UserPath, &'static str> {
    if raw.is_empty() {
        return Err("the path is empty");
    }
    if raw.contains(&0) {
        return Err("the path contains a NUL byte");
    }
    let absolute = raw[0] == b'/' || in_container;
    let mut comps: Vec<&[u8]> = raw
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let trailing_slash = raw.ends_with(b"/");
    let contents = match comps.last() {
        None => true,
        Some(&b".") => {
            comps.pop();
            // "./." and "a/./." mean the same as "." and "a/.".
            while comps.last() == Some(&&b"."[..]) {
                comps.pop();
            }
            true
        }
        Some(&b"..") => return Err("a path ending in '..' names nothing to copy"),
        Some(_) => false,
    };
    let join = |c: &[&[u8]]| -> Vec<u8> {
        let j = c.join(&b'/');
        match (absolute && !in_container, j.is_empty()) {
            (true, _) => [&b"/"[..], &j].concat(),
            (false, true) => b".".to_vec(),
            (false, false) => j,
        }
    };
    if contents {
        return Ok(UserPath {
            parent: join(&comps),
            name: None,
            contents: true,
            trailing_slash,
        });
    }
    let name = comps.pop().map(<[u8]>::to_vec);
    Ok(UserPath {
        parent: join(&comps),
        name,
        contents: false,
        trailing_slash,
    })
}

/// Why a tar entry's name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadName {
    Climbs,
    Nul,
}

/// Cleans a tar entry's name: leading `/` dropped (as GNU tar and docker do: the name
/// is still inside the destination), empty and `.` components dropped, `..` resolved
/// lexically and refused when it would climb above the destination. The empty result
/// is the destination itself.
pub(crate) fn clean_entry(raw: &[u8]) -> Result<Vec<u8>, BadName> {
    if raw.contains(&0) {
        return Err(BadName::Nul);
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(BadName::Climbs);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// `prefix/path`, either of which may be empty.
pub(crate) fn join(prefix: &[u8], path: &[u8]) -> Vec<u8> {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_vec(),
        (false, true) => prefix.to_vec(),
        (false, false) => [prefix, b"/", path].concat(),
    }
}

/// Splits a cleaned, non-empty path into its parent (empty: the base) and its name.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Whether `path` is `dir` or below it (both cleaned, relative).
pub(crate) fn is_within(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

pub(crate) fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(raw: &str, c: bool) -> (String, Option<String>, bool, bool) {
        let p = user_path(raw.as_bytes(), c).expect("parses");
        (
            lossy(&p.parent),
            p.name.map(|n| lossy(&n)),
            p.contents,
            p.trailing_slash,
        )
    }

    #[test]
    fn container_paths() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            up("/etc/passwd", true),
            ("etc".into(), s("passwd"), false, false)
        );
        assert_eq!(
            up("etc/passwd", true),
            ("etc".into(), s("passwd"), false, false)
        );
        assert_eq!(up("/tmp", true), (".".into(), s("tmp"), false, false));
        assert_eq!(up("/tmp/", true), (".".into(), s("tmp"), false, true));
        assert_eq!(up("/", true), (".".into(), None, true, true));
        assert_eq!(up("/etc/.", true), ("etc".into(), None, true, false));
        assert_eq!(up("/etc/./.", true), ("etc".into(), None, true, false));
        assert_eq!(up("/a/../b", true), ("a/..".into(), s("b"), false, false));
        assert!(user_path(b"/a/..", true).is_err());
        assert!(user_path(b"", true).is_err());
    }

    #[test]
    fn host_paths() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(up("file", false), (".".into(), s("file"), false, false));
        assert_eq!(up("/tmp/x", false), ("/tmp".into(), s("x"), false, false));
        assert_eq!(up("/x", false), ("/".into(), s("x"), false, false));
        assert_eq!(up("d/sub/", false), ("d".into(), s("sub"), false, true));
        assert_eq!(up(".", false), (".".into(), None, true, false));
        assert_eq!(up("d/.", false), ("d".into(), None, true, false));
        let p = user_path(b"/tmp/x", false).expect("parses");
        assert_eq!(p.full(), b"/tmp/x");
        let p = user_path(b"/x", false).expect("parses");
        assert_eq!(p.full(), b"/x");
        let p = user_path(b"x", false).expect("parses");
        assert_eq!(p.full(), b"x");
    }

    #[test]
    fn entry_names() {
        let c = |s: &str| clean_entry(s.as_bytes()).map(|v| lossy(&v));
        assert_eq!(c("a/b/c").as_deref(), Ok("a/b/c"));
        assert_eq!(c("./a//b/./").as_deref(), Ok("a/b"));
        assert_eq!(c("/etc/passwd").as_deref(), Ok("etc/passwd"));
        assert_eq!(c("a/../b").as_deref(), Ok("b"));
        assert_eq!(c("./").as_deref(), Ok(""));
        assert_eq!(c("../x"), Err(BadName::Climbs));
        assert_eq!(c("a/../../x"), Err(BadName::Climbs));
        assert_eq!(c("/../x"), Err(BadName::Climbs));
        assert_eq!(c("a\0b"), Err(BadName::Nul));
    }

    #[test]
    fn joins_and_prefixes() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"p", b""), b"p");
        assert_eq!(join(b"p", b"a/b"), b"p/a/b");
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
        assert!(is_within(b"data/x", b"data"));
        assert!(is_within(b"data", b"data"));
        assert!(!is_within(b"database", b"data"));
        assert!(is_within(b"anything", b""));
    }
}
