//! The user's mount flags, as docker spells them, parsed into [`MountRequest`]s before
//! anything is made: `-v SRC:DST[:OPTS]` (a host path or a volume name), `-v DST` (an
//! anonymous volume), `--mount type=bind|volume|tmpfs,...` and `--tmpfs DST[:OPTS]`.
//! A bad flag is refused here, so a refused `run` leaves nothing behind.
//! [`crate::Engine`] turns the requests into runtime-spec mounts (volume.rs), creating
//! volumes as needed.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One mount the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// A host path bound into the container.
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
        /// shared, slave, private, or their r-prefixed forms; docker's default is rprivate.
        propagation: Option<String>,
        /// rbind (docker's default) or a plain bind of just the top mount.
        recursive: bool,
    },
    /// A volume: named (created on first use) or anonymous (`name: None`).
    Volume {
        name: Option<String>,
        target: String,
        readonly: bool,
        /// Do not pre-fill a new volume from the image.
        nocopy: bool,
        /// For a volume this creates: labels and a size limit in bytes.
        labels: BTreeMap<String, String>,
        size: Option<u64>,
    },
    Tmpfs {
        target: String,
        /// Mount options after nosuid,nodev: size=, mode=, and any the user gave.
        options: Vec<String>,
    },
}

impl MountRequest {
    pub fn target(&self) -> &str {
        match self {
            MountRequest::Bind { target, .. }
            | MountRequest::Volume { target, .. }
            | MountRequest::Tmpfs { target, .. } => target,
        }
    }
}

/// A mount flag that cannot be honoured: always the user's input, so a usage error.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{flag} {value:?}: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{flag} {value:?}: host path {path}: {source}")]
    BindSource {
        flag: &'static str,
        value: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("two mounts at {0}: each container path takes one mount")]
    Duplicate(String),
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> MountError {
    MountError::Invalid {
        flag,
        value: value.into(),
        reason: reason.into(),
    }
}

/// docker's size syntax: 100m, 1g, 512k, 1024b, 1024 (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let mult: u64 = match &t[split..] {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let n: f64 = t[..split].parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some((n * mult as f64) as u64)
}

/// An absolute container path, cleaned (`//`, `.` and a trailing `/` dropped). `..` is
/// refused rather than resolved: the runtime resolves the path inside the rootfs, where
/// `..` would mean something else than it appears to.
pub(crate) fn target(flag: &'static str, value: &str, t: &str) -> Result<String, MountError> {
    if !t.starts_with('/') {
        return Err(invalid(flag, value, "the container path must be absolute"));
    }
    let mut out = String::new();
    for c in Path::new(t).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => {
                out.push('/');
                out.push_str(&n.to_string_lossy());
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(
                    flag,
                    value,
                    "the container path may not contain ..",
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(invalid(flag, value, "cannot mount over the container's /"));
    }
    Ok(out)
}

fn bind_source(flag: &'static str, value: &str, s: &str) -> Result<PathBuf, MountError> {
    if !s.starts_with('/') {
        return Err(invalid(flag, value, "the host path must be absolute"));
    }
    std::fs::metadata(s).map_err(|source| MountError::BindSource {
        flag,
        value: value.into(),
        path: s.into(),
        source,
    })?;
    Ok(s.into())
}

const PROPAGATION: &[&str] = &[
    "shared", "slave", "private", "rshared", "rslave", "rprivate",
];

/// `-v SRC:DST[:OPTS]` or `-v DST`.
fn volume_flag(v: &str) -> Result<MountRequest, MountError> {
    const F: &str = "-v";
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(invalid(F, v, "expected [SOURCE:]CONTAINER-PATH[:OPTIONS]")),
    };
    let dst = target(F, v, dst)?;
    let (mut readonly, mut nocopy, mut propagation) = (false, false, None);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => nocopy = true,
            // SELinux relabelling: berth's hosts have no SELinux, so there is nothing to do.
            "z" | "Z" => {}
            p if PROPAGATION.contains(&p) => propagation = Some(p.to_string()),
            _ => {
                return Err(invalid(
                    F,
                    v,
                    format!(
                        "unknown option {o:?} (ro, rw, nocopy, z, Z, {})",
                        PROPAGATION.join(", ")
                    ),
                ))
            }
        }
    }
    if src.starts_with('/') {
        if nocopy {
            return Err(invalid(F, v, "nocopy is for volumes, not host paths"));
        }
        return Ok(MountRequest::Bind {
            source: bind_source(F, v, src)?,
            target: dst,
            readonly,
            propagation,
            recursive: true,
        });
    }
    if propagation.is_some() {
        return Err(invalid(F, v, "propagation is for host paths, not volumes"));
    }
    if !src.is_empty() && !crate::volume::valid_name(src) {
        return Err(invalid(
            F,
            v,
            "not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*); a host path must be absolute",
        ));
    }
    Ok(MountRequest::Volume {
        name: (!src.is_empty()).then(|| src.to_string()),
        target: dst,
        readonly,
        nocopy,
        labels: BTreeMap::new(),
        size: None,
    })
}

/// Splits docker's CSV form: fields separated by commas, a field may be double-quoted
/// (`"volume-opt=o=a,b"`).
fn csv_fields(s: &str) -> Result<Vec<String>, ()> {
    let (mut out, mut cur, mut quoted) = (vec![], String::new(), false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(());
    }
    out.push(cur);
    Ok(out)
}

fn boolean(
    flag: &'static str,
    value: &str,
    key: &str,
    v: Option<&str>,
) -> Result<bool, MountError> {
    match v {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(x) => Err(invalid(
            flag,
            value,
            format!("{key}={x:?}: expected true or false"),
        )),
    }
}

/// `--mount type=...,source=...,target=...,...`
fn mount_flag(m: &str) -> Result<MountRequest, MountError> {
    mount_fields(
        m,
        &csv_fields(m).map_err(|()| invalid("--mount", m, "unbalanced double quote"))?,
    )
}

fn mount_fields<'a>(m: &str, fields: &'a [String]) -> Result<MountRequest, MountError> {
    const F: &str = "--mount";
    let mut kind = "volume".to_string();
    let (mut source, mut dst) = (None::<String>, None::<String>);
    let (mut readonly, mut nocopy, mut recursive) = (false, false, true);
    let (mut propagation, mut tmpfs_size, mut tmpfs_mode) = (None, None, None);
    let (mut labels, mut size) = (BTreeMap::new(), None);
    // Which type's options were used, so they can be checked against the type.
    let mut typed: Vec<(&'static str, String)> = vec![];
    for f in fields.iter().filter(|f| !f.is_empty()) {
        let (k, v) = match f.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (f.trim().to_ascii_lowercase(), None),
        };
        let need =
            |v: Option<&'a str>| v.ok_or_else(|| invalid(F, m, format!("{k} needs a value")));
        match k.as_str() {
            "type" => kind = need(v)?.to_string(),
            "source" | "src" => source = Some(need(v)?.to_string()),
            "target" | "destination" | "dst" => dst = Some(need(v)?.to_string()),
            "readonly" | "ro" => readonly = boolean(F, m, &k, v)?,
            // docker accepts it for macOS; it means nothing on Linux.
            "consistency" => {}
            "bind-propagation" => {
                let p = need(v)?;
                if !PROPAGATION.contains(&p) {
                    return Err(invalid(
                        F,
                        m,
                        format!("bind-propagation={p:?}: one of {}", PROPAGATION.join(", ")),
                    ));
                }
                propagation = Some(p.to_string());
                typed.push(("bind", k.clone()));
            }
            "bind-nonrecursive" => {
                recursive = !boolean(F, m, &k, v)?;
                typed.push(("bind", k.clone()));
            }
            "bind-recursive" => {
                recursive = match need(v)? {
                    "enabled" => true,
                    "disabled" => false,
                    x => {
                        return Err(invalid(
                            F,
                            m,
                            format!("bind-recursive={x:?}: enabled or disabled"),
                        ))
                    }
                };
                typed.push(("bind", k.clone()));
            }
            "volume-nocopy" => {
                nocopy = boolean(F, m, &k, v)?;
                typed.push(("volume", k.clone()));
            }
            "volume-label" => {
                let (lk, lv) = need(v)?.split_once('=').unwrap_or((need(v)?, ""));
                labels.insert(lk.to_string(), lv.to_string());
                typed.push(("volume", k.clone()));
            }
            "volume-driver" => {
                if need(v)? != "local" {
                    return Err(invalid(F, m, "volume-driver: only local"));
                }
                typed.push(("volume", k.clone()));
            }
            "volume-opt" => {
                match need(v)?.split_once('=') {
                    Some(("size", s)) => {
                        let min = crate::volume::MIN_SIZE;
                        size = Some(parse_size(s).filter(|n| *n >= min).ok_or_else(|| {
                            invalid(
                                F,
                                m,
                                format!("volume-opt size={s:?}: a size of at least {min} bytes"),
                            )
                        })?)
                    }
                    _ => return Err(invalid(F, m, "volume-opt: only size=SIZE")),
                }
                typed.push(("volume", k.clone()));
            }
            "tmpfs-size" => {
                let s = need(v)?;
                tmpfs_size = Some(
                    parse_size(s)
                        .ok_or_else(|| invalid(F, m, format!("tmpfs-size={s:?}: not a size")))?,
                );
                typed.push(("tmpfs", k.clone()));
            }
            "tmpfs-mode" => {
                let s = need(v)?;
                let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        invalid(F, m, format!("tmpfs-mode={s:?}: an octal mode like 1777"))
                    })?;
                tmpfs_mode = Some(mode);
                typed.push(("tmpfs", k.clone()));
            }
            _ => return Err(invalid(F, m, format!("unknown key {k:?}"))),
        }
    }
    if let Some((_, k)) = typed.iter().find(|(t, _)| *t != kind) {
        return Err(invalid(F, m, format!("{k} does not apply to type={kind}")));
    }
    let dst = target(
        F,
        m,
        dst.as_deref()
            .ok_or_else(|| invalid(F, m, "target= is required"))?,
    )?;
    match kind.as_str() {
        "bind" => Ok(MountRequest::Bind {
            source: bind_source(
                F,
                m,
                source
                    .as_deref()
                    .ok_or_else(|| invalid(F, m, "source= is required for type=bind"))?,
            )?,
            target: dst,
            readonly,
            propagation,
            recursive,
        }),
        "volume" => {
            if let Some(s) = &source {
                if !crate::volume::valid_name(s) {
                    return Err(invalid(
                        F,
                        m,
                        "source is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
                    ));
                }
            }
            Ok(MountRequest::Volume {
                name: source,
                target: dst,
                readonly,
                nocopy,
                labels,
                size,
            })
        }
        "tmpfs" => {
            if source.is_some() {
                return Err(invalid(F, m, "type=tmpfs takes no source"));
            }
            let mut options = vec![];
            if readonly {
                options.push("ro".to_string());
            }
            if let Some(s) = tmpfs_size {
                options.push(format!("size={s}"));
            }
            if let Some(md) = tmpfs_mode {
                options.push(format!("mode={md:o}"));
            }
            Ok(MountRequest::Tmpfs {
                target: dst,
                options,
            })
        }
        other => Err(invalid(
            F,
            m,
            format!("type={other:?}: bind, volume or tmpfs"),
        )),
    }
}

/// `--tmpfs DST[:OPTS]`: the options go to tmpfs as given (size=, mode=, ...).
fn tmpfs_flag(t: &str) -> Result<MountRequest, MountError> {
    let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
    Ok(MountRequest::Tmpfs {
        target: target("--tmpfs", t, dst)?,
        options: opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// Parses every mount flag of a `run`; refuses two mounts at one path.
pub fn parse(
    volumes: &[String],
    mounts: &[String],
    tmpfs: &[String],
) -> Result<Vec<MountRequest>, MountError> {
    let mut out = vec![];
    for v in volumes {
        out.push(volume_flag(v)?);
    }
    for m in mounts {
        out.push(mount_flag(m)?);
    }
    for t in tmpfs {
        out.push(tmpfs_flag(t)?);
    }
    let mut seen = std::collections::HashSet::new();
    for r in &out {
        if !seen.insert(r.target().to_string()) {
            return Err(MountError::Duplicate(r.target().to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &[&str], m: &[&str], t: &[&str]) -> Result<MountRequest, MountError> {
        let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        parse(&s(v), &s(m), &s(t)).map(|mut r| r.remove(0))
    }

    #[test]
    fn volume_flag_forms() {
        assert_eq!(
            one(&["data:/srv//x/:ro,nocopy"], &[], &[]).expect("named"),
            MountRequest::Volume {
                name: Some("data".into()),
                target: "/srv/x".into(),
                readonly: true,
                nocopy: true,
                labels: BTreeMap::new(),
                size: None
            }
        );
        assert!(matches!(
            one(&["/cache"], &[], &[]),
            Ok(MountRequest::Volume { name: None, .. })
        ));
        assert!(matches!(
            one(&["/tmp:/h:rslave"], &[], &[]),
            Ok(MountRequest::Bind { recursive: true, propagation: Some(p), .. }) if p == "rslave"
        ));
        for bad in [
            "./rel:/x",
            "data:rel",
            "data:/x:bogus",
            "/tmp:/x:nocopy",
            "d:/x:rshared",
            "a:/b:c:d",
            "data:/",
            "data:/a/../b",
        ] {
            assert!(one(&[bad], &[], &[]).is_err(), "{bad} accepted");
        }
        assert!(matches!(
            one(&["/no/such/dir/here:/x"], &[], &[]),
            Err(MountError::BindSource { .. })
        ));
    }

    #[test]
    fn mount_flag_forms() {
        assert_eq!(
            one(&[], &["type=volume,src=v1,dst=/d,volume-nocopy,volume-label=a=b,\"volume-opt=size=4m\",readonly=true"], &[])
                .expect("volume"),
            MountRequest::Volume {
                name: Some("v1".into()),
                target: "/d".into(),
                readonly: true,
                nocopy: true,
                labels: [("a".to_string(), "b".to_string())].into(),
                size: Some(4 << 20)
            }
        );
        assert_eq!(
            one(
                &[],
                &["type=tmpfs,target=/t,tmpfs-size=64k,tmpfs-mode=1770"],
                &[]
            )
            .expect("tmpfs"),
            MountRequest::Tmpfs {
                target: "/t".into(),
                options: vec!["size=65536".into(), "mode=1770".into()]
            }
        );
        assert!(matches!(
            one(
                &[],
                &["type=bind,source=/tmp,target=/h,bind-propagation=rshared,bind-nonrecursive"],
                &[]
            ),
            Ok(MountRequest::Bind {
                recursive: false,
                ..
            })
        ));
        assert!(matches!(
            one(&[], &["target=/anon"], &[]),
            Ok(MountRequest::Volume { name: None, .. })
        ));
        for bad in [
            "type=bind,target=/x",
            "type=volume,src=v,target=/x,bogus=1",
            "type=tmpfs,target=/x,volume-nocopy",
            "type=bind,src=/tmp,target=rel",
            "type=tmpfs,target=/x,tmpfs-mode=99",
            "type=npipe,target=/x",
            "type=volume,src=v",
            "\"type=volume,target=/x",
        ] {
            assert!(one(&[], &[bad], &[]).is_err(), "{bad} accepted");
        }
        let s = |x: &str| vec![x.to_string()];
        assert!(matches!(
            parse(&s("a:/x"), &s("target=/x"), &[]),
            Err(MountError::Duplicate(_))
        ));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100m"), Some(100 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("42"), Some(42));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size("-1m"), None);
    }
}
