//! Exit codes: scripts can tell failures apart without parsing messages.
//! 1 other, 2 usage (clap), 3 not found, 4 unauthorized or denied, 5 registry unreachable
//! or failing, 6 conflict (in use), 7 bad content (digest mismatch, hostile layer, bad
//! manifest).

use berth_engine::volume::VolumeError;
use berth_image::images::ImageError;
use berth_image::pull::PullError;

/// The error and its causes, joined with ": " as anyhow's `{:#}` does, but without a
/// cause the message before it already ends with: many errors (thiserror's
/// `"...: {source}"`) print their source themselves and also return it from `source()`.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

pub const USAGE: i32 = 2;
pub const NOT_FOUND: i32 = 3;
pub const AUTH: i32 = 4;
pub const REGISTRY: i32 = 5;
pub const CONFLICT: i32 = 6;
pub const CONTENT: i32 = 7;

fn image(e: &ImageError) -> Option<i32> {
    Some(match e {
        ImageError::NotFound(_) | ImageError::Ambiguous(_) => NOT_FOUND,
        ImageError::InUse { .. } | ImageError::ManyNames { .. } => CONFLICT,
        ImageError::Content(_) => CONTENT,
        _ => return None,
    })
}

fn volume(e: &VolumeError) -> Option<i32> {
    Some(match e {
        VolumeError::NotFound(_) => NOT_FOUND,
        VolumeError::Exists(_) | VolumeError::InUse { .. } => CONFLICT,
        VolumeError::BadName(_) | VolumeError::TooSmall { .. } => USAGE,
        _ => return None,
    })
}

fn registry(e: &berth_distribution::Error) -> i32 {
    use berth_distribution::ErrorKind as K;
    match e.kind() {
        K::NotFound => NOT_FOUND,
        K::Unauthorized | K::Denied => AUTH,
        K::Integrity => CONTENT,
        K::Local => 1,
        _ => REGISTRY,
    }
}

/// A flag's value berth cannot use (exit 2, like clap's own usage errors).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<Usage>()
        || e.is::<berth_engine::seccomp::ProfileError>()
        || e.is::<berth_engine::ulimit::UlimitError>()
        || e.is::<berth_engine::init::InitError>()
}

/// `cp`'s own failures; a container error inside is mapped like any other.
fn cp(e: &berth_engine::cp::CpError) -> Option<i32> {
    use berth_engine::cp::CpError as E;
    Some(match e {
        E::Container(berth_engine::ContainerError::NotFound(_)) | E::NotFound { .. } => NOT_FOUND,
        E::OnMount { .. } => CONFLICT,
        E::Refused { .. } => CONTENT,
        _ => return None,
    })
}

pub fn code(e: &anyhow::Error) -> i32 {
    use berth_engine::ContainerError as C;
    for cause in e.chain() {
        if let Some(c) = cause
            .downcast_ref::<berth_engine::cp::CpError>()
            .and_then(cp)
        {
            return c;
        }
        if usage(cause) {
            return USAGE;
        }
        if let Some(c) = cause.downcast_ref::<C>() {
            match c {
                C::Image(i) => return image(i).unwrap_or(1),
                C::NotFound(_) => return NOT_FOUND,
                C::NameInUse(..) | C::Running(_) | C::NotRunning(_) => return CONFLICT,
                C::StartFailed { code, .. } => return *code,
                C::Volume(v) => return volume(v).unwrap_or(1),
                C::Network(n) if n.is_port_conflict() => return CONFLICT,
                C::Network(n) if n.is_not_found() => return NOT_FOUND,
                C::Network(n) if n.is_usage() => return USAGE,
                C::Exec(_) | C::BadName(_) => return USAGE,
                _ => {}
            }
        }
        if cause.is::<berth_engine::mounts::MountError>() {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<berth_network::NetworkError>() {
            use berth_network::NetworkError as N;
            match e {
                N::NotFound { .. } => return NOT_FOUND,
                N::Exists { .. }
                | N::InUse { .. }
                | N::BridgeTaken { .. }
                | N::SubnetOverlap { .. } => return CONFLICT,
                N::InvalidName { .. }
                | N::BadSubnet { .. }
                | N::InvalidBridge { .. }
                | N::RemoveDefault
                | N::NoFreeSubnet => return USAGE,
                _ => {}
            }
        }
        if let Some(e) = cause.downcast_ref::<VolumeError>() {
            if let Some(c) = volume(e) {
                return c;
            }
        }
        if let Some(e) = cause.downcast_ref::<ImageError>() {
            if let Some(c) = image(e) {
                return c;
            }
        }
        if let Some(e) = cause.downcast_ref::<berth_distribution::Error>() {
            return registry(e);
        }
        if let Some(e) = cause.downcast_ref::<PullError>() {
            return match e {
                PullError::Registry(r) => registry(r),
                PullError::Image(i) => image(i).unwrap_or(1),
                PullError::Manifest(_)
                | PullError::Config(_)
                | PullError::Content(_)
                | PullError::Unpack(_)
                | PullError::DiffId { .. }
                | PullError::TooBig { .. } => CONTENT,
                _ => 1,
            };
        }
    }
    1
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("writing x: {source}")]
    struct Prints {
        source: std::io::Error,
    }

    #[test]
    fn message_drops_causes_already_printed() {
        let io = || std::io::Error::from_raw_os_error(34);
        let e = anyhow::Error::from(Prints { source: io() }).context("starting c1");
        assert_eq!(
            super::message(&e),
            format!("starting c1: writing x: {}", io())
        );
        let e = anyhow::Error::from(io()).context("reading f");
        assert_eq!(super::message(&e), format!("reading f: {}", io()));
    }
}
