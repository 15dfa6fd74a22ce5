//! Links `berth-monitor` statically (glibc's libc.a, non-PIE) on linux-gnu.
//!
//! One monitor runs per container for the container's whole life, so its resident size
//! is paid per container. Dynamically linked it maps ld.so and libc.so and relocates
//! itself: ~1.15 MiB RSS, ~280 KiB of it private (BENCHMARKS.md). Static and non-PIE
//! it has no loader, no relocations and only the libc code it calls: ~0.95 MiB RSS and
//! ~130 KiB private.
//!
//! rustc links a binary statically only with `-C target-feature=+crt-static`, a flag for
//! a whole compilation (dependencies and build scripts too), which a build script cannot
//! give to one binary. So this one binary gets `-static -no-pie` as link arguments, and
//! the dynamic libraries rustc names anyway (`-Bdynamic -lgcc_s -lutil ... -lc`) resolve
//! to linker scripts in OUT_DIR that stand for the static archives (`INPUT(libc.a)`;
//! libgcc_eh.a for libgcc_s). A library without its archive, a non-gnu target or
//! BERTH_MONITOR_DYNAMIC=1 leave the monitor dynamic, with a warning for the first.
//! crates/cli/tests/monitor_binary.rs checks the result is static and runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What rustc's std asks for on linux-gnu without crt-static, and the archive each
/// stands for.
const LIBS: &[(&str, &str)] = &[
    ("gcc_s", "libgcc_eh.a"),
    ("util", "libutil.a"),
    ("rt", "librt.a"),
    ("pthread", "libpthread.a"),
    ("m", "libm.a"),
    ("dl", "libdl.a"),
    ("c", "libc.a"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BERTH_MONITOR_DYNAMIC");
    println!("cargo:rerun-if-env-changed=CC");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .map(|f| f.split(',').any(|x| x == "crt-static"))
        .unwrap_or(false);
    if target_os != "linux"
        || target_env != "gnu"
        || crt_static
        || std::env::var_os("BERTH_MONITOR_DYNAMIC").is_some_and(|v| v == "1")
    {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("monitor-static");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/monitor-static");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for (lib, archive) in LIBS {
        let Some(path) = archive_path(&cc, archive) else {
            println!(
                "cargo:warning=berth-monitor stays dynamic: {archive} not found \
                 (install libc6-dev and gcc)"
            );
            return;
        };
        // A linker script under the shared library's name: found first in the -L
        // search, it makes `-lc` mean the archive even in -Bdynamic mode.
        let script = format!("INPUT({})\n", path.display());
        std::fs::write(dir.join(format!("lib{lib}.so")), script).expect("write linker script");
    }
    for arg in ["-static", "-no-pie", &format!("-L{}", dir.display())] {
        println!("cargo:rustc-link-arg-bin=berth-monitor={arg}");
    }
}

/// The archive's path as the C compiler driver would find it, if it exists.
fn archive_path(cc: &str, name: &str) -> Option<PathBuf> {
    let out = Command::new(cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Not found, the driver echoes the bare name back.
    (p.is_absolute() && Path::new(&p).is_file()).then_some(p)
}
