//! Layer unpacking: stream formats, entry kinds, replacement and whiteouts (hostile layers
//! are in unpack_hostile.rs, the umoci differential test in unpack_differential.rs).
//! Most tests need root (owners, device nodes, trusted xattrs, overlay mounts) and skip
//! with a printed reason otherwise; the differential tests also need `umoci`.

mod common;

use berth_distribution::Digest;
use berth_image::unpack::{self, Compression, Whiteouts};
use common::layer::{gzip, zstd, Entry, Layer, MTIME};
use common::{
    assert_names, exists, layer_name, lstat, opts, skip_unless_root, unpack_tar, Area, BOTH,
    CAP_NET_RAW,
};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use tar::EntryType;

// ---------------------------------------------------------------- stream and formats

#[test]
fn diff_id_covers_the_whole_stream_including_trailing_bytes() {
    let mut l = Layer::new();
    l.dir("etc").file("etc/hostname", b"berth\n");
    let mut tar = l.tar();
    // Bytes after the end-of-archive blocks still belong to the blob.
    tar.extend_from_slice(&[0u8; 4096]);
    tar.extend_from_slice(b"trailing");
    let want = Digest::sha256_of(&tar);
    for (compression, blob) in [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Zstd, zstd(&tar)),
    ] {
        let area = Area::new();
        let mut reader = CountingReader {
            inner: &blob[..],
            n: 0,
        };
        let got = unpack::unpack(
            &mut reader,
            compression,
            &area.dest,
            &opts("sha256:test", Whiteouts::Apply),
        )
        .expect("unpack");
        assert_eq!(got.diff_id, want, "{compression:?}");
        assert_eq!(got.size, tar.len() as u64);
        assert_eq!(got.entries, 2);
        assert_eq!(reader.n, blob.len(), "{compression:?}: input read to EOF");
        assert_eq!(
            fs::read(area.dest.join("etc/hostname")).expect("read"),
            b"berth\n"
        );
    }
}

struct CountingReader<'a> {
    inner: &'a [u8],
    n: usize,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n;
        Ok(n)
    }
}

#[test]
fn detect_matches_the_encoders() {
    let tar = Layer::new().file("a", b"x").tar();
    assert_eq!(Compression::detect(&gzip(&tar)), Compression::Gzip);
    assert_eq!(Compression::detect(&zstd(&tar)), Compression::Zstd);
    assert_eq!(Compression::detect(&tar), Compression::None);
}

#[test]
fn corrupt_stream_names_the_layer() {
    let tar = Layer::new().file("a", &[7u8; 10_000]).tar();
    let mut gz = gzip(&tar);
    let n = gz.len();
    gz.truncate(n / 2);
    let area = Area::new();
    let err = unpack::unpack(
        &gz[..],
        Compression::Gzip,
        &area.dest,
        &opts("sha256:broken", Whiteouts::Apply),
    )
    .expect_err("truncated gzip");
    assert!(err.to_string().contains("sha256:broken"), "{err}");
}

// ---------------------------------------------------------------- entry kinds

#[test]
fn files_dirs_symlinks_and_mtimes() {
    if skip_unless_root("files_dirs_symlinks_and_mtimes") {
        return;
    }
    let tar = Layer::new()
        .add(Entry::dir("d").mtime(1_500_000_000))
        .add(
            Entry::file("d/f", b"hello")
                .mode(0o640)
                .owner(1000, 1001)
                .mtime(1_400_000_000),
        )
        .add(Entry::symlink("d/rel", "f").mtime(1_300_000_000))
        .add(Entry::symlink("d/abs", "/etc/passwd"))
        .add(
            Entry::file("frac", b"")
                .pax("mtime", b"1600000000.123456789")
                .pax("atime", b"1600000001.5"),
        )
        // Created after its parent's entry: the parent's mtime is set last.
        .add(Entry::file("d/late", b""))
        // Names are bytes, not UTF-8.
        .add(Entry {
            path: b"d/\xff\xfename".to_vec(),
            ..Entry::file("x", b"latin-1")
        })
        .tar();
    for mode in BOTH {
        let area = Area::new();
        unpack_tar(&tar, &area.dest, mode).expect("unpack");
        let d = area.dest.join("d");
        assert_eq!(lstat(&d).mtime(), 1_500_000_000);
        let f = lstat(&d.join("f"));
        assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o640, 1000, 1001));
        assert_eq!(f.mtime(), 1_400_000_000);
        assert_eq!(fs::read(d.join("f")).expect("read"), b"hello");
        assert_eq!(
            fs::read_link(d.join("rel")).expect("rl"),
            PathBuf::from("f")
        );
        assert_eq!(lstat(&d.join("rel")).mtime(), 1_300_000_000);
        assert_eq!(
            fs::read_link(d.join("abs")).expect("rl"),
            PathBuf::from("/etc/passwd")
        );
        let latin = d.join(std::ffi::OsStr::from_bytes(b"\xff\xfename"));
        assert_eq!(fs::read(latin).expect("non-UTF-8 name"), b"latin-1");
        let frac = lstat(&area.dest.join("frac"));
        assert_eq!(
            (frac.mtime(), frac.mtime_nsec()),
            (1_600_000_000, 123_456_789)
        );
        assert_eq!(
            (frac.atime(), frac.atime_nsec()),
            (1_600_000_001, 500_000_000)
        );
    }
}

#[test]
fn setuid_setgid_sticky_survive_chown() {
    if skip_unless_root("setuid_setgid_sticky_survive_chown") {
        return;
    }
    let tar = Layer::new()
        .add(Entry::file("suid", b"x").mode(0o4755).owner(1000, 1000))
        .add(Entry::file("sgid", b"x").mode(0o2755).owner(0, 50))
        .add(Entry::dir("tmp").mode(0o1777))
        .add(Entry::dir("shared").mode(0o2775).owner(0, 100))
        .tar();
    for mode in BOTH {
        let area = Area::new();
        unpack_tar(&tar, &area.dest, mode).expect("unpack");
        let m = |p: &str| lstat(&area.dest.join(p)).mode() & 0o7777;
        assert_eq!(m("suid"), 0o4755);
        assert_eq!(m("sgid"), 0o2755);
        assert_eq!(m("tmp"), 0o1777);
        assert_eq!(m("shared"), 0o2775);
        assert_eq!(lstat(&area.dest.join("suid")).uid(), 1000);
    }
}

#[test]
fn xattrs_including_security_capability() {
    if skip_unless_root("xattrs_including_security_capability") {
        return;
    }
    let tar = Layer::new()
        .add(
            Entry::file("ping", b"elf")
                .mode(0o755)
                .owner(0, 0)
                .xattr("security.capability", &CAP_NET_RAW)
                .xattr("user.note", b"hi"),
        )
        // chown would clear the capability if it came after it.
        .add(
            Entry::file("owned", b"elf")
                .owner(1000, 1000)
                .xattr("security.capability", &CAP_NET_RAW),
        )
        .add(Entry::dir("d").xattr("user.dir", b"yes"))
        .add(Entry::symlink("l", "ping").xattr("trusted.linkattr", b"v"))
        .tar();
    for mode in BOTH {
        let area = Area::new();
        unpack_tar(&tar, &area.dest, mode).expect("unpack");
        let get = |p: &str, n: &str| xattr::get(area.dest.join(p), n).expect("getxattr");
        assert_eq!(
            get("ping", "security.capability").as_deref(),
            Some(&CAP_NET_RAW[..])
        );
        assert_eq!(get("ping", "user.note").as_deref(), Some(&b"hi"[..]));
        assert_eq!(
            get("owned", "security.capability").as_deref(),
            Some(&CAP_NET_RAW[..])
        );
        assert_eq!(get("d", "user.dir").as_deref(), Some(&b"yes"[..]));
        assert_eq!(get("l", "trusted.linkattr").as_deref(), Some(&b"v"[..]));
    }
}

#[test]
fn device_nodes_and_fifos() {
    if skip_unless_root("device_nodes_and_fifos") {
        return;
    }
    let tar = Layer::new()
        .dir("dev")
        .add(Entry::node("dev/null", EntryType::Char, 1, 3).mode(0o666))
        .add(
            Entry::node("dev/loop0", EntryType::Block, 7, 0)
                .mode(0o660)
                .owner(0, 6),
        )
        .add(Entry::node("dev/big", EntryType::Char, 4000, 70000).mode(0o600))
        .add(Entry::node("dev/fifo", EntryType::Fifo, 0, 0).mode(0o620))
        .tar();
    for mode in BOTH {
        let area = Area::new();
        unpack_tar(&tar, &area.dest, mode).expect("unpack");
        let null = lstat(&area.dest.join("dev/null"));
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        let lp = lstat(&area.dest.join("dev/loop0"));
        assert!(lp.file_type().is_block_device());
        assert_eq!((lp.rdev(), lp.gid()), (rustix::fs::makedev(7, 0), 6));
        assert_eq!(
            lstat(&area.dest.join("dev/big")).rdev(),
            rustix::fs::makedev(4000, 70000)
        );
        let fifo = lstat(&area.dest.join("dev/fifo"));
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o620);
    }
}

#[test]
fn hardlinks_share_inodes() {
    if skip_unless_root("hardlinks_share_inodes") {
        return;
    }
    let tar = Layer::new()
        .dir("bin")
        .add(Entry::file("bin/busybox", b"elf").mode(0o755))
        .hardlink("bin/sh", "bin/busybox")
        .hardlink("bin/ls", "./bin/busybox")
        .symlink("target-link", "bin/busybox")
        // A link to a symlink links the symlink itself.
        .hardlink("link-to-symlink", "target-link")
        .tar();
    for mode in BOTH {
        let area = Area::new();
        let got = unpack_tar(&tar, &area.dest, mode).expect("unpack");
        assert_eq!(got.entries, 6);
        let ino = |p: &str| lstat(&area.dest.join(p)).ino();
        assert_eq!(ino("bin/sh"), ino("bin/busybox"));
        assert_eq!(ino("bin/ls"), ino("bin/busybox"));
        assert_eq!(lstat(&area.dest.join("bin/busybox")).nlink(), 3);
        assert_eq!(ino("link-to-symlink"), ino("target-link"));
        assert!(lstat(&area.dest.join("link-to-symlink"))
            .file_type()
            .is_symlink());
    }
}

#[test]
fn hardlink_errors() {
    for (name, tar, entry) in [
        ("missing", Layer::new().hardlink("h", "nothere").tar(), "h"),
        (
            "directory",
            Layer::new().dir("d").hardlink("h", "d").tar(),
            "h",
        ),
    ] {
        let area = Area::new();
        let err = unpack_tar(&tar, &area.dest, Whiteouts::Overlay).expect_err(name);
        assert_names(&err, &layer_name(&tar), entry);
    }
}

#[test]
fn deep_tree_300_levels() {
    if skip_unless_root("deep_tree_300_levels") {
        return;
    }
    let mut l = Layer::new();
    let mut p = String::new();
    for i in 0..300 {
        if i > 0 {
            p.push('/');
        }
        p.push_str(&format!("{}", i % 10));
        l.add(Entry::dir(&p).mtime(MTIME + i));
    }
    l.file(&format!("{p}/leaf"), b"deep");
    let tar = l.tar();
    for mode in BOTH {
        let area = Area::new();
        unpack_tar(&tar, &area.dest, mode).expect("unpack");
        let leaf = area.dest.join(&p).join("leaf");
        assert_eq!(fs::read(&leaf).expect("read"), b"deep");
        assert_eq!(lstat(&area.dest.join(&p)).mtime(), (MTIME + 299) as i64);
    }
}

#[test]
fn large_sparse_file_keeps_its_holes() {
    if skip_unless_root("large_sparse_file_keeps_its_holes") {
        return;
    }
    let size: u64 = 4 << 30; // 4 GiB logical
    let tar = Layer::new()
        .add(Entry::sparse(
            "sparse",
            size,
            vec![
                (0, vec![1u8; 4096]),
                (1 << 30, vec![2u8; 4096]),
                (size - 4096, vec![3u8; 4096]),
            ],
        ))
        .tar();
    let area = Area::new();
    unpack_tar(&tar, &area.dest, Whiteouts::Overlay).expect("unpack");
    let p = area.dest.join("sparse");
    let md = lstat(&p);
    assert_eq!(md.size(), size);
    assert!(
        md.blocks() * 512 < 16 << 20,
        "holes written: {} blocks",
        md.blocks()
    );
    let f = fs::File::open(&p).expect("open");
    let at = |off: u64| {
        let mut b = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, off).expect("read");
        b[0]
    };
    assert_eq!((at(0), at(4095), at(4096)), (1, 1, 0));
    assert_eq!((at(1 << 30), at((1 << 30) + 4096)), (2, 0));
    assert_eq!((at(size - 4096), at(size - 1), at(size / 2)), (3, 3, 0));
}

/// As root, runs `unprivileged_unpack_inner` as nobody (setpriv), since the process
/// itself cannot drop root without affecting the other tests.
#[test]
fn unprivileged_unpack() {
    if !common::is_root() {
        return unprivileged_unpack_inner();
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = match std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "--exact",
            "unprivileged_unpack_inner",
            "--ignored",
            "--nocapture",
        ])
        .current_dir("/")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipping unprivileged_unpack: cannot run setpriv: {e}");
            return;
        }
    };
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "unprivileged run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by unprivileged_unpack as an unprivileged user"]
fn unprivileged_unpack_inner() {
    assert!(!common::is_root(), "meant to run unprivileged");
    let tar = Layer::new()
        .add(Entry::dir("ro").mode(0o555).owner(0, 0))
        .add(
            Entry::file("ro/f", b"f")
                .mode(0o444)
                .owner(0, 0)
                .xattr("user.x", b"1"),
        )
        .add(Entry::file("suid", b"s").mode(0o4755).owner(0, 0))
        .symlink("l", "ro/f")
        .hardlink("h", "ro/f")
        .add(Entry::node("null", EntryType::Char, 1, 3))
        .add(Entry::node("fifo", EntryType::Fifo, 0, 0).mode(0o600))
        .tar();
    let area = Area::new();
    let mut o = opts(&layer_name(&tar), Whiteouts::Apply);
    o.same_owner = false;
    let got = unpack::unpack(&tar[..], Compression::None, &area.dest, &o).expect("unpack");
    assert_eq!(got.entries, 7);
    let me = rustix::process::geteuid().as_raw();
    let ro = lstat(&area.dest.join("ro"));
    assert_eq!((ro.mode() & 0o7777, ro.uid()), (0o555, me));
    let f = lstat(&area.dest.join("ro/f"));
    assert_eq!((f.mode() & 0o7777, f.uid(), f.nlink()), (0o444, me, 2));
    assert_eq!(lstat(&area.dest.join("suid")).mode() & 0o7777, 0o4755);
    assert!(lstat(&area.dest.join("fifo")).file_type().is_fifo());
    assert!(!exists(&area.dest.join("null")), "device nodes are skipped");
    // tmpfs and ext4 both take user.* xattrs from their owner.
    assert_eq!(
        xattr::get(area.dest.join("ro/f"), "user.x")
            .expect("get")
            .as_deref(),
        Some(&b"1"[..])
    );
    // Writable again, or the temporary directory could not be removed.
    fs::set_permissions(
        area.dest.join("ro"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
}

// ---------------------------------------------------------------- replacement

#[test]
fn replacement_semantics() {
    if skip_unless_root("replacement_semantics") {
        return;
    }
    let area = Area::new();
    let l1 = Layer::new()
        .dir("d")
        .file("d/keep", b"kept")
        .add(Entry::dir("d2").mode(0o700))
        .file("d2/child", b"c")
        .dir("tree")
        .dir("tree/sub")
        .file("tree/sub/f", b"f")
        .file("file", b"old")
        .symlink("link", &area.canary.join("secret").to_string_lossy())
        .file("becomes-dir", b"x")
        .tar();
    let l2 = Layer::new()
        // dir over dir: kept, metadata updated
        .add(Entry::dir("d2").mode(0o755).owner(7, 7))
        // non-dir over dir: the tree goes
        .file("tree", b"now a file")
        // file over file
        .file("file", b"new")
        // file over a symlink: the link is replaced, its target untouched
        .file("link", b"not through the link")
        // dir over file
        .dir("becomes-dir")
        // symlink over dir
        .symlink("d", "d2")
        .tar();
    let before = area.outside();
    unpack_tar(&l1, &area.dest, Whiteouts::Apply).expect("l1");
    unpack_tar(&l2, &area.dest, Whiteouts::Apply).expect("l2");
    let dest = &area.dest;
    let d2 = lstat(&dest.join("d2"));
    assert_eq!((d2.mode() & 0o7777, d2.uid()), (0o755, 7));
    assert_eq!(fs::read(dest.join("d2/child")).expect("child"), b"c");
    assert_eq!(fs::read(dest.join("tree")).expect("tree"), b"now a file");
    assert_eq!(fs::read(dest.join("file")).expect("file"), b"new");
    assert!(lstat(&dest.join("link")).is_file());
    assert_eq!(
        fs::read(area.canary.join("secret")).expect("canary"),
        b"canary"
    );
    assert!(lstat(&dest.join("becomes-dir")).is_dir());
    assert_eq!(
        fs::read_link(dest.join("d")).expect("d"),
        PathBuf::from("d2")
    );
    assert_eq!(area.outside(), before);
}

#[test]
fn dir_listed_twice_takes_the_last_metadata() {
    if skip_unless_root("dir_listed_twice_takes_the_last_metadata") {
        return;
    }
    let tar = Layer::new()
        .add(Entry::dir("d").mode(0o700).mtime(1))
        .file("d/f", b"f")
        .add(Entry::dir("d").mode(0o751).mtime(2))
        .tar();
    for mode in BOTH {
        let area = Area::new();
        unpack_tar(&tar, &area.dest, mode).expect("unpack");
        let d = lstat(&area.dest.join("d"));
        assert_eq!((d.mode() & 0o7777, d.mtime()), (0o751, 2));
        assert!(exists(&area.dest.join("d/f")));
    }
}

#[test]
fn replaced_directory_behind_a_symlink_is_not_written_into() {
    // l/sub is resolved through l -> d; replacing d with a file must make l/sub/y fail
    // (its parent is gone), not land in the removed directory.
    let tar = Layer::new()
        .dir("d")
        .dir("d/sub")
        .symlink("l", "d")
        .file("l/sub/x", b"x")
        .file("d", b"now a file")
        .file("l/sub/y", b"y")
        .tar();
    for mode in BOTH {
        let area = Area::new();
        let err = unpack_tar(&tar, &area.dest, mode).expect_err("parent is a file now");
        assert_names(&err, &layer_name(&tar), "l/sub/y");
    }
}

// ---------------------------------------------------------------- whiteouts

#[test]
fn whiteouts_overlay_mode() {
    if skip_unless_root("whiteouts_overlay_mode") {
        return;
    }
    let tar = Layer::new()
        .dir("etc")
        .whiteout("etc/gone")
        .whiteout("top")
        .dir("opq")
        .opaque("opq")
        .file("opq/new", b"n")
        .opaque("implicit/dir")
        .tar();
    let area = Area::new();
    let got = unpack_tar(&tar, &area.dest, Whiteouts::Overlay).expect("unpack");
    assert_eq!(got.entries, 7);
    for wh in ["etc/gone", "top"] {
        let md = lstat(&area.dest.join(wh));
        assert!(md.file_type().is_char_device(), "{wh}");
        assert_eq!(md.rdev(), 0, "{wh}");
    }
    let opaque = |p: &str| xattr::get(area.dest.join(p), "trusted.overlay.opaque").expect("get");
    assert_eq!(opaque("opq").as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque("implicit/dir").as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque("etc"), None);
    assert!(!exists(&area.dest.join("opq/.wh..wh..opq")));
    assert!(exists(&area.dest.join("opq/new")));
}

#[test]
fn whiteouts_apply_mode_with_opaque_marker_after_siblings() {
    if skip_unless_root("whiteouts_apply_mode_with_opaque_marker_after_siblings") {
        return;
    }
    let l1 = Layer::new()
        .dir("etc")
        .file("etc/gone", b"g")
        .file("etc/stays", b"s")
        .dir("tree")
        .file("tree/x", b"x")
        .dir("opq")
        .file("opq/old", b"o")
        .dir("opq/sub")
        .file("opq/sub/old", b"o")
        .file("opq/sub/replaced", b"old")
        .dir("late")
        .file("late/old", b"o")
        .dir("late/sub")
        .file("late/sub/old", b"o")
        .tar();
    let l2 = Layer::new()
        .whiteout("etc/gone")
        .whiteout("tree")
        .whiteout("never-existed")
        .whiteout("no/such/dir/x")
        // marker first, as the spec recommends
        .opaque("opq")
        .dir("opq/sub")
        .file("opq/sub/replaced", b"new")
        // marker after this layer's own entries in the directory
        .file("late/new", b"n")
        .file("late/sub/new", b"n")
        .opaque("late")
        .tar();
    let area = Area::new();
    unpack_tar(&l1, &area.dest, Whiteouts::Apply).expect("l1");
    unpack_tar(&l2, &area.dest, Whiteouts::Apply).expect("l2");
    let listing = |p: &str| {
        let mut v: Vec<String> = fs::read_dir(area.dest.join(p))
            .expect("read_dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing("etc"), ["stays"]);
    assert!(!exists(&area.dest.join("tree")));
    assert_eq!(listing("opq"), ["sub"]);
    assert_eq!(listing("opq/sub"), ["replaced"]);
    assert_eq!(
        fs::read(area.dest.join("opq/sub/replaced")).expect("r"),
        b"new"
    );
    assert_eq!(listing("late"), ["new", "sub"]);
    assert_eq!(listing("late/sub"), ["new"]);
    assert!(!exists(&area.dest.join("no")));
}

#[test]
fn opaque_root_after_a_deeper_whiteout() {
    if skip_unless_root("opaque_root_after_a_deeper_whiteout") {
        return;
    }
    let l1 = Layer::new()
        .dir("a")
        .dir("a/b")
        .file("a/b/old", b"o")
        .file("a/b/old2", b"o")
        .file("top", b"t")
        .tar();
    // The whiteout resolves (and caches) a/b, which the root's opaque marker then removes;
    // a/b/new must land in a fresh a/b, not in the removed one.
    let l2 = Layer::new()
        .whiteout("a/b/old")
        .opaque("")
        .file("a/b/new", b"n")
        .tar();
    let area = Area::new();
    unpack_tar(&l1, &area.dest, Whiteouts::Apply).expect("l1");
    unpack_tar(&l2, &area.dest, Whiteouts::Apply).expect("l2");
    assert_eq!(fs::read(area.dest.join("a/b/new")).expect("new"), b"n");
    assert!(!exists(&area.dest.join("a/b/old2")));
    assert!(!exists(&area.dest.join("top")));
}

#[test]
fn trusted_overlay_xattrs_from_the_tar_are_ignored() {
    if skip_unless_root("trusted_overlay_xattrs_from_the_tar_are_ignored") {
        return;
    }
    let tar = Layer::new()
        .add(Entry::dir("d").xattr("trusted.overlay.opaque", b"y"))
        .add(
            Entry::file("f", b"x")
                .xattr("trusted.overlay.redirect", b"/etc")
                .xattr("user.overlay.opaque", b"y")
                .xattr("user.ok", b"1"),
        )
        .tar();
    for mode in BOTH {
        let area = Area::new();
        unpack_tar(&tar, &area.dest, mode).expect("unpack");
        let names = |p: &str| -> Vec<String> {
            xattr::list(area.dest.join(p))
                .expect("list")
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        };
        assert!(
            names("d").iter().all(|n| !n.contains("overlay")),
            "{:?}",
            names("d")
        );
        assert_eq!(names("f"), ["user.ok"]);
    }
}

// ---------------------------------------------------------------- speed (manual)

/// Times berth unpacking a gzip layer, for comparison with `gzip -dc | wc -c` and
/// `tar -xzf`. Manual: `BERTH_UNPACK_BENCH=layer.tar.gz cargo test --release -p
/// berth-image --test unpack -- --ignored bench_unpack --nocapture`. No timed assertions.
#[test]
#[ignore]
fn bench_unpack() {
    let Ok(layer) = std::env::var("BERTH_UNPACK_BENCH") else {
        eprintln!("skipping bench_unpack: set BERTH_UNPACK_BENCH to a .tar.gz layer");
        return;
    };
    let dest_parent = std::env::var("BERTH_UNPACK_BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
    let mode = match std::env::var("BERTH_UNPACK_BENCH_MODE").as_deref() {
        Ok("apply") => Whiteouts::Apply,
        _ => Whiteouts::Overlay,
    };
    // berth's own floors: zlib-rs alone, then with sha256 on the same thread; no tar, no
    // files.
    for hash in [false, true] {
        let t = std::time::Instant::now();
        let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
            256 << 10,
            fs::File::open(&layer).expect("open layer"),
        ));
        let mut h = berth_distribution::Hasher::new(berth_distribution::digest::Algorithm::Sha256);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = dec.read(&mut buf).expect("gunzip");
            if k == 0 {
                break;
            }
            if hash {
                h.update(&buf[..k]);
            }
            n += k as u64;
        }
        eprintln!(
            "floor: zlib-rs gunzip{}: {} MB in {:?}",
            if hash { " + sha256" } else { "" },
            n / 1_000_000,
            t.elapsed()
        );
    }
    let area = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in(dest_parent)
        .expect("tempdir");
    let file = fs::File::open(&layer).expect("open layer");
    let mut o = opts("sha256:bench", mode);
    o.same_owner = common::is_root();
    let t = std::time::Instant::now();
    let got = unpack::unpack(file, Compression::Gzip, area.path(), &o).expect("unpack");
    let el = t.elapsed();
    eprintln!(
        "berth unpack ({mode:?}): {} entries, {} MB uncompressed in {el:?} ({:.0} MB/s); diff_id {}",
        got.entries,
        got.size / 1_000_000,
        got.size as f64 / 1e6 / el.as_secs_f64(),
        got.diff_id
    );
}
