//! A network configuration list and the chains run over it (CNI spec 1.0,
//! "Section 4: Plugin Delegation" / "Network configuration lists"):
//!
//! - ADD runs the plugins in order; each gets the previous plugin's result as
//!   `prevResult`; the last result is the attachment's result. If one fails, the
//!   plugins already run (and the failing one, which may have half-succeeded) get DEL
//!   in reverse order.
//! - DEL runs the plugins in reverse, each with the cached ADD result as `prevResult`
//!   (spec 0.4.0 and later), and does not stop at a failure: every error is returned.
//! - CHECK runs them in order with the cached result (0.4.0 and later).
//!
//! Each plugin's stdin is its own object plus the list's `cniVersion` and `name`, and a
//! `runtimeConfig` holding only the capabilities the plugin declares.

use super::plugin::{self, Command, Invocation};
use super::CniError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfList {
    pub cni_version: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_check: bool,
    pub plugins: Vec<Value>,
    /// Top-level keys the spec does not define (`cniVersions`, `disableGC`, berth's own
    /// `berth` object), kept so that the cached copy of a list is the whole list.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Runtime-supplied values keyed by capability (`portMappings`, `ipRanges`, …);
/// a plugin gets the ones whose capability it declares `true`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConfig(pub Map<String, Value>);

/// A failed ADD chain: the error, and whatever went wrong undoing what had run.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", undo_summary(undo))]
pub struct AddError {
    #[source]
    pub error: CniError,
    pub undo: Vec<CniError>,
}

fn undo_summary(undo: &[CniError]) -> String {
    if undo.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = undo.iter().map(ToString::to_string).collect();
        format!(
            "; undoing the plugins already run also failed: {}",
            list.join("; ")
        )
    }
}

impl ConfList {
    /// Parses and validates a conflist; `origin` (a path) names it in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, CniError> {
        let list: ConfList = serde_json::from_slice(bytes).map_err(|e| CniError::BadConfig {
            origin: origin.to_string(),
            reason: e.to_string(),
            rule: "a network configuration list is a JSON object with cniVersion, name and plugins",
        })?;
        list.validate(origin)?;
        Ok(list)
    }

    pub fn validate(&self, origin: &str) -> Result<(), CniError> {
        let bad = |reason: String, rule: &'static str| CniError::BadConfig {
            origin: origin.to_string(),
            reason,
            rule,
        };
        if !valid_name(&self.name) {
            return Err(bad(
                format!("network name {:?} is invalid", self.name),
                "name must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$",
            ));
        }
        if parse_version(&self.cni_version).is_none() {
            return Err(bad(
                format!(
                    "cniVersion {:?} is not a semantic version",
                    self.cni_version
                ),
                "cniVersion is a semver string",
            ));
        }
        if self.plugins.is_empty() {
            return Err(bad(
                "no plugins".into(),
                "plugins must hold at least one plugin",
            ));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            if !p.is_object() || p.get("type").and_then(Value::as_str).is_none() {
                return Err(bad(
                    format!("plugin {i} has no string `type`"),
                    "every plugin configuration has a `type`",
                ));
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a ConfList always serialises")
    }

    /// DEL and CHECK pass the cached result only from spec 0.4.0 on.
    fn passes_cached_result(&self) -> bool {
        parse_version(&self.cni_version).is_some_and(|v| v >= (0, 4, 0))
    }

    /// The stdin of one plugin: its object plus `cniVersion`, `name`, `prevResult` and
    /// the `runtimeConfig` entries for its declared capabilities.
    pub fn plugin_stdin(
        &self,
        plugin: &Value,
        prev: Option<&Value>,
        rt: &RuntimeConfig,
    ) -> Vec<u8> {
        let mut conf = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        conf.insert("name".into(), Value::String(self.name.clone()));
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        let caps = plugin.get("capabilities").and_then(Value::as_object);
        let runtime: Map<String, Value> = rt
            .0
            .iter()
            .filter(|(k, _)| caps.and_then(|c| c.get(*k)).and_then(Value::as_bool) == Some(true))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        conf.remove("capabilities");
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        serde_json::to_vec(&Value::Object(conf)).expect("a JSON object always serialises")
    }

    /// The list to run for one attachment: this one without the plugins that would do
    /// nothing for it. That is `portmap` without port mappings: its ADD hands the previous
    /// result on untouched and its DEL has nothing to remove, but each costs a process.
    /// The caller caches the list it ran, so DEL and CHECK run the same one (CNI spec: DEL
    /// gets the configuration ADD got).
    pub fn for_attachment(&self, rt: &RuntimeConfig) -> ConfList {
        let idle = |p: &Value| {
            plugin_type(p) == "portmap"
                && rt
                    .0
                    .get("portMappings")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
        };
        let mut list = self.clone();
        if list.plugins.iter().any(|p| !idle(p)) {
            list.plugins.retain(|p| !idle(p));
        }
        list
    }

    /// ADD over the list; on failure, DEL in reverse over what ran.
    pub fn add(&self, inv: &Invocation<'_>, rt: &RuntimeConfig) -> Result<Value, AddError> {
        let mut prev: Option<Value> = None;
        for (i, p) in self.plugins.iter().enumerate() {
            let ty = plugin_type(p);
            let stdin = self.plugin_stdin(p, prev.as_ref(), rt);
            let step = plugin::exec(ty, Command::Add, inv, &stdin).and_then(|out| {
                out.ok_or_else(|| CniError::MissingResult {
                    plugin: ty.to_string(),
                    command: Command::Add,
                })
            });
            match step {
                Ok(result) => prev = Some(result),
                Err(error) => {
                    let undo = self.del_plugins(&self.plugins[..=i], inv, rt, prev.as_ref());
                    return Err(AddError { error, undo });
                }
            }
        }
        prev.ok_or_else(|| AddError {
            error: CniError::BadConfig {
                origin: self.name.clone(),
                reason: "no plugins".into(),
                rule: "plugins must hold at least one plugin",
            },
            undo: Vec::new(),
        })
    }

    /// DEL over the whole list in reverse, best-effort: returns every error.
    pub fn del(
        &self,
        inv: &Invocation<'_>,
        rt: &RuntimeConfig,
        cached: Option<&Value>,
    ) -> Vec<CniError> {
        self.del_plugins(&self.plugins, inv, rt, cached)
    }

    fn del_plugins(
        &self,
        plugins: &[Value],
        inv: &Invocation<'_>,
        rt: &RuntimeConfig,
        cached: Option<&Value>,
    ) -> Vec<CniError> {
        let prev = if self.passes_cached_result() {
            cached
        } else {
            None
        };
        plugins
            .iter()
            .rev()
            .filter_map(|p| {
                let stdin = self.plugin_stdin(p, prev, rt);
                plugin::exec(plugin_type(p), Command::Del, inv, &stdin).err()
            })
            .collect()
    }

    /// CHECK in order against the cached result; the first failure is returned
    /// (a CHECK failure means the attachment is broken, no need to go on).
    pub fn check(
        &self,
        inv: &Invocation<'_>,
        rt: &RuntimeConfig,
        cached: &Value,
    ) -> Result<(), CniError> {
        if self.disable_check || !self.passes_cached_result() {
            return Ok(());
        }
        for p in &self.plugins {
            let stdin = self.plugin_stdin(p, Some(cached), rt);
            plugin::exec(plugin_type(p), Command::Check, inv, &stdin)?;
        }
        Ok(())
    }
}

/// The `type` of a validated plugin config.
pub fn plugin_type(plugin: &Value) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Network names (CNI spec): `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    parts.next().is_none().then_some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> ConfList {
        ConfList::parse(
            json!({
                "cniVersion": "1.0.0",
                "name": "net1",
                "plugins": [
                    {"type": "bridge", "bridge": "br1"},
                    {"type": "portmap", "capabilities": {"portMappings": true}},
                    {"type": "tuning", "capabilities": {"mac": false}}
                ]
            })
            .to_string()
            .as_bytes(),
            "test",
        )
        .expect("valid list")
    }

    #[test]
    fn plugin_stdin_adds_name_version_prev_and_declared_capabilities_only() {
        let l = list();
        let mut rt = RuntimeConfig::default();
        rt.0.insert(
            "portMappings".into(),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        );
        rt.0.insert("mac".into(), json!("aa:bb:cc:dd:ee:ff"));
        let prev = json!({"cniVersion": "1.0.0", "ips": []});

        let bridge: Value =
            serde_json::from_slice(&l.plugin_stdin(&l.plugins[0], None, &rt)).expect("json");
        assert_eq!(bridge["name"], "net1");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("prevResult").is_none());
        assert!(bridge.get("runtimeConfig").is_none());

        let portmap: Value =
            serde_json::from_slice(&l.plugin_stdin(&l.plugins[1], Some(&prev), &rt)).expect("json");
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"][0]["hostPort"],
            8080
        );
        assert!(portmap["runtimeConfig"].get("mac").is_none());

        // A capability declared false is not passed.
        let tuning: Value =
            serde_json::from_slice(&l.plugin_stdin(&l.plugins[2], Some(&prev), &rt)).expect("json");
        assert!(tuning.get("runtimeConfig").is_none());
    }

    #[test]
    fn rejects_lists_that_break_the_spec() {
        let cases = [
            (
                json!({"cniVersion": "1.0.0", "name": "-bad", "plugins": [{"type": "x"}]}),
                "name must match",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "ok", "plugins": []}),
                "at least one plugin",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "ok", "plugins": [{"bridge": "x"}]}),
                "`type`",
            ),
            (
                json!({"cniVersion": "one", "name": "ok", "plugins": [{"type": "x"}]}),
                "semver",
            ),
            (
                json!({"name": "ok", "plugins": [{"type": "x"}]}),
                "JSON object",
            ),
        ];
        for (v, rule) in cases {
            let err = ConfList::parse(v.to_string().as_bytes(), "f.conflist").expect_err("invalid");
            assert!(err.to_string().contains(rule), "{err} should name {rule}");
            assert!(err.to_string().contains("f.conflist"));
        }
    }

    #[test]
    fn portmap_runs_only_with_port_mappings() {
        let l = list();
        let types = |l: &ConfList| -> Vec<String> {
            l.plugins
                .iter()
                .map(|p| plugin_type(p).to_string())
                .collect()
        };
        assert_eq!(
            types(&l.for_attachment(&RuntimeConfig::default())),
            ["bridge", "tuning"]
        );
        let mut rt = RuntimeConfig::default();
        rt.0.insert("portMappings".into(), json!([]));
        assert_eq!(types(&l.for_attachment(&rt)), ["bridge", "tuning"]);
        rt.0.insert(
            "portMappings".into(),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        );
        assert_eq!(types(&l.for_attachment(&rt)), types(&l));
        // A list of portmap alone stays whole: a list needs a plugin.
        let mut only = l.clone();
        only.plugins.retain(|p| plugin_type(p) == "portmap");
        assert_eq!(only.for_attachment(&RuntimeConfig::default()), only);
    }

    #[test]
    fn unknown_top_level_keys_survive_a_round_trip() {
        let v = json!({"cniVersion": "1.0.0", "name": "n", "disableGC": true,
            "berth": {"masquerade": true}, "plugins": [{"type": "x"}]});
        let l = ConfList::parse(v.to_string().as_bytes(), "t").expect("valid");
        assert_eq!(l.extra["berth"]["masquerade"], true);
        let back: Value = serde_json::from_slice(&l.to_json()).expect("json");
        assert_eq!(back, v);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0.0"), Some((1, 0, 0)));
        assert_eq!(parse_version("0.4"), Some((0, 4, 0)));
        assert_eq!(parse_version("1.0.0.1"), None);
        let mut l = list();
        l.cni_version = "0.3.1".into();
        assert!(!l.passes_cached_result());
        l.cni_version = "0.4.0".into();
        assert!(l.passes_cached_result());
    }
}
