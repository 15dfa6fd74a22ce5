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
