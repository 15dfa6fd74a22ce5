//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`) and their
//! backoff, as docker defines them: a policy applies once the container has started;
//! `berth stop` suspends it until the next `start`; the delay doubles from 100 ms per
//! consecutive restart (capped at a minute) and starts over once a run lasted 10 s.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "policy", content = "max")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart on a non-zero exit, at most N times (0: no limit).
    OnFailure(u32),
    Always,
    UnlessStopped,
}

#[derive(Debug, thiserror::Error)]
#[error("--restart {0:?}: expected no, on-failure[:N], always or unless-stopped")]
pub struct BadPolicy(pub String);

impl std::str::FromStr for RestartPolicy {
    type Err = BadPolicy;
    fn from_str(s: &str) -> Result<Self, BadPolicy> {
        let bad = || BadPolicy(s.to_string());
        match s.split_once(':') {
            None => match s {
                "no" | "" => Ok(RestartPolicy::No),
                "on-failure" => Ok(RestartPolicy::OnFailure(0)),
                "always" => Ok(RestartPolicy::Always),
                "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
                _ => Err(bad()),
            },
            Some(("on-failure", n)) => n.parse().map(RestartPolicy::OnFailure).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure(0) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(n) => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

/// Whether a container that exited with `code` is started again, given how many
/// times it was already restarted in a row and whether a user stopped it.
pub fn should_restart(p: RestartPolicy, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
    if stopped_by_user {
        return false;
    }
    match p {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || restarts < max),
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
    }
}

/// The wait before restart number `restarts + 1`.
pub fn backoff(restarts: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << restarts.min(20));
    Duration::from_millis(ms.min(60_000))
}

/// A run this long resets the backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(10);

/// After a reboot (or `system recover`), which containers come back by themselves.
pub fn starts_on_boot(p: RestartPolicy, stopped_by_user: bool) -> bool {
    match p {
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !stopped_by_user,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_decide() {
        let p: RestartPolicy = "on-failure:3".parse().expect("policy");
        assert_eq!(p, RestartPolicy::OnFailure(3));
        assert_eq!(p.to_string(), "on-failure:3");
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
        assert!(should_restart(p, 1, 2, false));
        assert!(!should_restart(p, 1, 3, false));
        assert!(!should_restart(p, 0, 0, false));
        assert!(should_restart(RestartPolicy::Always, 0, 100, false));
        assert!(!should_restart(RestartPolicy::Always, 1, 0, true));
        assert!(!should_restart(RestartPolicy::No, 1, 0, false));
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), Duration::from_secs(60));
        assert!(starts_on_boot(RestartPolicy::Always, true));
        assert!(!starts_on_boot(RestartPolicy::UnlessStopped, true));
    }
}
