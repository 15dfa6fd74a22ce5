//! Entry names: lexical cleaning of tar paths and the whiteout naming rules of layer.md.
//! Pure functions on bytes, so they are unit-tested without a filesystem; the symlink half
//! of path safety is the kernel's (openat2 RESOLVE_BENEATH in `resolve`).

use super::error::Refusal;

/// Prefix of a whiteout file (layer.md#whiteouts).
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The opaque-directory marker (layer.md#opaque-whiteout).
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Cleans `raw` into `out` (reused across entries to avoid allocating): components joined
/// by `/`, without empty, `.` or `..` components. The empty result is the layer root.
///
/// `..` is resolved lexically, like `filepath.Clean` in containerd and umoci; a `..` that
/// would climb above the root is refused rather than clamped, since no honest layer needs
/// it. Absolute paths are refused for the same reason.
pub(crate) fn clean(raw: &[u8], out: &mut Vec<u8>) -> Result<(), Refusal> {
    out.clear();
    if raw.first() == Some(&b'/') {
        return Err(Refusal::Absolute);
    }
    if raw.contains(&0) {
        return Err(Refusal::BadHeader { field: "path" });
    }
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(Refusal::LeavesRoot);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(comp);
            }
        }
    }
    Ok(())
}

/// Splits a cleaned, non-empty path into its parent (possibly empty: the root) and its name.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// What a final path component means under layer.md's whiteout rules.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Name<'a> {
    /// An ordinary file name.
    Plain,
    /// `.wh..wh..opq`: the containing directory hides the lower layers' children.
    Opaque,
    /// `.wh.NAME`: NAME is deleted from the lower layers.
    Whiteout(&'a [u8]),
}

pub(crate) fn classify(name: &[u8]) -> Result<Name<'_>, Refusal> {
    if name == OPAQUE_MARKER {
        return Ok(Name::Opaque);
    }
    let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Name::Plain);
    };
    // `name` is one component, so it has no '/'; what is left to refuse are the names
    // that do not denote a sibling: "", "." and "..".
    if target.is_empty() || target == b"." || target == b".." {
        return Err(Refusal::BadWhiteout {
            name: String::from_utf8_lossy(target).into_owned(),
        });
    }
    Ok(Name::Whiteout(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(raw: &str) -> Result<String, Refusal> {
        let mut out = Vec::new();
        clean(raw.as_bytes(), &mut out).map(|()| String::from_utf8(out).expect("utf8"))
    }

    #[test]
    fn clean_normalises() {
        assert_eq!(c("a/b/c").as_deref(), Ok("a/b/c"));
        assert_eq!(c("./a//b/./c/").as_deref(), Ok("a/b/c"));
        assert_eq!(c("a/../b").as_deref(), Ok("b"));
        assert_eq!(c("a/b/../../c").as_deref(), Ok("c"));
        assert_eq!(c("./").as_deref(), Ok(""));
        assert_eq!(c(".").as_deref(), Ok(""));
        assert_eq!(c("a/..").as_deref(), Ok(""));
    }

    #[test]
    fn clean_refuses_escapes() {
        assert_eq!(c("../x"), Err(Refusal::LeavesRoot));
        assert_eq!(c("a/../../x"), Err(Refusal::LeavesRoot));
        assert_eq!(c("./.."), Err(Refusal::LeavesRoot));
        assert_eq!(c("/etc/passwd"), Err(Refusal::Absolute));
        assert_eq!(c("//x"), Err(Refusal::Absolute));
        assert_eq!(c("a\0b"), Err(Refusal::BadHeader { field: "path" }));
    }

    #[test]
    fn split_parent_and_name() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(classify(b"file"), Ok(Name::Plain));
        assert_eq!(classify(b".wh"), Ok(Name::Plain));
        assert_eq!(classify(b".whfoo"), Ok(Name::Plain));
        assert_eq!(classify(b".wh..wh..opq"), Ok(Name::Opaque));
        assert_eq!(classify(b".wh.foo"), Ok(Name::Whiteout(b"foo")));
        assert_eq!(classify(b".wh..foo"), Ok(Name::Whiteout(b".foo")));
        // An aufs meta name other than the opaque marker whites out a literal ".wh.x".
        assert_eq!(classify(b".wh..wh.plnk"), Ok(Name::Whiteout(b".wh.plnk")));
        for bad in [&b".wh."[..], b".wh..", b".wh..."] {
            assert!(
                matches!(classify(bad), Err(Refusal::BadWhiteout { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
