//! Published ports: docker's `-p` syntax, and the host-side checks the portmap plugin
//! does not make (it only writes DNAT rules, so a second mapping of a bound or
//! already-published port would silently steal or lose traffic).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port, in the shape of the portmap plugin's `portMappings`
/// capability (`hostPort`, `containerPort`, `protocol`, `hostIP`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error(
        "invalid port mapping {spec:?}: {reason} (expected [ip:]hostPort:containerPort[/tcp|udp])"
    )]
    Syntax { spec: String, reason: String },
    #[error("invalid port mapping {spec:?}: {value:?} is not a port number (1-65535)")]
    BadPort { spec: String, value: String },
    #[error("invalid port mapping {spec:?}: {value:?} is not an IP address")]
    BadIp { spec: String, value: String },
    #[error("invalid port mapping {spec:?}: unknown protocol {value:?} (tcp or udp)")]
    BadProtocol { spec: String, value: String },
    #[error("port mapping {spec:?} gives no host port; name one, e.g. 8080:{container}")]
    NoHostPort { spec: String, container: String },
    #[error("invalid port mapping {spec:?}: host range {host} and container range {container} differ in length")]
    RangeMismatch {
        spec: String,
        host: String,
        container: String,
    },
    #[error("port mapping {spec:?} is a range; use PortMapping::parse_publish")]
    Range { spec: String },
    #[error("port {port}/{protocol} is already in use{}", host_ip.map(|ip| format!(" on {ip}")).unwrap_or_default())]
    InUse {
        host_ip: Option<IpAddr>,
        port: u16,
        protocol: Protocol,
    },
    #[error("no free host port for {protocol} on {}: {reason}", host_ip.map_or("any address".to_string(), |ip| ip.to_string()))]
    NoFreePort {
        host_ip: Option<IpAddr>,
        protocol: Protocol,
        /// The bind error (io::Error is not Eq).
        reason: String,
    },
    #[error("port {port}/{protocol} is already published by container {container}")]
    Published {
        port: u16,
        protocol: Protocol,
        container: String,
    },
}

impl PortMapping {
    /// Parses one `-p` value; ranges (`8000-8001:80-81`) give one mapping per port.
    /// A host port must be named (see [`PortMapping::parse_publish_any`]).
    pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, PortError> {
        Self::parse(spec, false)
    }

    /// Like [`PortMapping::parse_publish`], but a missing host port (`80`,
    /// `127.0.0.1::80`) gives mappings with `host_port` 0, for
    /// [`assign_free_host_ports`] to fill in.
    pub fn parse_publish_any(spec: &str) -> Result<Vec<PortMapping>, PortError> {
        Self::parse(spec, true)
    }

    fn parse(spec: &str, any_host_port: bool) -> Result<Vec<PortMapping>, PortError> {
        let syntax = |reason: &str| PortError::Syntax {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((rest, proto)) => (
                rest,
                match proto.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => {
                        return Err(PortError::BadProtocol {
                            spec: spec.into(),
                            value: proto.into(),
                        })
                    }
                },
            ),
            None => (spec, Protocol::Tcp),
        };
        // [ip:]host:container, the ip possibly in brackets (IPv6).
        let (ip, ports) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, ports) = after
                .split_once("]:")
                .ok_or_else(|| syntax("unclosed '[' around the IP"))?;
            (Some(ip), ports)
        } else {
            match rest.matches(':').count() {
                0 | 1 => (None, rest),
                2 => rest
                    .split_once(':')
                    .map(|(ip, p)| (Some(ip), p))
                    .ok_or_else(|| syntax("bad ':'"))?,
                _ => return Err(syntax("too many ':' (put an IPv6 address in brackets)")),
            }
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| PortError::BadIp {
                spec: spec.into(),
                value: ip.into(),
            })?),
        };
        let (host, container) = match ports.split_once(':') {
            Some((h, c)) => (h, c),
            None => ("", ports),
        };
        let container_range = parse_range(spec, container)?;
        if host.is_empty() {
            if !any_host_port {
                return Err(PortError::NoHostPort {
                    spec: spec.into(),
                    container: container.into(),
                });
            }
            return Ok((container_range.0..=container_range.1)
                .map(|container_port| PortMapping {
                    host_ip,
                    host_port: 0,
                    container_port,
                    protocol,
                })
                .collect());
        }
        let host_range = parse_range(spec, host)?;
        if host_range.1 - host_range.0 != container_range.1 - container_range.0 {
            return Err(PortError::RangeMismatch {
                spec: spec.into(),
                host: host.into(),
                container: container.into(),
            });
        }
        Ok((0..=container_range.1 - container_range.0)
            .map(|i| PortMapping {
                host_ip,
                host_port: host_range.0 + i,
                container_port: container_range.0 + i,
                protocol,
            })
            .collect())
    }

    /// Refuses a host port already bound on this host, by binding it for a moment.
    /// (Only catches listeners; publishing by another berth container is caught by
    /// [`check_not_published`], since DNAT rules bind nothing.)
    pub fn check_host_port_free(&self) -> Result<(), PortError> {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addrs: Vec<IpAddr> = match self.host_ip {
            Some(_) => vec![ip],
            // Unspecified: the mapping catches every address, so any listener conflicts.
            // Binding [::] (dual-stack) finds v4 and v6 listeners alike where IPv6 is on.
            None => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        };
        for addr in addrs {
            let sock = SocketAddr::new(addr, self.host_port);
            let bound = match self.protocol {
                Protocol::Tcp => TcpListener::bind(sock).map(drop),
                Protocol::Udp => UdpSocket::bind(sock).map(drop),
            };
            match bound {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(PortError::InUse {
                        host_ip: self.host_ip,
                        port: self.host_port,
                        protocol: self.protocol,
                    })
                }
                // No IPv6 on this host (EAFNOSUPPORT/EADDRNOTAVAIL): nothing can listen there.
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn overlaps(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

/// Gives every mapping with `host_port` 0 a free host port: the kernel picks one by
/// binding port 0 on the mapping's address. The sockets are held until all are
/// chosen, so two mappings never get the same port; each is free when chosen (a
/// listener or another container could still take it before the attach).
pub fn assign_free_host_ports(ports: &mut [PortMapping]) -> Result<(), PortError> {
    // Open sockets, kept until every port is chosen.
    let mut held: Vec<OwnedFd> = Vec::new();
    for p in ports.iter_mut().filter(|p| p.host_port == 0) {
        let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let sock = SocketAddr::new(ip, 0);
        let bound = match p.protocol {
            Protocol::Tcp => TcpListener::bind(sock).and_then(|l| Ok((l.local_addr()?, l.into()))),
            Protocol::Udp => UdpSocket::bind(sock).and_then(|u| Ok((u.local_addr()?, u.into()))),
        };
        let (addr, socket) = bound.map_err(|e| PortError::NoFreePort {
            host_ip: p.host_ip,
            protocol: p.protocol,
            reason: e.to_string(),
        })?;
        p.host_port = addr.port();
        held.push(socket);
    }
    drop(held);
    Ok(())
}

/// Refuses a mapping that overlaps one another container already published.
pub fn check_not_published<'a>(
    wanted: &[PortMapping],
    published: impl IntoIterator<Item = (&'a str, &'a PortMapping)>,
) -> Result<(), PortError> {
    for (container, p) in published {
        if let Some(w) = wanted.iter().find(|w| w.overlaps(p)) {
            return Err(PortError::Published {
                port: w.host_port,
                protocol: w.protocol,
                container: container.to_string(),
            });
        }
    }
    Ok(())
}

impl FromStr for PortMapping {
    type Err = PortError;

    /// One mapping; a range is an error here (see [`PortMapping::parse_publish`]).
    fn from_str(spec: &str) -> Result<Self, PortError> {
        let mut all = Self::parse_publish(spec)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            _ => Err(PortError::Range { spec: spec.into() }),
        }
    }
}

fn parse_range(spec: &str, s: &str) -> Result<(u16, u16), PortError> {
    let port = |v: &str| match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(PortError::BadPort {
            spec: spec.into(),
            value: v.into(),
        }),
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(PortError::BadPort {
                    spec: spec.into(),
                    value: s.into(),
                });
            }
            Ok((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(ip: Option<&str>, h: u16, c: u16, p: Protocol) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|i| i.parse().expect("ip")),
            host_port: h,
            container_port: c,
            protocol: p,
        }
    }

    #[test]
    fn parses_docker_syntax() {
        assert_eq!("8080:80".parse(), Ok(pm(None, 8080, 80, Protocol::Tcp)));
        assert_eq!("8080:80/udp".parse(), Ok(pm(None, 8080, 80, Protocol::Udp)));
        assert_eq!("8080:80/TCP".parse(), Ok(pm(None, 8080, 80, Protocol::Tcp)));
        assert_eq!(
            "127.0.0.1:8080:80".parse(),
            Ok(pm(Some("127.0.0.1"), 8080, 80, Protocol::Tcp))
        );
        assert_eq!(
            "[::1]:53:53/udp".parse(),
            Ok(pm(Some("::1"), 53, 53, Protocol::Udp))
        );
        assert_eq!(
            PortMapping::parse_publish("8000-8002:80-82").expect("range"),
            vec![
                pm(None, 8000, 80, Protocol::Tcp),
                pm(None, 8001, 81, Protocol::Tcp),
                pm(None, 8002, 82, Protocol::Tcp)
            ]
        );
    }

    #[test]
    fn displays_round_trip() {
        for s in ["8080:80/tcp", "127.0.0.1:1:2/udp", "[::1]:53:53/udp"] {
            let p: PortMapping = s.parse().expect("valid");
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn errors_name_the_value() {
        let err = "99999:80".parse::<PortMapping>().expect_err("too big");
        assert!(err.to_string().contains("\"99999\""), "{err}");
        let err = "abc:80".parse::<PortMapping>().expect_err("not a number");
        assert!(err.to_string().contains("\"abc\""), "{err}");
        let err = "8080:0".parse::<PortMapping>().expect_err("zero");
        assert!(err.to_string().contains("\"0\""), "{err}");
        let err = "1.2.3:8080:80".parse::<PortMapping>().expect_err("bad ip");
        assert!(err.to_string().contains("\"1.2.3\""), "{err}");
        let err = "8080:80/sctp".parse::<PortMapping>().expect_err("proto");
        assert!(err.to_string().contains("\"sctp\""), "{err}");
        assert!(matches!(
            "8000-8001:80".parse::<PortMapping>(),
            Err(PortError::RangeMismatch { .. })
        ));
        assert!(matches!(
            "8000-8001:80-81".parse::<PortMapping>(),
            Err(PortError::Range { .. })
        ));
        assert!(matches!(
            "90-80:90-80".parse::<PortMapping>(),
            Err(PortError::BadPort { .. })
        ));
        assert!(matches!(
            "::1:80:80".parse::<PortMapping>(),
            Err(PortError::Syntax { .. })
        ));
    }

    #[test]
    fn container_port_alone_is_refused_clearly() {
        for s in ["80", "127.0.0.1::80", "80/udp"] {
            let err = s.parse::<PortMapping>().expect_err("no host port");
            assert!(matches!(err, PortError::NoHostPort { .. }), "{s}: {err}");
            assert!(err.to_string().contains("name one"), "{err}");
        }
        // ... but a bad container port is still named first.
        assert!(matches!(
            "abc".parse::<PortMapping>(),
            Err(PortError::BadPort { .. })
        ));
    }

    #[test]
    fn missing_host_ports_are_assigned_free_ones() {
        assert_eq!(
            PortMapping::parse_publish_any("127.0.0.1::80-81/udp").expect("valid"),
            vec![
                pm(Some("127.0.0.1"), 0, 80, Protocol::Udp),
                pm(Some("127.0.0.1"), 0, 81, Protocol::Udp)
            ]
        );
        assert_eq!(
            PortMapping::parse_publish_any("8080:80").expect("valid"),
            vec![pm(None, 8080, 80, Protocol::Tcp)]
        );
        assert!(matches!(
            PortMapping::parse_publish_any("99999"),
            Err(PortError::BadPort { .. })
        ));
        let mut ports = vec![
            pm(Some("127.0.0.1"), 0, 80, Protocol::Tcp),
            pm(Some("127.0.0.1"), 0, 81, Protocol::Tcp),
            pm(Some("127.0.0.1"), 0, 53, Protocol::Udp),
            pm(None, 8080, 82, Protocol::Tcp),
        ];
        assign_free_host_ports(&mut ports).expect("free ports");
        assert!(ports.iter().all(|p| p.host_port != 0), "{ports:?}");
        assert_ne!(ports[0].host_port, ports[1].host_port);
        assert_eq!(ports[3].host_port, 8080, "a named port is kept");
        for p in &ports[..3] {
            p.check_host_port_free().expect("released after choosing");
        }
    }

    #[test]
    fn a_bound_port_is_in_use() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let p = pm(None, port, 80, Protocol::Tcp);
        assert_eq!(
            p.check_host_port_free().expect_err("in use").to_string(),
            format!("port {port}/tcp is already in use")
        );
        // The same number over UDP is free.
        let u = pm(Some("127.0.0.1"), port, 80, Protocol::Udp);
        u.check_host_port_free().expect("udp is free");
    }

    #[test]
    fn published_ports_conflict_across_ips_only_when_they_overlap() {
        let a = pm(Some("127.0.0.1"), 8080, 80, Protocol::Tcp);
        let b = pm(Some("127.0.0.2"), 8080, 80, Protocol::Tcp);
        let any = pm(None, 8080, 81, Protocol::Tcp);
        let udp = pm(None, 8080, 81, Protocol::Udp);
        check_not_published(&[b], [("c1", &a)]).expect("different ips");
        check_not_published(&[udp], [("c1", &a)]).expect("different protocol");
        let err = check_not_published(&[any], [("c1", &a)]).expect_err("overlap");
        assert_eq!(
            err.to_string(),
            "port 8080/tcp is already published by container c1"
        );
    }
}
