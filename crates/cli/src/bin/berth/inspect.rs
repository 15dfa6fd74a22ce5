//! `berth inspect`: containers, images and volumes as JSON in docker's shapes (one
//! array of every object asked for), or one field of each with `--format .Dotted.Path`.

use crate::container::engine;
use crate::Cli;
use anyhow::Result;
use berth_engine::Engine;
use clap::{Args, ValueEnum};
use serde_json::Value;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Volume,
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// Only this kind of object (default: a container, else an image, else a volume).
    #[arg(long = "type", value_enum)]
    kind: Option<Kind>,
    /// `json` (the default), or one field of each object: a dotted path such as
    /// `.State.Pid` (also written `{{.State.Pid}}`).
    #[arg(short, long, default_value = "json")]
    format: String,
}

#[derive(Args)]
pub struct ContainerInspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// `json` (the default) or a dotted path such as `.State.Pid`.
    #[arg(short, long, default_value = "json")]
    format: String,
}

impl From<&ContainerInspectArgs> for InspectArgs {
    fn from(a: &ContainerInspectArgs) -> InspectArgs {
        InspectArgs {
            names: a.names.clone(),
            kind: Some(Kind::Container),
            format: a.format.clone(),
        }
    }
}

/// The object `name` names, trying the kinds in docker's order.
fn find(engine: &Engine, name: &str, kind: Option<Kind>) -> Result<Value> {
    let try_kind = |k: Kind| -> Result<Value> {
        Ok(match k {
            Kind::Container => engine.inspect(name)?,
            Kind::Image => {
                let r = engine.images.find(name)?;
                crate::image::inspect_json(&engine.images, &r)?
            }
            Kind::Volume => crate::volume::describe(engine, &engine.volumes.get(name)?),
        })
    };
    match kind {
        Some(k) => try_kind(k),
        None => {
            let mut first = None;
            for k in [Kind::Container, Kind::Image, Kind::Volume] {
                match try_kind(k) {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            Err(first
                .expect("three kinds were tried")
                .context(format!("no container, image or volume {name:?}")))
        }
    }
}

/// `.A.B.0.C` (or `{{.A.B}}`) into the object; None where the path leads nowhere.
fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path
        .trim()
        .trim_start_matches("{{")
        .trim_end_matches("}}")
        .trim();
    let p = p.strip_prefix("json ").unwrap_or(p).trim();
    p.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(v, |v, key| match v {
            Value::Array(a) => a.get(key.parse::<usize>().ok()?),
            _ => v.get(key),
        })
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        other => other.to_string(),
    }
}

pub fn inspect(cli: &Cli, a: &InspectArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let mut found = vec![];
    let mut failed = None;
    for n in &a.names {
        match find(&engine, n, a.kind) {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("berth: {}", crate::exit::message(&e));
                failed = Some(e);
            }
        }
    }
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        for v in &found {
            match field(v, &a.format) {
                Some(x) => println!("{}", show(x)),
                None => println!("<no value>"),
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn dotted_paths() {
        let v = json!({"State": {"Pid": 42, "Status": "running"}, "Args": ["a", "b"]});
        assert_eq!(super::field(&v, ".State.Pid"), Some(&json!(42)));
        assert_eq!(
            super::field(&v, "{{ .State.Status }}"),
            Some(&json!("running"))
        );
        assert_eq!(super::field(&v, ".Args.1"), Some(&json!("b")));
        assert_eq!(super::field(&v, ".Nope.X"), None);
        assert_eq!(super::show(&json!("running")), "running");
        assert_eq!(super::show(&json!({"a": 1})), "{\"a\":1}");
    }
}
