#!/usr/bin/env python3
"""Build a tiny busybox OCI image-layout tar without network access.

Usage: mkimage.py OUT.tar [BUSYBOX_PATH] [REF_NAME]

The result can be imported with
  ctr -a SOCK -n NS image import --base-name localhost/busybox OUT.tar
giving localhost/busybox:latest (REF_NAME defaults to "latest").
Only the Python standard library is used.
"""
import gzip
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

APPLETS = ["sh", "true", "false", "sleep", "echo", "cat", "ls", "hostname",
           "id", "ps", "env", "mkdir", "rm", "test", "kill", "pwd", "uname"]
DIRS = ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "var"]


def arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def tinfo(name, **kw):
    ti = tarfile.TarInfo(name)
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def make_layer(busybox):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in DIRS:
            mode = 0o1777 if d == "tmp" else 0o755
            tf.addfile(tinfo(d + "/", type=tarfile.DIRTYPE, mode=mode))
        with open(busybox, "rb") as f:
            data = f.read()
        tf.addfile(tinfo("bin/busybox", size=len(data), mode=0o755), io.BytesIO(data))
        for a in APPLETS:
            tf.addfile(tinfo("bin/" + a, type=tarfile.SYMTYPE, linkname="busybox", mode=0o777))
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        group = b"root:x:0:\n"
        tf.addfile(tinfo("etc/passwd", size=len(passwd), mode=0o644), io.BytesIO(passwd))
        tf.addfile(tinfo("etc/group", size=len(group), mode=0o644), io.BytesIO(group))
    raw = buf.getvalue()
    gz = gzip.compress(raw, mtime=0)
    return raw, gz


def sha(b):
    return hashlib.sha256(b).hexdigest()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    busybox = sys.argv[2] if len(sys.argv) > 2 else "/bin/busybox"
    ref = sys.argv[3] if len(sys.argv) > 3 else "latest"

    blobs = {}

    def add_blob(b):
        d = sha(b)
        blobs[d] = b
        return "sha256:" + d

    raw, gz = make_layer(busybox)
    layer_digest = add_blob(gz)
    config = {
        "architecture": arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(raw)]},
        "history": [{"created_by": "berth tests/containerd/mkimage.py"}],
    }
    config_b = json.dumps(config, sort_keys=True).encode()
    config_digest = add_blob(config_b)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_b)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": len(gz)}],
    }
    manifest_b = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = add_blob(manifest_b)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": len(manifest_b),
            "platform": {"architecture": arch(), "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": ref},
        }],
    }
    index_b = json.dumps(index, sort_keys=True).encode()
    layout_b = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        def put(name, data):
            tf.addfile(tinfo(name, size=len(data), mode=0o644), io.BytesIO(data))
        put("oci-layout", layout_b)
        put("index.json", index_b)
        tf.addfile(tinfo("blobs/", type=tarfile.DIRTYPE, mode=0o755))
        tf.addfile(tinfo("blobs/sha256/", type=tarfile.DIRTYPE, mode=0o755))
        for d, b in sorted(blobs.items()):
            put("blobs/sha256/" + d, b)


if __name__ == "__main__":
    main()
