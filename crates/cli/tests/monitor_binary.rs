//! The berth-monitor binary as built (see crates/cli/build.rs): static and non-PIE on
//! linux-gnu, and it runs. A link that quietly fell back to shared libraries, or mixed
//! `-static` with a shared libc, would give a dynamic or a crashing monitor.

use std::process::Command;

fn monitor() -> &'static str {
    env!("CARGO_BIN_EXE_berth-monitor")
}

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;

/// (ELF type, the program header types) of a 64-bit little-endian ELF file.
fn elf_headers(path: &str) -> (u16, Vec<u32>) {
    let b = std::fs::read(path).expect("read the monitor binary");
    assert_eq!(&b[..4], b"\x7fELF", "{path} is not ELF");
    assert_eq!((b[4], b[5]), (2, 1), "{path}: not ELF64 little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let types = (0..phnum as usize)
        .map(|i| u32_at(phoff + i * phentsize as usize))
        .collect();
    (u16_at(0x10), types)
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu", target_endian = "little"))]
fn monitor_is_static_and_not_pie() {
    if option_env!("BERTH_MONITOR_DYNAMIC") == Some("1") {
        eprintln!("SKIP: built with BERTH_MONITOR_DYNAMIC=1");
        return;
    }
    let (kind, phdrs) = elf_headers(monitor());
    assert!(
        !phdrs.contains(&PT_INTERP),
        "berth-monitor has an interpreter"
    );
    assert!(
        !phdrs.contains(&PT_DYNAMIC),
        "berth-monitor has a dynamic section"
    );
    assert_eq!(kind, ET_EXEC, "berth-monitor is not a non-PIE executable");
}

#[test]
fn monitor_runs_and_refuses_bad_arguments() {
    let o = Command::new(monitor()).output().expect("run berth-monitor");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("usage: berth-monitor"), "{err}");
    let o = Command::new(monitor())
        .arg("--bogus")
        .output()
        .expect("run berth-monitor");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown argument \"--bogus\""));
}
