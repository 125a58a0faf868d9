#!/usr/bin/env bash
# One-off: copy of the bench layout whose tiny-files and huge-files images are rebuilt with
# umoci unpack + repack (same contents as scripts/build-bench-images.sh) instead of umoci insert,
# whose layers are truncated (tiny-files) or start with a "/" entry (both).
# usage: fix-images.sh SRC_LAYOUT DST_LAYOUT SIZE_MB
set -euo pipefail
src=$1 dst=$2 size_mb=$3
export SOURCE_DATE_EPOCH=1700000000
rm -rf "$dst" && cp -a "$src" "$dst"
work=$(mktemp -d)
pin() { find "$1" -xdev -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true; }
rebuild() {  # rebuild TAG DATA_DIR
  umoci tag --image "$dst:busybox" "$1"
  umoci unpack --image "$dst:$1" "$work/bundle" >/dev/null
  cp -a "$2/." "$work/bundle/rootfs/"
  pin "$work/bundle/rootfs"
  umoci repack --image "$dst:$1" "$work/bundle" >/dev/null
  rm -rf "$work/bundle"
}
mkdir -p "$work/tiny/data"
perl -e 'for my $d (0..199) { mkdir "$ARGV[0]/d$d" or die; for my $f (0..99) {
    open(my $h, ">", "$ARGV[0]/d$d/f$f") or die; print $h join("", map { chr(int(rand(256))) } 1 .. (100 + ($d * 100 + $f) % 1900)); close $h } }' "$work/tiny/data"
rebuild tiny-files "$work/tiny"
mkdir -p "$work/huge/data"
for i in 1 2 3; do head -c $((size_mb << 20)) /dev/urandom >"$work/huge/data/big$i"; done
rebuild huge-files "$work/huge"
rm -rf "$work"
umoci gc --layout "$dst"
