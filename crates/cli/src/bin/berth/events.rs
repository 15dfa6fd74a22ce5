//! `berth events`: the event log, then (unless `--until`) new events as they happen.

use crate::container::engine;
use crate::image::Format;
use crate::logs::time_flag;
use crate::Cli;
use anyhow::{Context, Result};
use berth_engine::events::{self, Event};
use berth_monitor::time;
use clap::Args;
use std::io::Write;

#[derive(Args)]
pub struct EventsArgs {
    /// Past events since: RFC 3339, a Unix time, or a duration ago (10m). Without it,
    /// only new events.
    #[arg(long)]
    since: Option<String>,
    /// Stop at this time (same forms) instead of following.
    #[arg(long)]
    until: Option<String>,
    /// type=container|image|volume|network, event=ACTION, container=NAME|ID, volume=NAME,
    /// network=NAME, image=REF.
    #[arg(short, long)]
    filter: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

fn print(e: &Event, format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(e)?)?,
        _ => {
            let attrs: Vec<String> = e
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(
                out,
                "{} {} {} {} ({})",
                time::format_rfc3339_nanos(e.time),
                e.kind,
                e.action,
                e.id,
                attrs.join(", ")
            )?
        }
    }
    out.flush()?;
    Ok(())
}

pub fn events(cli: &Cli, a: &EventsArgs) -> Result<i32> {
    let engine = engine(cli)?;
    let now = time::now_nanos();
    let since = time_flag(&a.since, "since", now)?.unwrap_or(now);
    let until = time_flag(&a.until, "until", now)?;
    let filters = a
        .filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--filter {f:?}: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    // Past events, then poll for new ones: the log only grows (or rotates, which
    // re-reading from the last seen time handles).
    let mut last = since - 1;
    loop {
        let limit = until.unwrap_or(i128::MAX);
        for e in engine.events() {
            if e.time > last && e.time <= limit && events::matches(&e, &filters) {
                print(&e, a.format)?;
                last = e.time;
            }
        }
        if until.is_some_and(|u| time::now_nanos() >= u) {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
