#!/usr/bin/env python3
"""Writes the tar corpus the EROFS tests build images from: every entry kind, GNU and PAX long
names, unicode paths, sub-second mtimes, big ids, xattrs, edge-size files, a 5,000-entry directory,
OCI whiteouts and opaque dirs, duplicate entries, and a tar without end-of-archive blocks.
Usage: make_tar_corpus.py OUTDIR"""
import io
import os
import sys
import tarfile


def data(n, seed):
    x = seed * 2654435761 + 1
    out = bytearray(n)
    for i in range(0, n, 8):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out[i:i + 8] = x.to_bytes(8, "little")[: max(0, min(8, n - i))]
    return bytes(out[:n])


def add(t, name, kind=tarfile.REGTYPE, content=b"", mode=0o644, uid=0, gid=0, mtime=1600000000,
        linkname="", devmajor=0, devminor=0, pax=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = mtime
    ti.linkname = linkname
    ti.devmajor, ti.devminor = devmajor, devminor
    if pax:
        ti.pax_headers = pax
    if kind == tarfile.REGTYPE:
        ti.size = len(content)
        t.addfile(ti, io.BytesIO(content))
    else:
        t.addfile(ti)


def kinds(path):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        add(t, "etc", tarfile.DIRTYPE, mode=0o755)
        add(t, "etc/hostname", content=b"lazysnap\n")
        add(t, "etc/secret", content=b"s", mode=0o600, uid=1000, gid=1000)
        add(t, "etc/suid", content=b"#!/bin/sh\n", mode=0o4755)
        add(t, "etc/sticky", tarfile.DIRTYPE, mode=0o1777)
        add(t, "etc/link", tarfile.SYMTYPE, linkname="hostname", mode=0o777)
        add(t, "etc/dangling", tarfile.SYMTYPE, linkname="/nowhere/at/all", mode=0o777)
        add(t, "etc/hard", tarfile.LNKTYPE, linkname="etc/hostname")
        add(t, "dev", tarfile.DIRTYPE, mode=0o755)
        add(t, "dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        add(t, "dev/loop9", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=9)
        add(t, "dev/fifo", tarfile.FIFOTYPE, mode=0o644)
        add(t, "sizes", tarfile.DIRTYPE, mode=0o755)
        for n in (0, 1, 4095, 4096, 4097, 65536 + 3, 3 * 1024 * 1024 + 17):
            add(t, "sizes/f%d" % n, content=data(n, n))
        add(t, "ids", content=b"big ids", uid=3000000, gid=4000000)
        add(t, "times", content=b"t", pax={"mtime": "1600000000.123456789"})
        add(t, "unicode", tarfile.DIRTYPE, mode=0o755)
        add(t, "unicode/caf\u00e9-\u65e5\u672c-\U0001F600.txt", content=b"unicode")
        long_dir = "/".join(["d%02d-%s" % (i, "x" * 40) for i in range(6)])
        add(t, long_dir, tarfile.DIRTYPE, mode=0o755)
        add(t, long_dir + "/" + "y" * 200, content=b"a long path")
        add(t, "xattrs", content=b"x", pax={"SCHILY.xattr.user.lazysnap": "hello",
                                             "SCHILY.xattr.user.empty": ""})
        add(t, "many", tarfile.DIRTYPE, mode=0o755)
        for i in range(5000):
            add(t, "many/e%05d" % i, content=b"%d" % i if i % 7 == 0 else b"")
        add(t, "dup", content=b"first version")
        add(t, "dup", content=b"second version wins")
        # OCI whiteouts: a deleted file and an opaque directory.
        add(t, "gone", tarfile.DIRTYPE, mode=0o755)
        add(t, "gone/.wh.deleted", content=b"")
        add(t, "opaque", tarfile.DIRTYPE, mode=0o755)
        add(t, "opaque/.wh..wh..opq", content=b"")
        add(t, "opaque/kept", content=b"new")


def gnu_long(path):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        add(t, "gnu", tarfile.DIRTYPE, mode=0o755)
        add(t, "gnu/" + "n" * 150 + "/" + "m" * 120, content=b"gnu long name")
        add(t, "gnu/symlink", tarfile.SYMTYPE, linkname="t" * 180, mode=0o777)


def no_eof(path, src):
    raw = open(src, "rb").read()
    # Drop the two zero blocks (and the zero padding tarfile adds to a whole record).
    end = len(raw)
    while end >= 512 and raw[end - 512:end] == b"\0" * 512:
        end -= 512
    open(path, "wb").write(raw[:end])


def overlay_layers(out):
    with tarfile.open(os.path.join(out, "lower.tar"), "w", format=tarfile.PAX_FORMAT) as t:
        add(t, "a", tarfile.DIRTYPE, mode=0o755)
        add(t, "a/keep", content=b"lower keep")
        add(t, "a/remove", content=b"lower remove")
        add(t, "b", tarfile.DIRTYPE, mode=0o755)
        add(t, "b/old1", content=b"old1")
        add(t, "b/old2", content=b"old2")
        add(t, "c", content=b"lower c")
    with tarfile.open(os.path.join(out, "upper.tar"), "w", format=tarfile.PAX_FORMAT) as t:
        add(t, "a", tarfile.DIRTYPE, mode=0o755)
        add(t, "a/.wh.remove", content=b"")
        add(t, "a/new", content=b"upper new")
        add(t, "b", tarfile.DIRTYPE, mode=0o755)
        add(t, "b/.wh..wh..opq", content=b"")
        add(t, "b/fresh", content=b"fresh")
        add(t, "c", content=b"upper c")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    kinds(os.path.join(out, "kinds.tar"))
    gnu_long(os.path.join(out, "gnu.tar"))
    no_eof(os.path.join(out, "noeof.tar"), os.path.join(out, "gnu.tar"))
    overlay_layers(out)


if __name__ == "__main__":
    main()
