//! An entry's metadata as berth applies it: owner, permission bits and times from the ustar
//! header, overridden by PAX records (layer.md#changeset-over-existing-files says these are
//! part of the change set). Header values that cannot be applied are refused, not clamped.

use super::error::Refusal;
use rustix::fs::{Timespec, Timestamps};
use std::io::Read;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Permission bits including setuid, setgid and sticky.
    pub(crate) mode: u32,
    pub(crate) atime: Time,
    pub(crate) mtime: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Time {
    pub(crate) sec: i64,
    pub(crate) nsec: u32,
}

impl Meta {
    pub(crate) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, Refusal> {
        let h = entry.header();
        // The tar crate has already put PAX uid/gid records into the header.
        let uid = id(h.uid(), "uid")?;
        let gid = id(h.gid(), "gid")?;
        let mode = h.mode().map_err(|_| Refusal::BadHeader { field: "mode" })? & 0o7777;
        let sec = h
            .mtime()
            .map_err(|_| Refusal::BadHeader { field: "mtime" })?;
        let sec = i64::try_from(sec).map_err(|_| Refusal::BadHeader { field: "mtime" })?;
        let mut mtime = Time { sec, nsec: 0 };
        let mut atime = None;
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax {
                let ext = ext.map_err(|_| Refusal::BadHeader { field: "pax" })?;
                match ext.key_bytes() {
                    b"mtime" => {
                        mtime = parse_pax_time(ext.value_bytes())
                            .ok_or(Refusal::BadHeader { field: "mtime" })?
                    }
                    b"atime" => {
                        atime = Some(
                            parse_pax_time(ext.value_bytes())
                                .ok_or(Refusal::BadHeader { field: "atime" })?,
                        )
                    }
                    _ => {}
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            atime: atime.unwrap_or(mtime),
            mtime,
        })
    }

    pub(crate) fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: self.atime.timespec(),
            last_modification: self.mtime.timespec(),
        }
    }
}

impl Time {
    fn timespec(self) -> Timespec {
        Timespec {
            tv_sec: self.sec,
            tv_nsec: self.nsec.into(),
        }
    }
}

/// uid and gid must fit a Linux id; `u32::MAX` is chown's "leave unchanged".
fn id(v: std::io::Result<u64>, field: &'static str) -> Result<u32, Refusal> {
    match v.map(u32::try_from) {
        Ok(Ok(v)) if v != u32::MAX => Ok(v),
        _ => Err(Refusal::BadHeader { field }),
    }
}

/// A PAX time: decimal seconds, optionally negative, with an optional fraction
/// (POSIX pax "mtime=-?[0-9]+(\.[0-9]*)?"). Digits beyond nanoseconds are dropped.
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<Time> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let mut sec: i64 = 0;
    for &d in int {
        sec = sec.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |&d| u32::from(d - b'0'));
    }
    if neg {
        // -1.25 is 1.25 s before the epoch: sec -2, nsec 0.75e9.
        if nsec > 0 {
            sec = sec.checked_add(1)?;
            nsec = 1_000_000_000 - nsec;
        }
        sec = -sec;
    }
    Some(Time { sec, nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |sec, nsec| Some(Time { sec, nsec });
        assert_eq!(parse_pax_time(b"1700000000"), t(1_700_000_000, 0));
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            t(1_700_000_000, 500_000_000)
        );
        assert_eq!(parse_pax_time(b"1.123456789123"), t(1, 123_456_789));
        assert_eq!(parse_pax_time(b"1."), t(1, 0));
        assert_eq!(parse_pax_time(b"-1.25"), t(-2, 750_000_000));
        assert_eq!(parse_pax_time(b"-3"), t(-3, 0));
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b".5"), None);
        assert_eq!(parse_pax_time(b"1e9"), None);
        assert_eq!(parse_pax_time(b"99999999999999999999999"), None);
    }

    #[test]
    fn ids() {
        assert_eq!(id(Ok(0), "uid"), Ok(0));
        assert_eq!(id(Ok(100_000), "uid"), Ok(100_000));
        assert!(id(Ok(u64::from(u32::MAX)), "uid").is_err());
        assert!(id(Ok(1 << 40), "gid").is_err());
    }
}
