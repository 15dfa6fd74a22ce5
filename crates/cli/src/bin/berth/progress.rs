//! Pull progress: a bar per layer on a terminal, one line per event in a pipe, nothing
//! with --quiet.

use berth_distribution::{Digest, Reference};
use berth_image::pull::{LayerState, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

pub fn for_stderr(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(berth_image::pull::Quiet)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        })
    } else {
        Arc::new(Lines)
    }
}

struct Lines;

impl Progress for Lines {
    fn resolved(&self, r: &Reference, manifest: &Digest) {
        eprintln!("Resolved {r} to {manifest}");
    }

    fn layer(&self, d: &Digest, size: u64, state: LayerState) {
        match state {
            LayerState::Exists => eprintln!("Layer {}: already present", d.short()),
            LayerState::Pulling => eprintln!("Layer {}: pulling {}", d.short(), human(size)),
            LayerState::Done => eprintln!("Layer {}: done", d.short()),
        }
    }
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    fn bar(&self, d: &Digest, size: u64) -> ProgressBar {
        let mut bars = self.bars.lock().expect("not poisoned");
        bars.entry(d.clone())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(size));
                b.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                b.set_prefix(d.short().to_string());
                b
            })
            .clone()
    }
}

impl Progress for Bars {
    fn resolved(&self, r: &Reference, manifest: &Digest) {
        let _ = self.multi.println(format!("Resolved {r} to {manifest}"));
    }

    fn layer(&self, d: &Digest, size: u64, state: LayerState) {
        let b = self.bar(d, size);
        match state {
            LayerState::Exists => {
                b.set_position(size);
                b.finish_with_message("already present");
            }
            LayerState::Pulling => b.set_message("pulling"),
            LayerState::Done => {
                b.set_position(size);
                b.finish_with_message("done");
            }
        }
    }

    fn bytes(&self, d: &Digest, n: u64) {
        if let Some(b) = self.bars.lock().expect("not poisoned").get(d) {
            b.inc(n);
        }
    }
}

pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", units[u]).replace(".000 ", " ")
    }
}
