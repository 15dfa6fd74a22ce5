//! Hostile layers: every refusal names the layer and the entry, and nothing is written
//! outside the destination. Most cases need root and skip with a printed reason otherwise.

mod common;

use berth_image::unpack::{self, Compression, UnpackError, Whiteouts};
use common::layer::{gzip, Entry, Layer};
use common::{assert_names, layer_name, lstat, opts, unpack_tar, Area, BOTH};
use std::fs;
use std::os::unix::fs::MetadataExt;

// ---------------------------------------------------------------- hostile layers

/// Unpacks `layers` in order (Apply mode stacks them in one dir; Overlay mode gives each
/// its own) and checks that the last one is refused, naming it and `entry`, with nothing
/// written outside the destination.
fn refused(what: &str, mode: Whiteouts, layers: &[Vec<u8>], entry: &str, area: &Area) {
    let before = area.outside();
    let mut last = None;
    for (i, tar) in layers.iter().enumerate() {
        let dest = match mode {
            Whiteouts::Apply => area.dest.clone(),
            Whiteouts::Overlay => {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = area.dest.join(format!("l{n}-{i}"));
                fs::create_dir(&d).expect("layer dir");
                d
            }
        };
        let r = unpack_tar(tar, &dest, mode);
        if i + 1 < layers.len() {
            r.unwrap_or_else(|e| panic!("{what}: layer {i}: {e}"));
        } else {
            last = Some(r);
        }
    }
    let err = match last.expect("a layer") {
        Ok(u) => panic!("{what} ({mode:?}): not refused: {u:?}"),
        Err(e) => e,
    };
    eprintln!("{what} ({mode:?}): {err}");
    assert_names(&err, &layer_name(layers.last().expect("a layer")), entry);
    assert_eq!(area.outside(), before, "{what}: written outside dest");
    assert_eq!(
        fs::read(area.canary.join("secret")).expect("canary"),
        b"canary"
    );
}

#[test]
fn hostile_single_layers() {
    // No root needed: refusals come before any privileged operation.
    for mode in BOTH {
        let area = Area::new();
        let canary = area.canary.to_string_lossy().into_owned();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "dotdot",
                Layer::new().file("../canary/x", b"x").tar(),
                "../canary/x",
            ),
            (
                "dotdot deep",
                Layer::new().file("a/../../canary/x", b"x").tar(),
                "a/../../canary/x",
            ),
            ("absolute", Layer::new().file("/abs", b"x").tar(), "/abs"),
            (
                "absolute symlink then write through it",
                Layer::new().symlink("a", &canary).file("a/x", b"x").tar(),
                "a/x",
            ),
            (
                "symlink to /etc then write through it",
                Layer::new().symlink("a", "/etc").file("a/x", b"x").tar(),
                "a/x",
            ),
            (
                "relative escaping symlink",
                Layer::new().symlink("a", "../..").file("a/x", b"x").tar(),
                "a/x",
            ),
            (
                "relative symlink to the canary",
                Layer::new()
                    .dir("d")
                    .symlink("d/a", "../../canary")
                    .file("d/a/x", b"x")
                    .tar(),
                "d/a/x",
            ),
            (
                "dir through an escaping symlink",
                Layer::new().symlink("a", "../canary").dir("a/newdir").tar(),
                "a/newdir",
            ),
            (
                "hardlink to ../outside",
                Layer::new().hardlink("h", "../canary/secret").tar(),
                "h",
            ),
            (
                "hardlink to an absolute path",
                Layer::new()
                    .hardlink("h", &format!("{canary}/secret"))
                    .tar(),
                "h",
            ),
            (
                "hardlink through an escaping symlink",
                Layer::new()
                    .symlink("l", "../canary")
                    .hardlink("h", "l/secret")
                    .tar(),
                "h",
            ),
            (
                "whiteout of ..",
                Layer::new().dir("a").file("a/.wh...", b"").tar(),
                "a/.wh...",
            ),
            (
                "whiteout of .",
                Layer::new().file(".wh..", b"").tar(),
                ".wh..",
            ),
            (
                "empty whiteout",
                Layer::new().file("a/.wh.", b"").tar(),
                "a/.wh.",
            ),
            (
                "whiteout through an escaping symlink",
                Layer::new()
                    .symlink("l", "../canary")
                    .file("l/.wh.secret", b"")
                    .tar(),
                "l/.wh.secret",
            ),
            (
                "opaque through an escaping symlink",
                Layer::new()
                    .symlink("l", "../canary")
                    .file("l/.wh..wh..opq", b"")
                    .tar(),
                "l/.wh..wh..opq",
            ),
            (
                "absurd uid",
                Layer::new()
                    .add(Entry::file("u", b"").owner(u64::from(u32::MAX), 0))
                    .tar(),
                "u",
            ),
            (
                "absurd pax mtime",
                Layer::new()
                    .add(Entry::file("t", b"").pax("mtime", b"1e99"))
                    .tar(),
                "t",
            ),
        ];
        for (what, tar, entry) in cases {
            refused(what, mode, &[tar], entry, &area);
        }
    }
}

#[test]
fn hostile_symlink_from_a_parent_layer() {
    let area = Area::new();
    let canary = area.canary.to_string_lossy().into_owned();
    for (what, l1, l2, entry) in [
        (
            "absolute",
            Layer::new().symlink("etc", &canary).tar(),
            Layer::new().file("etc/passwd", b"pwned").tar(),
            "etc/passwd",
        ),
        (
            "relative",
            Layer::new().symlink("etc", "../canary").tar(),
            Layer::new().file("etc/passwd", b"pwned").tar(),
            "etc/passwd",
        ),
        (
            "whiteout through it",
            Layer::new().symlink("etc2", "../canary").tar(),
            Layer::new().whiteout("etc2/secret").tar(),
            "etc2/.wh.secret",
        ),
        (
            "hardlink through it",
            Layer::new().symlink("etc3", "../canary").tar(),
            Layer::new().hardlink("h", "etc3/secret").tar(),
            "h",
        ),
    ] {
        refused(what, Whiteouts::Apply, &[l1, l2], entry, &area);
    }
}

#[test]
fn hardlink_to_an_escaping_symlink_links_the_symlink() {
    let area = Area::new();
    let before = area.outside();
    let secret = area.canary.join("secret");
    let tar = Layer::new()
        .symlink("l", &secret.to_string_lossy())
        .hardlink("h", "l")
        .tar();
    unpack_tar(&tar, &area.dest, Whiteouts::Apply).expect("unpack");
    let h = lstat(&area.dest.join("h"));
    assert!(h.file_type().is_symlink());
    assert_eq!(h.ino(), lstat(&area.dest.join("l")).ino());
    assert_eq!(lstat(&secret).nlink(), 1, "the canary gained a link");
    assert_eq!(area.outside(), before);
}

#[test]
fn decompression_bomb() {
    let tar = Layer::new().file("bomb", &vec![0u8; 4 << 20]).tar();
    let gz = gzip(&tar);
    assert!(gz.len() < 100 << 10);
    let area = Area::new();
    let before = area.outside();
    let mut o = opts("sha256:bomb", Whiteouts::Overlay);
    o.max_size = 1 << 20;
    let err = unpack::unpack(&gz[..], Compression::Gzip, &area.dest, &o).expect_err("bomb");
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    assert_names(&err, "sha256:bomb", "bomb");
    assert_eq!(area.outside(), before);
    // A sparse file's holes count too.
    let tar = Layer::new()
        .add(Entry::sparse("holes", 1 << 40, vec![(0, vec![1u8; 512])]))
        .tar();
    let area = Area::new();
    let err = unpack::unpack(&tar[..], Compression::None, &area.dest, &o).expect_err("holes");
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    assert_names(&err, "sha256:bomb", "holes");
}
