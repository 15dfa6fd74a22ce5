//! Signal names as `kill` accepts them: "KILL", "SIGKILL", "9", "sigkill", "RTMIN+2".

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal name or number; None when it names no signal.
pub fn parse(s: &str) -> Option<i32> {
    let max = libc::SIGRTMAX();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=max).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Some(n);
    }
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix(if sign > 0 { '+' } else { '-' })?
                .parse()
                .ok()?
        };
        let n = base + sign * off;
        (libc::SIGRTMIN()..=max).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rest, libc::SIGRTMIN(), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rest, max, -1);
    }
    None
}

/// Every signal name, for `features`-style listings.
pub fn names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(parse("KILL"), Some(9));
        assert_eq!(parse("SIGKILL"), Some(9));
        assert_eq!(parse("sigterm"), Some(15));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse("RTMAX-1"), Some(libc::SIGRTMAX() - 1));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("NOPE"), None);
        assert_eq!(parse("99"), None);
    }
}
