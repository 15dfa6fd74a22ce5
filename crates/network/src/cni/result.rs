//! The JSON a plugin prints: a result on success, an error object on failure
//! (CNI spec 1.0, "Result Types"). Results stay `serde_json::Value` where they are
//! passed on (prevResult must reach the next plugin unchanged, fields we do not
//! model included); [`CniResult`] is the typed view berth reads.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The typed view of an ADD result (spec 1.0; 0.4.0's extra `version` field on ips
/// is accepted and ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: Option<String>,
    /// The netns path for interfaces inside the container; absent for host-side ones
    /// (the bridge and the veth's host end).
    #[serde(default)]
    pub sandbox: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: IpNet,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default)]
    pub gw: Option<IpAddr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

impl CniResult {
    pub fn parse(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value.clone())
    }

    /// The interfaces inside the container (those with a `sandbox`).
    pub fn container_interfaces(&self) -> impl Iterator<Item = (usize, &Interface)> {
        self.interfaces
            .iter()
            .enumerate()
            .filter(|(_, i)| i.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
    }
}

/// The error object a failing plugin prints on stdout (spec 1.0, "Error").
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PluginErrorJson {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

/// What the spec's well-known error codes mean (spec 1.0, "Well-known Error Codes");
/// 100 and up are the plugin's own.
pub fn error_code_meaning(code: u32) -> &'static str {
    match code {
        1 => "incompatible CNI version",
        2 => "unsupported field in network configuration",
        3 => "container unknown or does not exist",
        4 => "invalid necessary environment variables",
        5 => "I/O failure",
        6 => "failed to decode content",
        7 => "invalid network config",
        11 => "try again later",
        100.. => "plugin-specific error",
        _ => "reserved error code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_bridge_result() {
        let v = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "berth0", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/run/berth/netns/c1"}
            ],
            "ips": [{"address": "10.89.0.2/16", "gateway": "10.89.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.89.0.1"], "search": ["example.org"]},
            "extra": "kept in the Value, ignored here"
        });
        let r = CniResult::parse(&v).expect("valid result");
        assert_eq!(r.ips[0].address.to_string(), "10.89.0.2/16");
        assert_eq!(r.ips[0].gateway, Some("10.89.0.1".parse().expect("ip")));
        assert_eq!(r.ips[0].interface, Some(2));
        let inside: Vec<_> = r
            .container_interfaces()
            .map(|(i, f)| (i, f.name.as_str()))
            .collect();
        assert_eq!(inside, vec![(2, "eth0")]);
        assert_eq!(r.routes[0].gw, None);
        assert_eq!(r.dns.search, vec!["example.org"]);
    }

    #[test]
    fn parses_a_040_result_with_version_fields() {
        let v = json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.1.0.5/24"}]
        });
        let r = CniResult::parse(&v).expect("valid result");
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/24");
        assert!(r.interfaces.is_empty());
    }

    #[test]
    fn rejects_a_bad_address() {
        let v = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.500/24"}]});
        assert!(CniResult::parse(&v).is_err());
    }

    #[test]
    fn parses_error_objects() {
        let e: PluginErrorJson = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"bad subnet"}"#,
        )
        .expect("valid error");
        assert_eq!(e.code, 7);
        assert_eq!(e.details, "bad subnet");
        assert_eq!(error_code_meaning(e.code), "invalid network config");
        assert_eq!(error_code_meaning(999), "plugin-specific error");
    }
}
