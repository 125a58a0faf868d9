#!/usr/bin/env python3
"""Writes the tar layers the erofs tests build images from.

Entries are serialised one by one (TarInfo.tobuf) so a single archive can mix GNU and PAX
headers, repeat a path, or stop without the end-of-archive blocks.

usage: make_layer.py KIND OUT   KIND = corpus | lower | upper | rootfs | implicit | rootslash
"""
import io
import os
import random
import sys
import tarfile

GNU, PAX = tarfile.GNU_FORMAT, tarfile.PAX_FORMAT
MTIME = 1700000000


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb")

    def add(self, name, type=tarfile.REGTYPE, data=b"", fmt=PAX, mode=0o644, uid=0, gid=0,
            mtime=MTIME, linkname="", devmajor=0, devminor=0, pax=None, uname="", gname=""):
        ti = tarfile.TarInfo(name)
        ti.type = type
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname, ti.gname = uname, gname
        ti.mtime = mtime
        ti.linkname = linkname
        ti.devmajor, ti.devminor = devmajor, devminor
        ti.size = len(data) if type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
        if pax:
            ti.pax_headers = dict(pax)
        self.f.write(ti.tobuf(fmt, "utf-8", "surrogateescape"))
        if ti.size:
            self.f.write(data)
            self.f.write(b"\0" * ((512 - ti.size % 512) % 512))

    def dir(self, name, mode=0o755, **kw):
        self.add(name, tarfile.DIRTYPE, mode=mode, **kw)

    def close(self, end_marker=True):
        if end_marker:
            self.f.write(b"\0" * 1024)
        self.f.close()


def rand(n, seed):
    return random.Random(seed).randbytes(n)


def corpus(out):
    w = Writer(out)
    w.dir("./", mode=0o755)
    w.dir("files/")
    for n in (0, 1, 4095, 4096, 4097, 8191, 65537):
        w.add(f"files/f{n}", data=rand(n, n))
    w.add("files/big", data=rand(3 * 1024 * 1024 + 123, 7) + b"\0" * (1 << 20), mode=0o600)
    w.add("files/exec", data=b"#!/bin/sh\necho hi\n", mode=0o4755)
    w.dir("links/")
    w.add("links/sym", tarfile.SYMTYPE, linkname="../files/f4096", mode=0o777)
    w.add("links/dangling", tarfile.SYMTYPE, linkname="/nowhere/at/all", mode=0o777)
    w.add("links/long-target", tarfile.SYMTYPE, linkname="t/" * 900 + "end", mode=0o777)
    w.add("links/hard-src", data=b"shared inode\n")
    w.add("links/hard", tarfile.LNKTYPE, linkname="links/hard-src")
    w.add("links/hard2", tarfile.LNKTYPE, linkname="links/hard-src")
    w.dir("dev/")
    w.add("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
    w.add("dev/loop9", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=9, gid=6)
    w.add("dev/bigdev", tarfile.CHRTYPE, mode=0o600, devmajor=300, devminor=70000)
    w.add("dev/fifo", tarfile.FIFOTYPE, mode=0o640)
    w.dir("names/")
    long_dir = "names/" + "d" * 120 + "/"
    w.dir(long_dir, fmt=GNU)
    w.add(long_dir + "gnu-" + "x" * 200, data=b"gnu long name\n", fmt=GNU)
    w.add("names/pax-" + "y" * 230, data=b"pax long name\n")
    w.add("names/ünïcødé-ファイル-😀", data="unicode\n".encode())
    w.add("names/with space and 'quotes'", data=b"q\n")
    w.dir("owners/")
    w.add("owners/big-ids", data=b"ids\n", uid=3000000, gid=4000000)
    w.add("owners/mid-ids", data=b"ids\n", uid=65534, gid=100000)
    w.add("owners/subsec", data=b"t\n", pax={"mtime": "1700000000.123456789"})
    w.add("owners/old", data=b"t\n", mtime=86400)
    w.add("owners/future", data=b"t\n", mtime=4102444800)
    w.dir("xattrs/")
    for i in range(3):
        # The same xattr on several inodes: mkfs.erofs shares it (shared xattr area).
        w.add(f"xattrs/shared{i}", data=b"x\n",
              pax={"SCHILY.xattr.user.common": "same-value", f"SCHILY.xattr.user.own{i}": f"v{i}"})
    w.add("xattrs/binary", data=b"b\n", pax={"SCHILY.xattr.user.bin": "\x01\x02 bin"})
    w.dir("xattrs/dir/", pax={"SCHILY.xattr.user.ondir": "dirvalue"})
    w.dir("many/")
    for i in range(5000):
        w.add(f"many/entry-{i:05d}", data=b"" if i % 7 else f"{i}\n".encode())
    w.dir("dup/")
    w.add("dup/file", data=b"first version, longer than the second\n")
    w.add("dup/file", data=b"second\n", mode=0o640)
    w.close(end_marker=False)  # no end-of-archive blocks


def lower(out):
    w = Writer(out)
    w.dir("./")
    w.dir("etc/")
    w.add("etc/keep", data=b"kept\n")
    w.add("etc/remove-me", data=b"gone\n")
    w.dir("etc/sub/")
    w.add("etc/sub/old", data=b"old\n")
    w.dir("opaque/")
    w.add("opaque/hidden", data=b"hidden by opaque\n")
    w.dir("opaque/deep/")
    w.add("opaque/deep/x", data=b"x\n")
    w.add("replace", data=b"lower file\n")
    w.close()


def upper(out):
    w = Writer(out)
    w.dir("./")
    w.dir("etc/")
    w.add("etc/.wh.remove-me", mode=0o600)
    w.add("etc/.wh.sub", mode=0o600)
    w.add("etc/new", data=b"new in upper\n")
    w.dir("opaque/")
    w.add("opaque/.wh..wh..opq", mode=0o600)
    w.add("opaque/visible", data=b"upper only\n")
    w.add("replace", data=b"upper file wins\n", mode=0o600)
    w.close()


def rootfs(out):
    """busybox-static with its applet links plus some of /usr/share (text and binary)."""
    w = Writer(out)
    seen = set()

    def add_path(src, name):
        st = os.lstat(src)
        pax = None
        if os.path.islink(src):
            w.add(name, tarfile.SYMTYPE, linkname=os.readlink(src), mode=0o777, mtime=int(st.st_mtime))
        elif os.path.isdir(src):
            w.dir(name + "/", mode=st.st_mode & 0o7777, mtime=int(st.st_mtime))
        elif os.path.isfile(src):
            with open(src, "rb") as f:
                w.add(name, data=f.read(), mode=st.st_mode & 0o7777, mtime=int(st.st_mtime), pax=pax)

    for d in ("./", "bin/", "sbin/", "usr/", "usr/bin/", "usr/share/", "etc/", "tmp/"):
        w.dir(d, mode=0o1777 if d == "tmp/" else 0o755)
    w.add("bin/busybox", data=open("/bin/busybox", "rb").read(), mode=0o755)
    applets = ["sh", "ls", "cat", "cp", "mv", "rm", "echo", "grep", "sed", "awk", "vi", "tar"]
    for a in applets:
        w.add("bin/" + a, tarfile.SYMTYPE, linkname="busybox", mode=0o777)
    w.add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    for top in ("/usr/share/zoneinfo", "/usr/share/common-licenses", "/usr/share/base-files"):
        if not os.path.isdir(top):
            continue
        for root, dirs, files in os.walk(top):
            dirs.sort()
            rel = root[1:]
            if rel not in seen:
                # parents of top
                parts = rel.split("/")
                for i in range(2, len(parts) + 1):
                    p = "/".join(parts[:i])
                    if p not in seen:
                        seen.add(p)
                        add_path("/" + p, p)
            for fn in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                add_path(os.path.join(root, fn), rel + "/" + fn)
    w.close()


def implicit(out):
    """No "./" entry and parents only implied by deeper paths (common in real layers)."""
    w = Writer(out)
    w.add("abs/file", data=b"implied parent\n")
    w.dir("explicit/", mode=0o700)
    w.add("explicit/sub/file", data=b"x\n")
    w.dir("wide/", mode=0o777)  # an explicit 0777 directory stays 0777
    w.close()


def rootslash(out):
    """The root spelled "/" as the first entry (umoci insert writes layers so), and "//" later."""
    w = Writer(out)
    w.dir("/", mode=0o750, mtime=MTIME + 5)
    w.dir("etc/")
    w.add("etc/hello", data=b"hello\n")
    w.add("etc/odd", data=rand(1000, 3), mode=0o600)
    w.dir("names/")
    w.add("names/gnu-" + "g" * 150, data=b"gnu long name\n", fmt=GNU)
    w.add("names/pax-" + "p" * 200, data=b"pax long name\n")
    w.add("big", data=rand(70000, 9))
    w.add("link", tarfile.SYMTYPE, linkname="etc/hello", mode=0o777)
    w.dir("//", mode=0o750, mtime=MTIME + 5, fmt=GNU)
    w.close()


if __name__ == "__main__":
    {"corpus": corpus, "lower": lower, "upper": upper, "rootfs": rootfs,
     "implicit": implicit, "rootslash": rootslash}[sys.argv[1]](sys.argv[2])
