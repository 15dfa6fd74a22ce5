//! `berth cp`: files between a container and the host, or a tar stream (`-`).

use crate::container::engine;
use crate::exit::Usage;
use crate::Cli;
use anyhow::Result;
use berth_engine::cp::CpOptions;
use clap::Args;
use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::Path;

#[derive(Args)]
pub struct CpArgs {
    /// Keep the source's uid and gid (otherwise files copied in belong to the
    /// container's root, and files copied out to you).
    #[arg(short = 'a', long)]
    archive: bool,
    /// Copy what a symlink given as SRC_PATH points to, rather than the link.
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// CONTAINER:SRC_PATH, a host path, or `-` for a tar stream on stdin.
    src: OsString,
    /// CONTAINER:DEST_PATH, a host path, or `-` for a tar stream on stdout.
    dest: OsString,
}

/// One side of the copy, as docker tells them apart: an absolute path, or one whose
/// part before the first `:` starts with `.` or holds a `/`, is the host's (so
/// `./a:b` names a host file with a colon).
#[derive(Debug, PartialEq, Eq)]
enum Arg<'a> {
    Stream,
    Host(&'a OsStr),
    Container(&'a str, &'a [u8]),
}

fn arg(a: &OsStr) -> Arg<'_> {
    let b = a.as_encoded_bytes();
    if b == b"-" {
        return Arg::Stream;
    }
    if b.first() == Some(&b'/') {
        return Arg::Host(a);
    }
    let Some(i) = b.iter().position(|&c| c == b':') else {
        return Arg::Host(a);
    };
    let (name, path) = (&b[..i], &b[i + 1..]);
    match std::str::from_utf8(name) {
        Ok(n) if !n.is_empty() && !n.starts_with('.') && !n.contains('/') => {
            Arg::Container(n, path)
        }
        _ => Arg::Host(a),
    }
}

pub fn cp(cli: &Cli, a: &CpArgs) -> Result<i32> {
    let o = CpOptions {
        archive: a.archive,
        follow_link: a.follow_link,
    };
    match (arg(&a.src), arg(&a.dest)) {
        (Arg::Container(c, src), Arg::Stream) => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            engine(cli)?.copy_from_container_tar(c, src, &mut out, &o)?;
            out.flush()?;
        }
        (Arg::Container(c, src), Arg::Host(dest)) => {
            engine(cli)?.copy_from_container(c, src, Path::new(dest), &o)?;
        }
        (Arg::Stream, Arg::Container(c, dest)) => {
            let mut input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock());
            engine(cli)?.copy_to_container_tar(c, &mut input, dest, &o)?;
        }
        (Arg::Host(src), Arg::Container(c, dest)) => {
            engine(cli)?.copy_to_container(c, Path::new(src), dest, &o)?;
        }
        (Arg::Container(..), Arg::Container(..)) => {
            return Err(Usage("copying between containers is not supported".into()).into())
        }
        _ => {
            return Err(Usage(
                "one of SRC and DEST must be CONTAINER:PATH (the other a host path or -)".into(),
            )
            .into())
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_like_docker() {
        let a = |s: &'static str| arg(OsStr::new(s));
        assert_eq!(a("-"), Arg::Stream);
        assert_eq!(a("web:/etc"), Arg::Container("web", b"/etc"));
        assert_eq!(a("web:etc"), Arg::Container("web", b"etc"));
        assert_eq!(a("/tmp/a:b"), Arg::Host(OsStr::new("/tmp/a:b")));
        assert_eq!(a("./a:b"), Arg::Host(OsStr::new("./a:b")));
        assert_eq!(a("dir/a:b"), Arg::Host(OsStr::new("dir/a:b")));
        assert_eq!(a("file"), Arg::Host(OsStr::new("file")));
        assert_eq!(a(":x"), Arg::Host(OsStr::new(":x")));
    }
}
