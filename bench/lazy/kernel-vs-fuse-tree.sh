#!/usr/bin/env bash
# Metadata and many-small-files reads of a lazily mounted image: lazysnap-fused's kernel path
# (kernel_erofs = true: the kernel's EROFS over a FUSE-served tar) vs the tree over FUSE
# (kernel_erofs = false), against the same tree on local ext4, cold (empty caches, page cache
# dropped) and warm (page cache dropped, span store kept). The image: one layer holding
# /usr/share/doc (~7,600 files, ~140 MB here) in a docker-registry on 127.0.0.1.
# Paths: kernel (buffered), kernel-directio (erofs_directio = true), fuse (the FUSE tree).
# usage (root, from the repo root, after building build-rel):
#   bench/lazy/kernel-vs-fuse-tree.sh [RUNS [PATHS]]     e.g. 3 "kernel kernel-directio"
set -euo pipefail
runs=${1:-3}
paths=${2:-kernel fuse}
B=$(pwd)/build-rel
W=$(mktemp -d /tmp/kvf.XXXXXX)
port=5611
cleanup() {
  "$B/cli/lazysnap" umount "$W/mnt" --socket "$W/fused.sock" >/dev/null 2>&1 || true
  pkill -f "lazysnap-fused --config $W/" || true
  [[ -n ${reg:-} ]] && kill "$reg" 2>/dev/null || true
  sleep 0.5
  grep -o "$W/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); printf "%.3f" "$(echo "$e - $s" | bc)"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/reg\nhttp:\n  addr: 127.0.0.1:%s\n' "$W" $port >"$W/reg.yml"
docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
reg=$!
mkdir -p "$W/src"
cp -r /usr/share/doc "$W/src/files"
umoci init --layout "$W/oci" >/dev/null
umoci new --image "$W/oci:v1" >/dev/null
umoci unpack --image "$W/oci:v1" "$W/bundle" >/dev/null
cp -a "$W/src/files" "$W/bundle/rootfs/"
umoci repack --image "$W/oci:v1" "$W/bundle" >/dev/null
sleep 1
skopeo copy -q --dest-tls-verify=false "oci:$W/oci:v1" "docker://127.0.0.1:$port/kvf:v1"
"$B/cli/lazysnap" index "127.0.0.1:$port/kvf:v1" --plain-http >/dev/null
echo "tree: $(find "$W/src/files" | wc -l) entries, $(du -sm "$W/src/files" | cut -f1) MB"
for run in $(seq "$runs"); do
  drop
  echo "run $run native ext4: find $(t find "$W/src/files") read-all $(t sh -c "tar -C $W/src/files -cf - . | cat >/dev/null")"
  for path in $paths; do
    case $path in
      kernel) k=true dio=false ;;
      kernel-directio) k=true dio=true ;;
      fuse) k=false dio=false ;;
      *) echo "unknown path $path" >&2; exit 2 ;;
    esac
    "$B/cli/lazysnap" umount "$W/mnt" --socket "$W/fused.sock" >/dev/null 2>&1 || true
    pkill -f "lazysnap-fused --config $W/" || true
    sleep 0.5
    rm -rf "$W/root" "$W/cache"
    printf '[lazy]\nenable = true\nkernel_erofs = %s\nerofs_directio = %s\nbackground_fetch = false\nsocket = "%s/fused.sock"\nroot = "%s/root"\ncache_dir = "%s/cache"\nplain_http = ["127.0.0.1:%s"]\n' \
      $k $dio "$W" "$W" "$W" $port >"$W/fused-$path.toml"
    "$B/lazy/lazysnap-fused" --config "$W/fused-$path.toml" >>"$W/fused.log" 2>&1 &
    sleep 0.7
    mkdir -p "$W/mnt"
    "$B/cli/lazysnap" mount "127.0.0.1:$port/kvf:v1" "$W/mnt" --socket "$W/fused.sock" --plain-http >/dev/null
    drop
    f1=$(t find "$W/mnt"); r1=$(t sh -c "tar -C $W/mnt -cf - . | cat >/dev/null")
    drop
    f2=$(t find "$W/mnt"); r2=$(t sh -c "tar -C $W/mnt -cf - . | cat >/dev/null")
    echo "run $run $path: cold find $f1 read-all $r1 ; warm (page cache dropped) find $f2 read-all $r2"
  done
done
