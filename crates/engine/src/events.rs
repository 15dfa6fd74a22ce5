//! The event log (`berth events`): what happened to containers, images, volumes and
//! networks, one JSON line each in ROOT/events.jsonl. Daemonless, so the log is a file every berth process
//! appends to (one `write` per line with O_APPEND, so lines from concurrent processes
//! never interleave) and `events` follows it. It is rotated at 1 MiB to
//! `events.jsonl.1`, as docker keeps a bounded backlog.

use crate::container::{Container, Engine};
use berth_monitor::time;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAX_LOG: u64 = 1 << 20;
const LOG: &str = "events.jsonl";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// Nanoseconds since the epoch.
    pub time: i128,
    /// container, image, volume, network
    #[serde(rename = "type")]
    pub kind: String,
    /// Containers: create, start, die, stop, kill, restart, rename, destroy (docker's
    /// names); images: pull, push, tag, untag, remove, save, load (podman's); volumes
    /// and networks: create, destroy.
    pub action: String,
    pub id: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Engine {
    pub fn events_path(&self) -> PathBuf {
        self.root.join(LOG)
    }

    /// Records an event; best-effort (an event log that cannot be written must not fail
    /// the operation it describes).
    pub fn event(&self, kind: &str, action: &str, id: &str, attrs: &[(&str, String)]) {
        record(&self.root, kind, action, id, attrs);
    }

    pub(crate) fn container_event(&self, action: &str, c: &Container, extra: &[(&str, String)]) {
        let mut attrs = vec![("name", c.name.clone()), ("image", c.image.clone())];
        attrs.extend(extra.iter().cloned());
        self.event("container", action, &c.id, &attrs);
    }

    /// Every recorded event, oldest first (the rotated file, then the current one).
    pub fn events(&self) -> Vec<Event> {
        let path = self.events_path();
        let mut old = path.clone().into_os_string();
        old.push(".1");
        let mut out = vec![];
        for p in [PathBuf::from(old), path] {
            if let Ok(text) = std::fs::read_to_string(&p) {
                out.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
            }
        }
        out
    }
}

/// Appends an event to the log under `root` (the engine's `--root`); best-effort. For
/// callers without an [`Engine`]: the image commands, which open only the image store.
pub fn record(root: &Path, kind: &str, action: &str, id: &str, attrs: &[(&str, String)]) {
    let e = Event {
        time: time::now_nanos(),
        kind: kind.into(),
        action: action.into(),
        id: id.into(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    let Ok(mut line) = serde_json::to_vec(&e) else {
        return;
    };
    line.push(b'\n');
    let path = root.join(LOG);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOG) {
        let mut old = path.clone().into_os_string();
        old.push(".1");
        let _ = std::fs::rename(&path, old);
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    if let Ok(mut f) = f {
        let _ = f.write_all(&line);
    }
}

/// A `--filter KEY=VALUE` over events: type, event (action), container (name or id
/// prefix), volume, label-free docker keys. Several values of one key match any.
pub fn matches(e: &Event, filters: &[(String, String)]) -> bool {
    filters_match(filters, |key, v| match key {
        "type" => e.kind == v,
        "event" | "action" => e.action == v,
        "container" => {
            e.kind == "container"
                && (e.id.starts_with(v) || e.attributes.get("name").is_some_and(|n| n == v))
        }
        "volume" => e.kind == "volume" && e.id == v,
        "network" => e.kind == "network" && e.id == v,
        "image" => {
            // As typed or normalised: `busybox` is `docker.io/library/busybox:latest`.
            let wanted = normalise(v);
            let same = |r: &String| r == v || (wanted.is_some() && normalise(r) == wanted);
            e.attributes.get("image").is_some_and(same)
                || (e.kind == "image" && (e.attributes.get("name").is_some_and(same) || e.id == v))
        }
        _ => false,
    })
}

fn normalise(reference: &str) -> Option<String> {
    reference
        .parse::<berth_distribution::Reference>()
        .ok()
        .map(|r| r.to_string())
}

/// docker's `--filter` rule for any listing: every key given must match, and a key
/// given several times matches when any of its values does.
pub fn filters_match(filters: &[(String, String)], one: impl Fn(&str, &str) -> bool) -> bool {
    filters.iter().all(|(key, _)| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(k, v)| one(k, v))
    })
}
