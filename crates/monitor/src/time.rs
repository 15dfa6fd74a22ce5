//! RFC 3339 UTC timestamps with nanoseconds, as the CRI log format writes them.
//!
//! By hand rather than with chrono/time: the monitor's footprint is measured in pages,
//! and these are two small, exact calendar conversions (days ↔ civil date in the
//! proleptic Gregorian calendar).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch.
pub fn now_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-23T10:04:05.123456789Z`
pub fn format_rfc3339_nanos(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses RFC 3339 (`Z` or `±hh:mm`, optional fraction) to nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac: i128 = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut f = r[..digits.min(9)].to_string();
        while f.len() < 9 {
            f.push('0');
        }
        frac = f.parse().ok()?;
        rest = &r[digits..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let v = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs as i128 * 1_000_000_000 + frac)
}

/// docker's `--since`/`--until`: RFC 3339, a Unix timestamp (`1700000000[.5]`), or a
/// duration before now (`10m`, `1h30m`, `45s`).
pub fn parse_point(s: &str, now: i128) -> Option<i128> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Some(d) = parse_duration(s) {
        return Some(now - d.as_nanos() as i128);
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i128 = whole.parse().ok()?;
    let mut f = frac.to_string();
    if f.len() > 9 || !f.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while f.len() < 9 {
        f.push('0');
    }
    Some(secs * 1_000_000_000 + f.parse::<i128>().ok()?)
}

/// `1h30m`, `10m`, `45s`, `500ms`, `2h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let v: u64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = match &rest[..u] {
            "ms" => Duration::from_millis(v),
            "s" => Duration::from_secs(v),
            "m" => Duration::from_secs(v * 60),
            "h" => Duration::from_secs(v * 3600),
            _ => return None,
        };
        total += unit;
        rest = &rest[u..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_points() {
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339_nanos(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            format_rfc3339_nanos(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        for t in [0i128, 1, 951_782_399_999_999_999, 4_102_444_800_000_000_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339_nanos(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn points_and_durations() {
        let now = 1_000_000_000_000_000_000;
        assert_eq!(parse_point("10m", now), Some(now - 600_000_000_000));
        assert_eq!(parse_point("1h30m", now), Some(now - 5_400_000_000_000));
        assert_eq!(
            parse_point("1700000000.5", now),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_point("10x", now), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration(""), None);
    }
}
