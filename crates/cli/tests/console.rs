//! process.terminal with --console-socket: the pty master arrives over SCM_RIGHTS, the
//! container's stdio is the pty, and /dev/console is its peer.

mod common;
use common::*;

#[test]
fn console_socket_receives_a_working_pty() {
    require_root!();
    let rt = Runtime::berth();
    let mut b = Bundle::busybox(&["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; stat -c %t /dev/console; readlink /proc/self/fd/1"]).expect("bundle");
    b.edit(|c| c["process"]["terminal"] = true.into())
        .expect("edit");
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let id = unique_id("tty");
    let sock_s = sock.to_str().expect("utf8").to_string();
    let b_dir = b.dir.to_str().expect("utf8").to_string();
    let root = rt.root.path().to_str().expect("utf8").to_string();
    let id2 = id.clone();
    let creator = std::thread::spawn(move || {
        std::process::Command::new(berth_oci())
            .args([
                "--root",
                &root,
                "create",
                "--console-socket",
                &sock_s,
                "--bundle",
                &b_dir,
                &id2,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("create")
    });
    let stream = accept_within(&listener, 30);
    let master = receive_fd(&stream);
    let out = creator.join().expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rt.run(&["start", &id]).code, 0);
    let text = read_pty_until(master, "/dev/pts/");
    assert!(text.contains("is-a-tty"), "{text:?}");
    assert!(
        text.contains("88") || text.contains("/dev/pts/0"),
        "{text:?}"
    );
    rt.wait_status(&id, "stopped");
    assert_eq!(rt.run(&["delete", &id]).code, 0);
}
