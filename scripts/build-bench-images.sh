#!/usr/bin/env bash
# Builds the benchmark images once into an OCI layout (default .cache/bench-images/oci) and caches
# them. Real-world images come from Debian packages: a `debootstrap --variant=minbase bookworm`
# base layer plus one layer per variant with real packages installed (python3, gcc, a JRE,
# nodejs, postgresql). Synthetic images cover the extremes (20,000 tiny files; a few huge files).
# Every file's mtime is pinned to SOURCE_DATE_EPOCH so a rebuild yields the same tar contents.
#
# usage: build-bench-images.sh [--quick] [--out DIR]
#   --quick  only the small synthetic images on busybox-static (no debootstrap); used by tests
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/.cache/bench-images"
quick=0
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
export SOURCE_DATE_EPOCH=1700000000
oci="$out/oci"
work="$out/work"
mkdir -p "$out"
[[ -d $oci ]] || umoci init --layout "$oci"

have() { [[ -f "$out/.done-$1" ]]; }
done_mark() { touch "$out/.done-$1"; }
pin_mtimes() { find "$1" -xdev -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true; }

# new_image TAG ROOTFS_DIR: a one-layer image whose layer is ROOTFS_DIR.
new_image() {
  local tag=$1 src=$2
  umoci new --image "$oci:$tag"
  rm -rf "$work/bundle"
  umoci unpack --image "$oci:$tag" "$work/bundle" >/dev/null
  cp -a "$src/." "$work/bundle/rootfs/"
  pin_mtimes "$work/bundle/rootfs"
  umoci repack --image "$oci:$tag" "$work/bundle" >/dev/null
  umoci config --image "$oci:$tag" --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --created "@$SOURCE_DATE_EPOCH" --history.created "@$SOURCE_DATE_EPOCH" >/dev/null 2>&1 ||
    umoci config --image "$oci:$tag" --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null
  rm -rf "$work/bundle"
}

# add_layer FROM TAG DIR: image TAG = FROM + one layer holding DIR's tree.
# unpack + copy + repack rather than `umoci insert`: umoci 0.4.7's insert writes layer tars whose
# last entry is cut short and whose first entry is "/", which lazysnap index (and GNU tar) refuse.
add_layer() {
  local from=$1 tag=$2 dir=$3
  umoci tag --image "$oci:$from" "$tag"
  rm -rf "$work/bundle"
  umoci unpack --image "$oci:$tag" "$work/bundle" >/dev/null
  cp -a "$dir/." "$work/bundle/rootfs/"
  pin_mtimes "$work/bundle/rootfs"
  umoci repack --image "$oci:$tag" "$work/bundle" >/dev/null
  rm -rf "$work/bundle"
}

busybox_rootfs() {
  rm -rf "$1"
  mkdir -p "$1/bin"
  cp /bin/busybox "$1/bin/busybox"
  for a in sh echo cat ls wc sha256sum head find xargs true; do ln -s busybox "$1/bin/$a"; done
}

mkdir -p "$work"
if ! have busybox; then
  busybox_rootfs "$work/bb"
  new_image busybox "$work/bb"
  done_mark busybox
fi
if ! have tiny-files.2; then
  # 20,000 files of 100-2,000 bytes in 200 directories: metadata-heavy layers.
  rm -rf "$work/tiny" && mkdir -p "$work/tiny/data"
  perl -e 'for my $d (0..199) { mkdir "$ARGV[0]/d$d" or die; for my $f (0..99) {
      open(my $h, ">", "$ARGV[0]/d$d/f$f") or die; print $h join("", map { chr(int(rand(256))) } 1 .. (100 + ($d * 100 + $f) % 1900)); close $h } }' "$work/tiny/data"
  add_layer busybox tiny-files "$work/tiny"
  rm -rf "$work/tiny"
  done_mark tiny-files.2
fi
if ! have huge-files.2; then
  # Three 64 MiB files (incompressible), the shape of model weights or databases.
  size_mb=64
  ((quick)) && size_mb=16
  rm -rf "$work/huge" && mkdir -p "$work/huge/data"
  for i in 1 2 3; do head -c $((size_mb << 20)) /dev/urandom >"$work/huge/data/big$i"; done
  add_layer busybox huge-files "$work/huge"
  rm -rf "$work/huge"
  done_mark huge-files.2
fi
if ! have lazy-app && ((!quick)); then
  # The lazy-start case: 4 layers, ~310 MB compressed (busybox; 2,000 small config files + 200
  # libraries of 100 KiB; a 128 MiB model; a 128 MiB model + a 32 MiB database). Its ready command
  # prints a small file, then checksums a big one: first output needs a few KiB of the image.
  rm -rf "$work/app" && mkdir -p "$work/app/etc" "$work/app/lib"
  perl -e 'for my $f (0..1999) { open(my $h, ">", "$ARGV[0]/etc/conf$f.conf") or die;
      print $h map { "key$_ = value " . ($f * 7919 + $_) % 100003 . "\n" } 1 .. (20 + $f % 80); close $h }
      open(my $h, ">", "$ARGV[0]/etc/app.conf") or die; print $h "app ready\n"; close $h' "$work/app"
  for i in $(seq 0 199); do head -c 102400 /dev/urandom >"$work/app/lib/lib$i.so"; done
  add_layer busybox lazy-app.1 "$work/app"
  rm -rf "$work/app" && mkdir -p "$work/app/data"
  head -c $((128 << 20)) /dev/urandom >"$work/app/data/model1.bin"
  add_layer lazy-app.1 lazy-app.2 "$work/app"
  rm -rf "$work/app" && mkdir -p "$work/app/data"
  head -c $((128 << 20)) /dev/urandom >"$work/app/data/model2.bin"
  head -c $((32 << 20)) /dev/urandom >"$work/app/data/index.db"
  add_layer lazy-app.2 lazy-app "$work/app"
  umoci rm --image "$oci:lazy-app.1" && umoci rm --image "$oci:lazy-app.2"
  rm -rf "$work/app"
  done_mark lazy-app
fi
if ((quick)); then
  rm -rf "$work"
  exit 0
fi

mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
  sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' -e 's/^deb[[:space:]]\+\([^[:space:]]*\).*/\1/p' |
  grep -v -e security | head -n1 || true)
if ! have debian; then
  rm -rf "$work/debian"
  debootstrap --variant=minbase bookworm "$work/debian" "$mirror" >"$out/debootstrap.log"
  chroot "$work/debian" apt-get clean
  rm -rf "$work/debian/var/lib/apt/lists/"*
  new_image debian "$work/debian"
  done_mark debian
fi

# variant TAG PACKAGES...: debian + one layer with the packages installed (only the changed files).
variant() { stacked debian "$@"; }
# stacked BASE TAG PACKAGES...: image BASE + one layer with the packages installed.
stacked() {
  local base=$1 tag=$2
  shift 2
  have "$tag" && return 0
  rm -rf "$work/bundle"
  umoci unpack --image "$oci:$base" "$work/bundle" >/dev/null
  local root="$work/bundle/rootfs"
  mount -t proc proc "$root/proc"
  # Expanded now and cleared when it fires: a RETURN trap is not local to the function, and
  # would fire again (with `root` unset) when the caller returns.
  trap "umount -l '$root/proc' 2>/dev/null || true; trap - RETURN" RETURN
  chroot "$root" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends "$@" >"$out/$tag.log"
  chroot "$root" apt-get clean
  rm -rf "$root/var/lib/apt/lists/"*
  umount -l "$root/proc"
  pin_mtimes "$root"
  umoci tag --image "$oci:$base" "$tag"
  umoci repack --image "$oci:$tag" "$work/bundle" >/dev/null
  rm -rf "$work/bundle"
  done_mark "$tag"
}
variant python python3
variant gcc gcc libc6-dev
variant jre openjdk-17-jre-headless
variant node nodejs
variant postgres postgresql-15
# real-app: the lazy-start case with real (compressible) files, 4 layers, ~290 MB compressed:
# debian, a JRE, nodejs, postgresql, each its own layer. Its ready command prints a small file,
# then checksums the JRE's 130 MB `modules` file. lazy-app is the same shape with random bytes.
stacked debian real-app.1 openjdk-17-jre-headless
stacked real-app.1 real-app.2 nodejs
stacked real-app.2 real-app postgresql-15
rm -rf "$work"
echo "bench images in $oci: $(ls -a "$out" | sed -n 's/^\.done-//p' | tr '\n' ' ')"
