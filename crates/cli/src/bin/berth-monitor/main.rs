//! berth-monitor: one per container, started by `berth`; see the berth-monitor crate.
//! Kept to std, rustix and berth-sys so its resident size stays near 1 MiB.

fn main() {
    let cfg = match berth_monitor::monitor::Config::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(berth_monitor::monitor::run(cfg));
}
