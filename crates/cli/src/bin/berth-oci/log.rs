//! Logs in the shapes runc writes, because engines parse them: containerd's shim reads
//! the last `--log` line in JSON (`{"level","msg","time"}`) to report why a command
//! failed; text lines follow logrus (`time="…" level=error msg="…"`).

use clap::ValueEnum;
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Logger {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

impl Logger {
    pub fn new(file: Option<PathBuf>, format: Format, debug: bool) -> Self {
        Logger {
            file,
            format,
            debug,
        }
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        match self.format {
            Format::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            Format::Text => format!("time={time:?} level={level} msg={msg:?}"),
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let line = self.line(level, msg);
        if let Some(path) = &self.file {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        // Errors always reach stderr too: a person at a terminal must see them.
        if level == "error" || self.file.is_none() {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }
}

/// The runtime library reports through `tracing` (warnings such as a failed poststart
/// hook or an incomplete rollback); this sends its events to the same log, with no
/// span bookkeeping, which berth-oci has no use for.
impl tracing::Subscriber for Logger {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN || (self.debug && *m.level() <= tracing::Level::DEBUG)
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                if field.name() == "message" {
                    let _ = write!(self.0, "{value:?}");
                } else {
                    let _ = write!(self.0, " {}={value:?}", field.name());
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            _ => "debug",
        };
        self.write(level, &m.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
