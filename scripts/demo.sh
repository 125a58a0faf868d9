#!/usr/bin/env bash
# The demo: installs dependencies, builds lazysnap, then on loopback and in a temp dir starts a
# real docker-registry with a sample image, lazysnapd, and a containerd that uses lazysnapd as its
# proxy snapshotter; pulls and runs a container through lazysnap and reports what happened; then
# indexes the image (`lazysnap index`) and mounts it lazily through lazysnap-fused, reading a file
# and checksumming another while showing how few bytes came from the registry.
# Everything it starts is stopped and unmounted on exit or Ctrl-C.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${LAZYSNAP_BUILD_DIR:-$here/build}"
[[ $(id -u) -eq 0 ]] || { echo "demo.sh: must run as root (containerd, mounts)" >&2; exit 1; }

"$here/scripts/install-deps.sh"
# -Werror is the test build's job (scripts/test.sh); GCC 12 at -O3 reports false positives in
# libstdc++ headers that must not stop a demo.
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLAZYSNAP_TESTS=OFF \
  -DLAZYSNAP_BENCH=OFF -DLAZYSNAP_WERROR=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target lazysnapd lazysnap lazysnap-fused

work=$(mktemp -d /tmp/lazysnap-demo.XXXXXX)
pids=()
cleanup() {
  set +e
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # lazysnap-fused ends its fd keeper on a graceful stop; one left by a crash goes here.
  find "$work" -name fdkeeper.sock.pid -exec sh -c 'kill "$(cat "$1")"' _ {} \; 2>/dev/null
  # Anything still mounted below the work dir (container rootfs) goes before the dir itself.
  grep -o " $work[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; exit 1; }
now() { date +%s.%N; }

# 1. A real registry on loopback.
port=$(free_port)
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $work/registry/data}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done

# 2. A sample image: busybox-static base layer plus an application layer.
echo "==> building sample image (busybox-static + app layer) with umoci"
oci="$work/oci"
umoci init --layout "$oci" >/dev/null
umoci new --image "$oci:demo" >/dev/null
umoci unpack --image "$oci:demo" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for a in sh echo cat ls wc sha256sum head; do ln -s busybox "$work/bundle/rootfs/bin/$a"; done
umoci repack --image "$oci:demo" "$work/bundle" >/dev/null
# unpack + repack (umoci 0.4.7's `insert` writes tars whose last entry is cut short)
umoci unpack --image "$oci:demo" "$work/bundle2" >/dev/null
mkdir -p "$work/bundle2/rootfs/app"
echo "hello from a lazysnap container" >"$work/bundle2/rootfs/app/greeting"
head -c 20000000 /dev/urandom >"$work/bundle2/rootfs/app/data.bin"
head -c 60000000 /dev/urandom >"$work/bundle2/rootfs/app/unread.bin"
umoci repack --image "$oci:demo" "$work/bundle2" >/dev/null
rm -rf "$work/bundle" "$work/bundle2"
umoci config --image "$oci:demo" --config.env PATH=/bin --config.cmd /bin/sh >/dev/null
image="127.0.0.1:$port/demo/app:v1"
skopeo copy -q --dest-tls-verify=false "oci:$oci:demo" "docker://$image"
image_bytes=$(du -cb "$oci"/blobs/sha256/* | tail -1 | cut -f1)

# 3. lazysnapd and a containerd that uses it.
"$build/snapshotter/lazysnapd" --root "$work/lazysnap" --address "$work/lazysnap.sock" \
  --log-level info 2>"$work/lazysnapd.log" &
pids+=($!)
wait_for "$work/lazysnap.sock"
cat >"$work/containerd.toml" <<TOML
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[proxy_plugins.lazysnap]
  type = "snapshot"
  address = "$work/lazysnap.sock"
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
pids+=($!)
wait_for "$work/containerd.sock"
ctr=(ctr -a "$work/containerd.sock" -n lazysnap-demo)

# 4. Pull and run through lazysnap.
echo "==> pulling $image with --snapshotter lazysnap"
t0=$(now)
"${ctr[@]}" image pull --snapshotter lazysnap --plain-http "$image" >/dev/null
t1=$(now)
echo "==> running a container from it"
out=$("${ctr[@]}" run --rm --snapshotter lazysnap "$image" demo-$$ sh -c 'cat /app/greeting; wc -c </app/data.bin')
t2=$(now)
fetched=$(awk '/"GET \/v2\/.*\/blobs\// {s += $10} END {print s + 0}' "$work/registry/log")

echo
echo "container said:"
echo "$out" | sed 's/^/    /'
echo
printf 'snapshots in lazysnap:\n'
"${ctr[@]}" snapshots --snapshotter lazysnap ls | sed 's/^/    /'
echo
printf 'pull:            %6.2f s\n' "$(echo "$t1 - $t0" | bc -l)"
printf 'create + run:    %6.2f s\n' "$(echo "$t2 - $t1" | bc -l)"
printf 'time to ready:   %6.2f s\n' "$(echo "$t2 - $t0" | bc -l)"
printf 'bytes fetched:   %d of %d image bytes (native mode downloads every layer)\n' "$fetched" "$image_bytes"

# 5. Lazy: index the image, then mount it through lazysnap-fused without downloading it.
echo
echo "==> indexing $image (lazysnap index: index-only EROFS + gzip checkpoints + chunk digests)"
"$build/cli/lazysnap" index --plain-http "$image" | sed 's/^/    /'
cat >"$work/lazy.toml" <<TOML
[lazy]
enable = true
socket = "$work/fused.sock"
root = "$work/lazy"
cache_dir = "$work/cache"
plain_http = ["127.0.0.1:$port"]
TOML
"$build/lazy/lazysnap-fused" --config "$work/lazy.toml" 2>"$work/fused.log" &
pids+=($!)
wait_for "$work/fused.sock"
before=$(awk '/"GET \/v2\/.*\/blobs\// {s += $10} END {print s + 0}' "$work/registry/log")
t3=$(now)
"$build/cli/lazysnap" mount --socket "$work/fused.sock" --plain-http "$image" "$work/lazy-rootfs" | sed 's/^/    /'
t4=$(now)
lazy_out=$(cat "$work/lazy-rootfs/app/greeting"; sha256sum "$work/lazy-rootfs/app/data.bin" | cut -c1-16)
t5=$(now)
after=$(awk '/"GET \/v2\/.*\/blobs\// {s += $10} END {print s + 0}' "$work/registry/log")
echo "read through the lazy mount:"
echo "$lazy_out" | sed 's/^/    /'
"$build/cli/lazysnap" status --socket "$work/fused.sock" | sed 's/^/    /'
printf 'lazy mount:      %6.2f s (nothing downloaded yet)\n' "$(echo "$t4 - $t3" | bc -l)"
printf 'cat + sha256sum: %6.2f s\n' "$(echo "$t5 - $t4" | bc -l)"
printf 'bytes fetched:   %d of %d image bytes (app/unread.bin was never read, so never fetched)\n' \
  "$((after - before))" "$image_bytes"
"$build/cli/lazysnap" umount --socket "$work/fused.sock" "$work/lazy-rootfs"

echo
echo "demo OK; cleaning up"
