//! Fuzzes the layer unpacker with arbitrary tar streams: it must never panic, and whatever
//! it does (unpack or refuse), nothing may appear outside the destination.
//!
//! `cargo +nightly fuzz run unpack` (as root exercises chown/mknod too; run it in a VM).
//! Two layers are cut from the input: the first is applied, then the second over it, so
//! symlinks from a "parent layer" are in play. Seeds: `fuzz/seeds.py` writes a few
//! tars (both layers honest and hostile) into `corpus/unpack`.
#![no_main]

use berth_image::unpack::{unpack, Compression, UnpackOptions, Whiteouts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let whiteouts = if selector & 1 == 0 {
        Whiteouts::Overlay
    } else {
        Whiteouts::Apply
    };
    // Input: mode byte, 16-bit cut point, then the bytes of both layers.
    let Some((cut, body)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let cut = usize::from(u16::from_le_bytes(*cut)) % (body.len() + 1);
    let (first, second) = body.split_at(cut);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).expect("dest");
    let opts = UnpackOptions {
        whiteouts,
        layer: "sha256:fuzz".into(),
        max_size: 64 << 20,
        same_owner: selector & 2 == 0,
    };
    for layer in [first, second] {
        if let Err(e) = unpack(layer, Compression::None, &dest, &opts) {
            assert!(e.to_string().contains("sha256:fuzz"), "{e}");
        }
    }
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .map(|e| e.expect("dirent").file_name())
        .collect();
    assert_eq!(outside, ["dest"], "something was written beside dest");
});
