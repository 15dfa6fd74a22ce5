//! Fuzzes the seccomp profile parser (`berth run --security-opt seccomp=PATH` reads a
//! user's file): it must never panic, and whatever it accepts must resolve, for any
//! architecture, kernel and capability set, into a `linux.seccomp` the runtime's OCI
//! types accept, and survive a round trip through its own serialisation unchanged.
//!
//! `cargo +nightly fuzz run seccomp_profile`. Seeds: copy
//! `crates/engine/src/seccomp/default.json` into `corpus/seccomp_profile`.
#![no_main]

use berth_engine::seccomp::{Host, NativeArch, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Profile::parse(data) else {
        return;
    };
    let all: Vec<String> = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_BPF", "CAP_SYS_TIME"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let again = Profile::parse(&serde_json::to_vec(&p).expect("a parsed profile serialises"))
        .expect("a profile's own serialisation parses");
    for arch in [
        NativeArch::X86_64,
        NativeArch::Aarch64,
        NativeArch::S390x,
        NativeArch::Other,
    ] {
        for kernel in [(0, 0), (4, 4), (6, 1)] {
            let host = Host { arch, kernel };
            for caps in [&[][..], &all[..]] {
                let r = p.resolve(caps, &host);
                serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(r.clone())
                    .expect("the resolved profile is a valid OCI profile");
                assert_eq!(
                    r,
                    again.resolve(caps, &host),
                    "round trip changed the profile"
                );
            }
        }
    }
});
