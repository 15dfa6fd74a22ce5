//! `--ulimit NAME=SOFT[:HARD]` in docker's names, checked against this host before any
//! container is made. berth sets no rlimit by default: a container inherits berth's own,
//! which can never be above the host's hard limits.

use rustix::process::Resource;

/// docker's names, the runtime spec's type, and the resource.
const NAMES: &[(&str, &str, Resource)] = &[
    ("as", "RLIMIT_AS", Resource::As),
    ("core", "RLIMIT_CORE", Resource::Core),
    ("cpu", "RLIMIT_CPU", Resource::Cpu),
    ("data", "RLIMIT_DATA", Resource::Data),
    ("fsize", "RLIMIT_FSIZE", Resource::Fsize),
    ("locks", "RLIMIT_LOCKS", Resource::Locks),
    ("memlock", "RLIMIT_MEMLOCK", Resource::Memlock),
    ("msgqueue", "RLIMIT_MSGQUEUE", Resource::Msgqueue),
    ("nice", "RLIMIT_NICE", Resource::Nice),
    ("nofile", "RLIMIT_NOFILE", Resource::Nofile),
    ("nproc", "RLIMIT_NPROC", Resource::Nproc),
    ("rss", "RLIMIT_RSS", Resource::Rss),
    ("rtprio", "RLIMIT_RTPRIO", Resource::Rtprio),
    ("rttime", "RLIMIT_RTTIME", Resource::Rttime),
    ("sigpending", "RLIMIT_SIGPENDING", Resource::Sigpending),
    ("stack", "RLIMIT_STACK", Resource::Stack),
];

/// RLIM_INFINITY, as the runtime spec writes it.
pub const UNLIMITED: u64 = u64::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// docker's name: nofile, nproc, ...
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UlimitError {
    #[error("--ulimit {arg:?}: {problem}")]
    Invalid { arg: String, problem: String },
    #[error("--ulimit {arg:?}: the hard limit {wanted} is above this host's hard limit for {name} ({host}), and raising a hard limit needs CAP_SYS_RESOURCE, which berth does not have here")]
    AboveHost {
        arg: String,
        name: String,
        wanted: String,
        host: String,
    },
}

fn show(v: u64) -> String {
    if v == UNLIMITED {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

impl Ulimit {
    /// `nofile=1024`, `nofile=1024:4096`, `core=-1` or `core=unlimited`.
    pub fn parse(arg: &str) -> Result<Ulimit, UlimitError> {
        let bad = |problem: String| UlimitError::Invalid {
            arg: arg.into(),
            problem,
        };
        let (name, values) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=SOFT[:HARD], e.g. nofile=1024:4096".into()))?;
        if !NAMES.iter().any(|(n, ..)| *n == name) {
            let known: Vec<&str> = NAMES.iter().map(|(n, ..)| *n).collect();
            return Err(bad(format!(
                "unknown limit {name:?} (one of {})",
                known.join(", ")
            )));
        }
        let number = |v: &str| match v {
            "-1" | "unlimited" => Ok(UNLIMITED),
            _ => v.parse::<u64>().map_err(|_| {
                bad(format!(
                    "{v:?} is not a number (or -1/unlimited for no limit)"
                ))
            }),
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (number(s)?, number(h)?),
            None => {
                let v = number(values)?;
                (v, v)
            }
        };
        if soft > hard {
            return Err(bad(format!(
                "the soft limit {} is above the hard limit {}",
                show(soft),
                show(hard)
            )));
        }
        Ok(Ulimit {
            name: name.into(),
            soft,
            hard,
        })
    }

    fn entry(&self) -> &'static (&'static str, &'static str, Resource) {
        NAMES
            .iter()
            .find(|(n, ..)| *n == self.name)
            .expect("Ulimit::parse accepts only names from the table")
    }

    /// The runtime spec's `process.rlimits` type: RLIMIT_NOFILE, ...
    pub fn spec_type(&self) -> &'static str {
        self.entry().1
    }

    /// Refuses a hard limit above this host's when berth cannot raise it: the runtime
    /// would fail only after the container was made.
    pub fn check_host(&self, arg: &str) -> Result<(), UlimitError> {
        let host = rustix::process::getrlimit(self.entry().2)
            .maximum
            .unwrap_or(UNLIMITED);
        let can_raise = berth_runtime::capabilities::have(
            berth_runtime::capabilities::number("CAP_SYS_RESOURCE")
                .expect("CAP_SYS_RESOURCE is in the capability table"),
        );
        if self.hard > host && !can_raise {
            return Err(UlimitError::AboveHost {
                arg: arg.into(),
                name: self.name.clone(),
                wanted: show(self.hard),
                host: show(host),
            });
        }
        Ok(())
    }
}

/// Parses and checks every `--ulimit`; a name given twice is refused.
pub fn parse_all(args: &[String]) -> Result<Vec<Ulimit>, UlimitError> {
    let mut out: Vec<Ulimit> = Vec::new();
    for a in args {
        let u = Ulimit::parse(a)?;
        if out.iter().any(|o| o.name == u.name) {
            return Err(UlimitError::Invalid {
                arg: a.clone(),
                problem: format!("{} is given more than once", u.name),
            });
        }
        u.check_host(a)?;
        out.push(u);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_syntax() {
        let u = Ulimit::parse("nofile=1024:2048").expect("parse");
        assert_eq!(
            (u.soft, u.hard, u.spec_type()),
            (1024, 2048, "RLIMIT_NOFILE")
        );
        let u = Ulimit::parse("nproc=100").expect("parse");
        assert_eq!((u.soft, u.hard), (100, 100));
        let u = Ulimit::parse("core=-1").expect("parse");
        assert_eq!((u.soft, u.hard), (UNLIMITED, UNLIMITED));
        let u = Ulimit::parse("core=0:unlimited").expect("parse");
        assert_eq!((u.soft, u.hard), (0, UNLIMITED));
        for (bad, needle) in [
            ("nofile", "NAME=SOFT[:HARD]"),
            ("files=10", "unknown limit \"files\""),
            ("nofile=ten", "not a number"),
            ("nofile=10:x", "not a number"),
            ("nofile=20:10", "soft limit 20 is above the hard limit 10"),
            ("nofile=-1:10", "soft limit unlimited"),
        ] {
            let e = Ulimit::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let twice = parse_all(&["nofile=10".into(), "nofile=20".into()])
            .expect_err("twice")
            .to_string();
        assert!(twice.contains("more than once"), "{twice}");
    }

    #[test]
    fn above_the_hosts_hard_limit_is_refused_without_cap_sys_resource() {
        let host = rustix::process::getrlimit(Resource::Nofile)
            .maximum
            .unwrap_or(UNLIMITED);
        // At the host's hard limit is always fine.
        parse_all(&[format!("nofile={host}")]).expect("at the host's limit");
        if host == UNLIMITED {
            return;
        }
        let arg = format!("nofile={}", host + 1);
        let res = parse_all(std::slice::from_ref(&arg));
        let cap = berth_runtime::capabilities::number("CAP_SYS_RESOURCE").expect("cap");
        if berth_runtime::capabilities::have(cap) {
            res.expect("CAP_SYS_RESOURCE can raise it");
        } else {
            let e = res.expect_err("above the host").to_string();
            assert!(
                e.contains(&format!("this host's hard limit for nofile ({host})"))
                    && e.contains("CAP_SYS_RESOURCE"),
                "{e}"
            );
        }
    }
}
