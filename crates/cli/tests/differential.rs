//! Differential tests: the same bundle through runc and berth-oci gives the same exit
//! codes and the same state JSON fields.

mod common;
use common::*;

fn runc() -> Option<&'static str> {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

#[test]
fn exit_codes_match_runc() {
    require_root!();
    let Some(runc) = runc() else {
        eprintln!("SKIP: runc not installed");
        return;
    };
    for script in [
        "true",
        "exit 3",
        "exit 255",
        "kill -TERM $$; sleep 1",
        "/no/such/thing",
    ] {
        let mut codes = Vec::new();
        for bin in [runc, berth_oci()] {
            let rt = Runtime::with(bin);
            let mut b = Bundle::busybox(&["sh", "-c", script]).expect("bundle");
            b.edit(|c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .expect("ns")
                    .retain(|n| n["type"] != "pid")
            })
            .expect("edit");
            codes.push(rt.run_bundle(&b, &unique_id("diff")).code);
        }
        assert_eq!(
            codes[0], codes[1],
            "runc vs berth-oci exit code for {script:?}"
        );
    }
}

#[test]
fn state_fields_match_runc() {
    require_root!();
    let Some(runc) = runc() else {
        eprintln!("SKIP: runc not installed");
        return;
    };
    let mut docs = Vec::new();
    for bin in [runc, berth_oci()] {
        let rt = Runtime::with(bin);
        let b = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
        let id = "diffstate".to_string();
        assert_eq!(rt.create(&b, &id, &[]).code, 0, "{bin} create");
        let created = rt.state(&id);
        assert_eq!(rt.run(&["start", &id]).code, 0);
        let running = rt.state(&id);
        assert_eq!(rt.run(&["kill", &id, "KILL"]).code, 0);
        rt.wait_status(&id, "stopped");
        let stopped = rt.state(&id);
        let delete_running_code = {
            let b2 = Bundle::busybox(&["sleep", "1000"]).expect("bundle");
            let id2 = "diffstate2";
            assert_eq!(rt.create(&b2, id2, &[]).code, 0);
            assert_eq!(rt.run(&["start", id2]).code, 0);
            let c = rt.run(&["delete", id2]).code;
            rt.run(&["delete", "--force", id2]);
            c
        };
        let kill_stopped_code = rt.run(&["kill", &id, "KILL"]).code;
        assert_eq!(rt.run(&["delete", &id]).code, 0);
        let missing_code = rt.run(&["state", &id]).code;
        let canon = b.dir.canonicalize().expect("canon");
        docs.push((
            created,
            running,
            stopped,
            kill_stopped_code,
            delete_running_code,
            missing_code,
            canon,
        ));
    }
    let (r, o) = (&docs[0], &docs[1]);
    for (name, a, b) in [
        ("created", &r.0, &o.0),
        ("running", &r.1, &o.1),
        ("stopped", &r.2, &o.2),
    ] {
        assert_eq!(a["status"], b["status"], "{name} status");
        assert_eq!(a["id"], b["id"], "{name} id");
        assert_eq!(
            a["pid"].as_i64().map(|p| p > 0),
            b["pid"].as_i64().map(|p| p > 0),
            "{name} pid"
        );
        assert_eq!(
            a["bundle"].as_str(),
            Some(r.6.to_str().expect("utf8")),
            "{name} runc bundle"
        );
        assert_eq!(
            b["bundle"].as_str(),
            Some(o.6.to_str().expect("utf8")),
            "{name} berth bundle"
        );
        for key in [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
        ] {
            assert!(b.get(key).is_some(), "berth-oci state lacks {key}");
        }
    }
    assert_eq!(r.3, o.3, "kill of a stopped container");
    assert_eq!(r.4, o.4, "delete of a running container");
    assert_eq!(r.5, o.5, "state of a deleted container");
}
