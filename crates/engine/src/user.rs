//! `--user` and the image's `User`: names resolved from the image's own /etc/passwd and
//! /etc/group, read through the rootfs without following symlinks out of it.

use std::io::Read as _;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user {0:?} is not in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} is not in the image's /etc/group")]
    UnknownGroup(String),
}

/// Reads a file of the rootfs with every path component resolved inside it.
pub fn read_in_root(root: &Path, path: &str) -> Option<String> {
    use rustix::fs::{Mode, OFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::PATH,
        Mode::empty(),
    )
    .ok()?;
    let fd =
        berth_sys::fd::open_in_root(&dir, path.trim_start_matches('/'), OFlags::RDONLY).ok()?;
    let mut f = std::fs::File::from(fd);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut (&mut f).take(4 << 20), &mut s).ok()?;
    Some(s)
}

/// Resolves `spec` (`name`, `uid`, `uid:gid`, `name:group`, empty = root) against the
/// passwd and group files' contents.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<User, UserError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd_rows: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let group_rows: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let (uid, mut gid, name, home) = if u.is_empty() {
        (0, 0, Some("root".to_string()), Some("/root".to_string()))
    } else if let Ok(uid) = u.parse::<u32>() {
        match passwd_rows.iter().find(|r| r[2].parse() == Ok(uid)) {
            Some(r) => (
                uid,
                r[3].parse().unwrap_or(0),
                Some(r[0].to_string()),
                Some(r[5].to_string()),
            ),
            // A numeric uid need not exist in the image (docker runs it with gid 0).
            None => (uid, 0, None, None),
        }
    } else {
        let r = passwd_rows
            .iter()
            .find(|r| r[0] == u)
            .ok_or_else(|| UserError::UnknownUser(u.into()))?;
        (
            r[2].parse().map_err(|_| UserError::UnknownUser(u.into()))?,
            r[3].parse().unwrap_or(0),
            Some(u.to_string()),
            Some(r[5].to_string()),
        )
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_rows
                .iter()
                .find(|r| r[0] == g)
                .and_then(|r| r[2].parse().ok())
                .ok_or_else(|| UserError::UnknownGroup(g.into()))?,
        };
    }
    let mut additional_gids: Vec<u32> = match &name {
        Some(n) if g.is_none() => group_rows
            .iter()
            .filter(|r| r[3].split(',').any(|m| m == n))
            .filter_map(|r| r[2].parse().ok())
            .filter(|x| *x != gid)
            .collect(),
        _ => vec![],
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nbob:x:1000:\nwheel:x:10:bob,alice\naudio:x:29:bob\n";

    #[test]
    fn names_ids_and_groups() {
        let r = |s| resolve(s, PASSWD, GROUP);
        assert_eq!(r("").expect("root").uid, 0);
        let bob = r("bob").expect("bob");
        assert_eq!(
            (bob.uid, bob.gid, bob.additional_gids.clone()),
            (1000, 1000, vec![10, 29])
        );
        assert_eq!(bob.home.as_deref(), Some("/home/bob"));
        assert_eq!(r("33").expect("www").gid, 33);
        assert_eq!(r("4242").expect("unknown uid").gid, 0);
        assert_eq!(r("www:wheel").expect("group").gid, 10);
        assert_eq!(r("1000:7").expect("numeric").gid, 7);
        assert_eq!(r("nobody"), Err(UserError::UnknownUser("nobody".into())));
        assert_eq!(
            r("bob:nogroup"),
            Err(UserError::UnknownGroup("nogroup".into()))
        );
    }
}
