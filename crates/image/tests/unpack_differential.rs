//! The differential test against umoci: each generated layer stack unpacks to the same
//! tree with umoci, with berth in Apply mode, and through an overlay of berth's Overlay-mode
//! layers. Needs root and `umoci`; skips with a printed reason otherwise.

mod common;

use berth_image::unpack::{self, Compression, Whiteouts};
use common::layer::{gzip, Entry, Layer};
use common::{layer_name, opts, skip_unless_root, CAP_NET_RAW};
use std::fs;
use tar::EntryType;

// ---------------------------------------------------------------- differential vs umoci

/// Unpacks `tars` with umoci, with berth in Apply mode into one directory, and with berth
/// in Overlay mode into per-layer directories mounted as one overlay; all three trees must
/// match.
fn differential(name: &str, tars: &[Vec<u8>]) {
    if skip_unless_root(name) {
        return;
    }
    if !common::have_umoci() {
        eprintln!("skipping {name}: umoci is not installed");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("berth-diff-")
        .tempdir()
        .expect("tempdir");
    let t0 = std::time::Instant::now();
    let layout = tmp.path().join("layout");
    let gzipped: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    common::layout::write(&layout, "t", tars, &gzipped);
    let t_layout = t0.elapsed();
    let bundle = tmp.path().join("bundle");
    let out = std::process::Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let umoci_root = bundle.join("rootfs");
    let t_umoci = t0.elapsed();

    let applied = tmp.path().join("applied");
    fs::create_dir(&applied).expect("applied");
    let mut lowers = Vec::new();
    for (i, (tar, gz)) in tars.iter().zip(&gzipped).enumerate() {
        let layer = layer_name(tar);
        let got = unpack::unpack(
            &gz[..],
            Compression::Gzip,
            &applied,
            &opts(&layer, Whiteouts::Apply),
        )
        .unwrap_or_else(|e| panic!("{name}: apply: {e}"));
        assert_eq!(got.diff_id.to_string(), layer);
        let lower = tmp.path().join(format!("l{i}"));
        fs::create_dir(&lower).expect("lower");
        unpack::unpack(
            &gz[..],
            Compression::Gzip,
            &lower,
            &opts(&layer, Whiteouts::Overlay),
        )
        .unwrap_or_else(|e| panic!("{name}: overlay layer {i}: {e}"));
        lowers.push(lower);
    }
    let t_berth = t0.elapsed();
    let apply_diff = common::tree::diff(&umoci_root, &applied);
    let overlay_diff = {
        let mount = common::Overlay::mount(&lowers, &tmp.path().join("merged"));
        common::tree::diff(&umoci_root, &mount.merged)
    };
    assert!(
        apply_diff.is_empty() && overlay_diff.is_empty(),
        "{name}: berth differs from umoci\napply mode:\n  {}\noverlay mode:\n  {}",
        apply_diff.join("\n  "),
        overlay_diff.join("\n  ")
    );
    let n = common::tree::snapshot(&umoci_root).len();
    eprintln!(
        "{name}: {n} paths match umoci in both modes (layout {t_layout:?}, umoci {:?}, berth {:?}, compare {:?})",
        t_umoci - t_layout,
        t_berth - t_umoci,
        t0.elapsed() - t_berth
    );
}

#[test]
fn differential_whiteouts_and_opaque_dirs() {
    let l1 = Layer::new()
        .dir("etc")
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .dir("etc/sub")
        .file("etc/sub/x", b"x")
        .dir("gone")
        .dir("gone/deep")
        .file("gone/deep/f", b"f")
        .dir("opq")
        .file("opq/old", b"o")
        .dir("opq/olddir")
        .file("opq/olddir/old2", b"o")
        .dir("opq/kept")
        .file("opq/kept/old3", b"o")
        .dir("late")
        .file("late/old", b"o")
        .dir("late/sub")
        .file("late/sub/old", b"o")
        .file("hidden", b"h")
        .tar();
    let l2 = Layer::new()
        .dir("etc")
        .whiteout("etc/b")
        .whiteout("gone")
        .dir("opq")
        .opaque("opq")
        .file("opq/new", b"n")
        .dir("opq/kept")
        .file("opq/kept/new3", b"n")
        .dir("late")
        .file("late/new", b"n")
        .dir("late/sub")
        .file("late/sub/new", b"n")
        .opaque("late")
        .file("hidden2", b"h")
        .tar();
    let l3 = Layer::new()
        .dir("etc")
        .dir("etc/b")
        .file("etc/b/now-a-dir", b"d")
        .file("gone", b"now a file")
        .whiteout("hidden")
        .whiteout("etc/sub/x")
        .tar();
    differential("differential_whiteouts_and_opaque_dirs", &[l1, l2, l3]);
}

#[test]
fn differential_hardlinks_and_symlinks() {
    let l1 = Layer::new()
        .dir("bin")
        .add(Entry::file("bin/busybox", b"busybox elf").mode(0o755))
        .hardlink("bin/ls", "bin/busybox")
        .hardlink("bin/cat", "bin/busybox")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/libc.so", b"libc 1")
        .symlink("lib", "usr/lib")
        .symlink("lib64", "/usr/lib")
        .symlink("dangling", "nowhere")
        .dir("etc")
        .symlink("etc/mtab", "/proc/self/mounts")
        .dir("opt")
        .file("opt/tool", b"t")
        .add(Entry {
            path: b"etc/\xe9t\xe9".to_vec(),
            ..Entry::file("x", b"latin-1 name")
        })
        .tar();
    let l2 = Layer::new()
        .dir("bin")
        // breaks one link of the group
        .file("bin/cat", b"a real cat")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/libc.so.6", b"libc 2")
        .hardlink("usr/lib/libc.so", "usr/lib/libc.so.6")
        .symlink("opt", "usr")
        .dir("dangling")
        .file("dangling/inside", b"i")
        .dir("etc")
        .file("etc/mtab", b"a file now")
        .tar();
    let l3 = Layer::new()
        .dir("bin")
        .whiteout("bin/ls")
        .symlink("lib", "usr/lib64")
        .tar();
    differential("differential_hardlinks_and_symlinks", &[l1, l2, l3]);
}

#[test]
fn differential_xattrs_devices_and_modes() {
    let l1 = Layer::new()
        .add(Entry::dir("tmp").mode(0o1777))
        .add(Entry::dir("shared").mode(0o2775).owner(0, 100))
        .add(Entry::dir("private").mode(0o700).owner(1000, 1000))
        .add(Entry::file("private/f", b"p").mode(0o600).owner(1000, 1000))
        .dir("bin")
        .add(Entry::file("bin/suid", b"s").mode(0o4755))
        .add(Entry::file("bin/sgid", b"s").mode(0o2711).owner(0, 50))
        .add(
            Entry::file("bin/ping", b"ping")
                .mode(0o755)
                .xattr("security.capability", &CAP_NET_RAW),
        )
        .add(
            Entry::file("bin/noted", b"n")
                .xattr("user.note", b"hello")
                .xattr("trusted.x", b"t"),
        )
        .add(Entry::file("bin/bigid", b"b").owner(3_000_000, 3_000_001))
        .add(Entry::file("bin/old", b"o").mtime(1))
        .add(Entry::file("bin/frac", b"f").pax("mtime", b"1600000000.5"))
        .add(Entry::dir("dev").xattr("user.devdir", b"1"))
        .add(Entry::node("dev/null", EntryType::Char, 1, 3).mode(0o666))
        .add(Entry::node("dev/zero", EntryType::Char, 1, 5).mode(0o666))
        .add(
            Entry::node("dev/loop0", EntryType::Block, 7, 0)
                .mode(0o660)
                .owner(0, 6),
        )
        .add(Entry::node("dev/initctl", EntryType::Fifo, 0, 0).mode(0o600))
        .tar();
    let l2 = Layer::new()
        .add(Entry::dir("tmp").mode(0o755))
        .add(Entry::dir("private").mode(0o750).owner(1000, 1000))
        .dir("dev")
        // node over node, file over node, node over file
        .add(Entry::node("dev/null", EntryType::Char, 1, 7).mode(0o600))
        .file("dev/zero", b"not a device")
        .dir("bin")
        .add(Entry::node("bin/old", EntryType::Fifo, 0, 0).mode(0o644))
        .add(
            Entry::file("bin/noted", b"n2")
                .mode(0o4750)
                .owner(0, 10)
                .xattr("user.other", b"x"),
        )
        .tar();
    differential("differential_xattrs_devices_and_modes", &[l1, l2]);
}

#[test]
fn differential_deep_and_large() {
    let mut l1 = Layer::new();
    let mut p = String::new();
    for i in 0..300 {
        if i > 0 {
            p.push('/');
        }
        p.push_str(&format!("d{}", i % 10));
        l1.dir(&p);
        if i % 50 == 0 {
            l1.file(&format!("{p}/f{i}"), format!("level {i}").as_bytes());
        }
    }
    // 4 MiB of incompressible content (debug-build zlib is slow; the speed test is separate).
    let mut big = vec![0u8; 4 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    l1.file("big", &big);
    // (No GNU sparse entry: umoci 0.4 refuses typeflag 'S'.)
    l1.dir("many");
    for d in 0..20 {
        l1.dir(&format!("many/{d}"));
        for f in 0..100 {
            l1.file(&format!("many/{d}/{f}"), format!("{d}/{f}").as_bytes());
        }
    }
    let l1 = l1.tar();
    // Second layer: change the leaf, delete a subtree half way down, grow a new one.
    let mut l2 = Layer::new();
    let mut q = String::new();
    for i in 0..300 {
        if i > 0 {
            q.push('/');
        }
        q.push_str(&format!("d{}", i % 10));
        if i == 150 {
            let (parent, _) = q.rsplit_once('/').expect("deep");
            l2.whiteout(&q);
            l2.dir(&format!("{parent}/new"));
            l2.file(&format!("{parent}/new/file"), b"new branch");
            break;
        }
        l2.dir(&q);
    }
    l2.opaque("many/3");
    l2.file("many/3/only", b"only");
    l2.whiteout("many/4");
    let l2 = l2.tar();
    differential("differential_deep_and_large", &[l1, l2]);
}
