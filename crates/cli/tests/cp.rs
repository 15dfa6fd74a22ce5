//! `berth cp`: files and directories in and out of running and stopped containers,
//! tar streams both ways, volumes; and a hostile container's symlinks and tar entries,
//! which must never reach the host.

mod common;

use common::host::Host;
use common::Out;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

/// Removes the named containers and volumes however the test ends.
struct Cleanup<'a> {
    h: &'a Host,
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl<'a> Cleanup<'a> {
    fn new(h: &'a Host) -> Self {
        Cleanup {
            h,
            containers: vec![],
            volumes: vec![],
        }
    }

    fn run_d(&mut self, name: &str, flags: &[&str]) {
        self.containers.push(name.into());
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&self.h.image, "sleep", "1000"]);
        let o = self.h.berth(&args);
        assert_eq!(o.code, 0, "run -d {name}: {}", o.stderr);
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.containers {
            let _ = self.h.berth(&["rm", "-f", n]);
        }
        for v in &self.volumes {
            let _ = self.h.berth(&["volume", "rm", "-f", v]);
        }
    }
}

fn sh(h: &Host, c: &str, cmd: &str) -> String {
    let o = h.berth(&["exec", c, "sh", "-c", cmd]);
    assert_eq!(o.code, 0, "exec {cmd}: {}", o.stderr);
    o.stdout
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

fn ok(h: &Host, args: &[&str]) {
    let o = h.berth(args);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
}

/// `berth ARGS` with `input` on stdin; stdout as bytes.
fn berth_io(h: &Host, args: &[&str], input: &[u8]) -> (Out, Vec<u8>) {
    let mut child = h
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().expect("wait berth");
    feeder.join().expect("feeder");
    let bytes = o.stdout.clone();
    (o.into(), bytes)
}

/// The entries of a tar stream: (name, kind byte, uid, mode, content or link target).
fn tar_entries(bytes: &[u8]) -> Vec<(String, u8, u64, u32, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = vec![];
    for e in ar.entries().expect("tar") {
        let mut e = e.expect("entry");
        let h = e.header().clone();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = vec![];
        match e.link_name_bytes() {
            Some(l) => data = l.into_owned(),
            None => {
                e.read_to_end(&mut data).expect("read entry");
            }
        }
        out.push((
            name,
            h.entry_type().as_byte(),
            h.uid().expect("uid"),
            h.mode().expect("mode") & 0o7777,
            data,
        ));
    }
    out
}

/// name, type byte, link target, data.
type RawEntry<'a> = (&'a [u8], u8, &'a [u8], &'a [u8]);

/// A tar with raw names (the tar crate's builder refuses `..`, which is the point).
fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

#[test]
fn files_and_directories_in_and_out_of_a_running_container() {
    let Some(h) = Host::new() else { return };
    let mut c = Cleanup::new(&h);
    c.volumes.push("cpvol".into());
    c.run_d("cpr", &["-v", "cpvol:/data"]);
    let src = h.dir.path().join("src");
    std::fs::create_dir_all(src.join("d/sub")).expect("mkdir");
    std::fs::write(src.join("f.txt"), "hello").expect("write");
    std::fs::set_permissions(src.join("f.txt"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    std::os::unix::fs::chown(src.join("f.txt"), Some(1234), Some(5678)).expect("chown");
    std::fs::write(src.join("d/sub/x"), "deep").expect("write");
    std::fs::set_permissions(src.join("d/sub/x"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    std::os::unix::fs::symlink("/etc/shadow", src.join("d/link")).expect("symlink");
    // A socket in a tree is skipped (a live endpoint, not data): see the names below.
    let _sock = std::os::unix::net::UnixListener::bind(src.join("d/sock")).expect("socket");
    let f = p(&src.join("f.txt")).to_string();
    let d = p(&src.join("d")).to_string();

    // A file into a directory (its name kept), owned by the container's root...
    ok(&h, &["cp", &f, "cpr:/tmp/"]);
    let stat = "stat -c '%a %u %g' ";
    assert_eq!(
        sh(&h, "cpr", &format!("{stat}/tmp/f.txt; cat /tmp/f.txt")),
        "640 0 0\nhello"
    );
    // ... or keeping its owners with -a, under a new name.
    ok(&h, &["cp", "-a", &f, "cpr:/tmp/fa"]);
    assert_eq!(sh(&h, "cpr", &format!("{stat}/tmp/fa")), "640 1234 5678\n");
    // A directory to a missing path becomes it; into an existing one, goes in it; with
    // "/." its content goes in. Symlinks stay symlinks.
    ok(&h, &["cp", &d, "cpr:/tmp/newd"]);
    ok(&h, &["cp", &d, "cpr:/tmp"]);
    sh(&h, "cpr", "mkdir /tmp/e");
    ok(&h, &["cp", &format!("{d}/."), "cpr:/tmp/e"]);
    assert_eq!(
        sh(
            &h,
            "cpr",
            &format!("cat /tmp/newd/sub/x /tmp/d/sub/x /tmp/e/sub/x; {stat}/tmp/e/sub/x; busybox readlink /tmp/newd/link")
        ),
        "deepdeepdeep600 0 0\n/etc/shadow\n"
    );
    // A directory onto a file, or a file into a missing directory: refused as docker does.
    let o = h.berth(&["cp", &d, "cpr:/tmp/f.txt"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("cannot copy a directory onto a non-directory"),
        "{}",
        o.stderr
    );
    let o = h.berth(&["cp", &f, "cpr:/tmp/nodir/"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let o = h.berth(&["cp", &f, "cpr:/no/such/x"]);
    assert!(
        o.stderr.contains("parent directory does not exist"),
        "{}",
        o.stderr
    );

    // Out: modes kept, owners the caller's, set-id bits dropped; all kept with -a.
    sh(
        &h,
        "cpr",
        "echo s > /tmp/owned; busybox chown 1000:50 /tmp/owned; busybox chmod 4755 /tmp/owned",
    );
    let out = h.dir.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    ok(&h, &["cp", "cpr:/tmp/owned", p(&out.join("plain"))]);
    ok(&h, &["cp", "-a", "cpr:/tmp/owned", p(&out.join("kept"))]);
    let m = |n: &str| std::fs::symlink_metadata(out.join(n)).expect("stat");
    assert_eq!((m("plain").uid(), m("plain").mode() & 0o7777), (0, 0o755));
    assert_eq!(
        (m("kept").uid(), m("kept").gid(), m("kept").mode() & 0o7777),
        (1000, 50, 0o4755)
    );
    // `container cp` is cp.
    ok(
        &h,
        &["container", "cp", "cpr:/tmp/newd", p(&out.join("tree"))],
    );
    ok(&h, &["cp", "cpr:/etc/passwd", &format!("{}/", p(&out))]);
    assert_eq!(
        std::fs::read_to_string(out.join("tree/sub/x")).expect("read"),
        "deep"
    );
    assert_eq!(m("tree/sub/x").mode() & 0o7777, 0o600);
    assert_eq!(
        std::fs::read_link(out.join("tree/link")).expect("link"),
        Path::new("/etc/shadow")
    );
    assert!(std::fs::read_to_string(out.join("passwd"))
        .expect("read")
        .contains("app:x:1000"));

    // Streams: out as a tar with the container's owners; in, extracted under DEST.
    let (o, bytes) = berth_io(&h, &["cp", "cpr:/tmp/newd", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let entries = tar_entries(&bytes);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["newd/", "newd/link", "newd/sub/", "newd/sub/x"]);
    assert_eq!(
        (entries[1].1, &entries[1].4[..]),
        (b'2', &b"/etc/shadow"[..])
    );
    assert_eq!((entries[3].3, &entries[3].4[..]), (0o600, &b"deep"[..]));
    // -L copies what a source symlink points to, under the link's name.
    sh(&h, "cpr", "busybox ln -s /tmp/f.txt /tmp/lnk");
    let (o, bytes) = berth_io(&h, &["cp", "cpr:/tmp/lnk", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let e = &tar_entries(&bytes)[0];
    assert_eq!(
        (e.0.as_str(), e.1, &e.4[..]),
        ("lnk", b'2', &b"/tmp/f.txt"[..])
    );
    let (o, bytes) = berth_io(&h, &["cp", "-L", "cpr:/tmp/lnk", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let e = &tar_entries(&bytes)[0];
    assert_eq!((e.0.as_str(), e.1, &e.4[..]), ("lnk", b'0', &b"hello"[..]));
    let (o, bytes) = berth_io(&h, &["cp", "cpr:/tmp/fa", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        tar_entries(&bytes)[0].2,
        1234,
        "the stream keeps the owners"
    );
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_size(3);
    hd.set_mode(0o751);
    hd.set_uid(77);
    b.append_data(&mut hd, "in/a", &b"abc"[..]).expect("tar");
    let mut hd = tar::Header::new_gnu();
    hd.set_entry_type(tar::EntryType::Symlink);
    hd.set_size(0);
    b.append_link(&mut hd, "in/l", "/etc/passwd").expect("tar");
    let stream = b.into_inner().expect("tar");
    let (o, _) = berth_io(&h, &["cp", "-", "cpr:/tmp"], &stream);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (o, _) = berth_io(&h, &["cp", "-a", "-", "cpr:/tmp/e"], &stream);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        sh(
            &h,
            "cpr",
            &format!("cat /tmp/in/a; {stat}/tmp/in/a /tmp/e/in/a; busybox readlink /tmp/in/l")
        ),
        "abc751 0 0\n751 77 0\n/etc/passwd\n"
    );
    // A tar stream needs a directory to go in.
    let (o, _) = berth_io(&h, &["cp", "-", "cpr:/tmp/f.txt"], &stream);
    assert_eq!(o.code, 1, "{}", o.stderr);

    // A named volume of the running container: the container's view, mounts included.
    ok(&h, &["cp", &f, "cpr:/data/"]);
    let vol = h.dir.path().join("root/volumes/cpvol/_data/f.txt");
    assert_eq!(
        std::fs::read_to_string(&vol).expect("in the volume"),
        "hello"
    );
    let (o, bytes) = berth_io(&h, &["cp", "cpr:/data/f.txt", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(tar_entries(&bytes)[0].4, b"hello");

    // Throughput (printed, not asserted: debug builds, shared machine).
    let big = h.dir.path().join("big");
    std::fs::write(&big, vec![7u8; 128 << 20]).expect("write");
    let t = std::time::Instant::now();
    ok(&h, &["cp", p(&big), "cpr:/tmp/big"]);
    let t_in = t.elapsed();
    let t = std::time::Instant::now();
    ok(&h, &["cp", "cpr:/tmp/big", p(&out.join("big"))]);
    let t_out = t.elapsed();
    let t = std::time::Instant::now();
    let (o, bytes) = berth_io(&h, &["cp", "cpr:/tmp/big", "-"], b"");
    let t_tar = t.elapsed();
    assert_eq!(
        (o.code, bytes.len() >= 128 << 20),
        (0, true),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::metadata(out.join("big")).expect("stat").len(),
        128 << 20
    );
    eprintln!("128 MiB: in {t_in:?}, out {t_out:?}, out as tar {t_tar:?}");

    // Kernel filesystems are neither read nor written.
    for args in [
        ["cp", f.as_str(), "cpr:/proc/"],
        ["cp", "cpr:/proc/cpuinfo", p(&out)],
    ] {
        let o = h.berth(&args);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("kernel filesystem"), "{}", o.stderr);
    }

    // Not found: the container (3), the path in it (3, saying which).
    let o = h.berth(&["cp", "cpr:/nope", p(&out)]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("container cpr: no such file or directory: nope"),
        "{}",
        o.stderr
    );
    let o = h.berth(&["cp", "no-such-container:/etc", "-"]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    let o = h.berth(&["cp", &f, p(&out)]);
    assert_eq!(o.code, 2, "{}", o.stderr);

    drop(c);
    h.assert_clean();
}

#[test]
fn a_stopped_container_is_copied_from_its_snapshot() {
    let Some(h) = Host::new() else { return };
    let mut c = Cleanup::new(&h);
    c.containers.push("cps".into());
    c.volumes.push("cpsvol".into());
    let o = h.berth(&[
        "run",
        "--name",
        "cps",
        "-v",
        "cpsvol:/data",
        &h.image,
        "sh",
        "-c",
        "echo ran > /etc/motd",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mounted = || {
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        info.contains(p(&h.runroot()))
    };
    assert!(!mounted(), "an exited container's rootfs is unmounted");

    let f = h.dir.path().join("f");
    std::fs::write(&f, "into stopped").expect("write");
    ok(&h, &["cp", p(&f), "cps:/tmp/f"]);
    assert!(!mounted(), "cp unmounts what it mounted");
    let (o, bytes) = berth_io(&h, &["cp", "cps:/tmp/f", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(tar_entries(&bytes)[0].4, b"into stopped");
    let out = h.dir.path().join("motd");
    ok(&h, &["cp", "cps:/etc/motd", p(&out)]);
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "ran\n");
    // Its volume is not mounted: refused, saying why.
    let o = h.berth(&["cp", p(&f), "cps:/data/x"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(o.stderr.contains("start it"), "{}", o.stderr);
    let o = h.berth(&["cp", "cps:/data", "-"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(!mounted());
    // A path missing under a mount says why too.
    let o = h.berth(&["cp", "cps:/data/not-here", "-"]);
    assert_eq!(o.code, 6, "{}", o.stderr);
    // It still starts after cp mounted and unmounted its rootfs.
    let o = h.berth(&["start", "-a", "cps"]);
    assert_eq!(o.code, 0, "{}", o.stderr);

    drop(c);
    h.assert_clean();
}

#[test]
fn a_hostile_container_cannot_reach_the_host() {
    let Some(h) = Host::new() else { return };
    let mut c = Cleanup::new(&h);
    c.run_d("cph", &[]);
    let hostdir = h.dir.path().join("host-secret");
    std::fs::create_dir(&hostdir).expect("mkdir");
    std::fs::write(hostdir.join("secret"), "HOST").expect("write");
    let probe = format!("berth-cp-probe-{}", std::process::id());
    sh(
        &h,
        "cph",
        &format!(
            "echo container-shadow > /etc/shadow; busybox ln -s / /out; busybox ln -s /root /in; \
             busybox ln -s {hd} /in2; busybox ln -s {hd}/secret /hs; mkdir /tmp/t; \
             busybox ln -s /etc /tmp/t/evil; echo t > /tmp/t/f",
            hd = p(&hostdir)
        ),
    );

    // Reading through `/out -> /` reads the container's /etc/shadow.
    let (o, bytes) = berth_io(&h, &["cp", "cph:/out/etc/shadow", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(tar_entries(&bytes)[0].4, b"container-shadow\n");
    // A link to a host path is copied as a link; followed (-L), it leads nowhere.
    let (o, bytes) = berth_io(&h, &["cp", "cph:/hs", "-"], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(tar_entries(&bytes)[0].1, b'2');
    for args in [
        vec!["cp", "-L", "cph:/hs", "-"],
        vec!["cp", "cph:/in2/secret", "-"],
    ] {
        let (o, bytes) = berth_io(&h, &args, b"");
        assert_eq!(o.code, 3, "{args:?}: {}", o.stderr);
        assert!(!String::from_utf8_lossy(&bytes).contains("HOST"));
    }
    // A tree's symlinks come out as symlinks, not as what they point to.
    let out = h.dir.path().join("t-out");
    ok(&h, &["cp", "cph:/tmp/t", p(&out)]);
    assert_eq!(
        std::fs::read_link(out.join("evil")).expect("link"),
        Path::new("/etc")
    );

    // Writing through `/in -> /root` writes the container's /root.
    let f = h.dir.path().join("f");
    std::fs::write(&f, "x").expect("write");
    ok(&h, &["cp", p(&f), &format!("cph:/in/{probe}")]);
    assert!(
        !Path::new("/root").join(&probe).exists(),
        "wrote the host's /root"
    );
    assert_eq!(sh(&h, "cph", &format!("cat /root/{probe}")), "x");
    let o = h.berth(&["cp", p(&f), "cph:/in2/x"]);
    assert_ne!(o.code, 0);
    assert!(!hostdir.join("x").exists(), "wrote the host's directory");

    // Tar streams: names climbing out, and links written through, are refused.
    let host_tmp = Path::new("/tmp").join(&probe);
    let hostile: Vec<Vec<u8>> = vec![
        raw_tar(&[(b"../../x", b'0', b"", b"x")]),
        raw_tar(&[(b"a/../../x", b'0', b"", b"x")]),
        raw_tar(&[
            (b"l", b'2', b"/", b""),
            (format!("l/tmp/{probe}").as_bytes(), b'0', b"", b"pwned"),
        ]),
        raw_tar(&[
            (b"l2", b'2', b"../../../../tmp", b""),
            (format!("l2/{probe}").as_bytes(), b'0', b"", b"pwned"),
        ]),
        raw_tar(&[(b"hl", b'1', b"../../etc/passwd", b"")]),
    ];
    for t in &hostile {
        let (o, _) = berth_io(&h, &["cp", "-", "cph:/tmp/t"], t);
        assert_eq!(o.code, 7, "{}", o.stderr);
        assert!(o.stderr.contains("refusing"), "{}", o.stderr);
        assert!(!host_tmp.exists(), "wrote the host's /tmp");
    }
    assert_eq!(
        sh(
            &h,
            "cph",
            &format!("ls /x /tmp/{probe} 2>&1 | grep -c 'No such'")
        ),
        "2\n"
    );
    // An absolute name stays under the destination, as with tar.
    let (o, _) = berth_io(
        &h,
        &["cp", "-", "cph:/tmp/t"],
        &raw_tar(&[(b"/abs", b'0', b"", b"in")]),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(sh(&h, "cph", "cat /tmp/t/abs"), "in");
    // A directory entry where the container put a symlink is refused, not followed.
    let (o, _) = berth_io(
        &h,
        &["cp", "-", "cph:/tmp/t"],
        &raw_tar(&[(b"evil/", b'5', b"", b""), (b"evil/pwned", b'0', b"", b"x")]),
    );
    assert_eq!(o.code, 7, "{}", o.stderr);

    drop(c);
    h.assert_clean();
}
