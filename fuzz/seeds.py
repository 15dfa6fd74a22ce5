#!/usr/bin/env python3
"""Seed corpus for the `unpack` fuzz target: mode byte, 16-bit cut point, two tar layers."""
import io, os, struct, tarfile

def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for kind, name, arg, pax in entries:
            ti = tarfile.TarInfo(name)
            ti.pax_headers = pax
            data = None
            if kind == "f":
                data = arg
                ti.size = len(arg)
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = arg
            elif kind == "h":
                ti.type = tarfile.LNKTYPE
                ti.linkname = arg
            elif kind == "c":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = arg
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()

def seed(mode, first, second):
    return bytes([mode]) + struct.pack("<H", len(first)) + first + second

l1 = tar([("d", "etc", None, {}), ("f", "etc/passwd", b"root:x:0:0\n", {}),
          ("l", "lib", "usr/lib", {}), ("l", "esc", "../..", {}),
          ("h", "etc/hard", "etc/passwd", {}),
          ("f", "cap", b"elf", {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02" + "\x00" * 16}),
          ("c", "dev/null", (1, 3), {})])
l2 = tar([("f", "etc/.wh.passwd", b"", {}), ("f", ".wh..wh..opq", b"", {}),
          ("f", "esc/x", b"x", {}), ("h", "h", "esc/x", {}), ("f", "a/" * 60 + "deep", b"d", {})])
gnu = tar([("f", "n" * 150, b"long gnu name", {})], fmt=tarfile.GNU_FORMAT)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "unpack")
os.makedirs(out, exist_ok=True)
for i, s in enumerate([seed(0, l1, l2), seed(1, l1, l2), seed(3, gnu, l1), seed(2, l2, b"")]):
    with open(os.path.join(out, f"seed{i}"), "wb") as f:
        f.write(s)
print(f"wrote 4 seeds to {out}")
