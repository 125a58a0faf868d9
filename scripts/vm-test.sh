#!/usr/bin/env bash
# Real microVM test (issue #6). Gated: not part of CI or scripts/test.sh.
#
# Boots a real Linux kernel in QEMU whose initramfs holds busybox, lazysnap-guest (+ the shared
# libraries it loads) and the erofs/overlay/fuse/virtio-net modules. On the host it starts a real
# docker-registry on loopback with a 2-layer sample image that `lazysnap index` has indexed, and
# writes the KataVirtualVolume descriptor lazysnapd would hand to Kata. Inside the guest /init runs
# `lazysnap-guest mount` on that descriptor (the guest reaches the registry as 10.0.2.2 through
# QEMU user networking), then runs /app/hello.sh and checksums /app/data.bin from the lazily
# mounted rootfs. The host checks the serial log for the marker and the right sha256.
#
#   sudo LAZYSNAP_VM_TEST=1 bash scripts/vm-test.sh
#
# Environment:
#   LAZYSNAP_BUILD_DIR   build dir with guest-agent/lazysnap-guest and cli/lazysnap
#                        (default: build-vm, configured and built here if the binaries are absent)
#   LAZYSNAP_VM_KERNEL   kernel version under /lib/modules to boot (default: newest installed
#                        *-cloud-amd64, else newest with a /boot/vmlinuz)
#   LAZYSNAP_VM_ACCEL    kvm|tcg (default: kvm if it works, else tcg)
#   LAZYSNAP_VM_TIMEOUT  seconds for the whole VM run (default 600)
#   LAZYSNAP_VM_KEEP=1   keep the temp dir (logs, initramfs) for inspection
# Exit code 0 on success.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${LAZYSNAP_BUILD_DIR:-$here/build-vm}"
vm_timeout="${LAZYSNAP_VM_TIMEOUT:-600}"
[[ $(id -u) -eq 0 ]] || { echo "vm-test.sh: must run as root (apt-get, kernel modules)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
now() { date +%s.%N; }
elapsed() { printf '%.1f' "$(echo "$2 - $1" | bc -l)"; }
say() { echo "==> $*"; }
t_start=$(now)

# ---------------------------------------------------------------------------------------------
# 1. Packages: QEMU, a small kernel with virtio, and the registry/image tools.
packages=(qemu-system-x86 linux-image-cloud-amd64 kmod busybox-static cpio gzip jq curl bc
  docker-registry skopeo umoci python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then apt-get update -qq; fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel to boot.
kver="${LAZYSNAP_VM_KERNEL:-}"
if [[ -z $kver ]]; then
  for d in $(ls -d /lib/modules/*-cloud-amd64 /lib/modules/* 2>/dev/null | sort -rV); do
    v=$(basename "$d")
    [[ -f /boot/vmlinuz-$v && -f $d/modules.dep ]] && { kver=$v; break; }
  done
fi
[[ -n $kver && -f /boot/vmlinuz-$kver ]] || { echo "vm-test.sh: no bootable kernel found" >&2; exit 1; }
say "guest kernel $kver"

# ---------------------------------------------------------------------------------------------
# 2. Binaries.
guest_bin="$build/guest-agent/lazysnap-guest"
cli_bin="$build/cli/lazysnap"
if [[ ! -x $guest_bin || ! -x $cli_bin ]]; then
  say "building lazysnap-guest and lazysnap in $build"
  "$here/scripts/install-deps.sh"
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLAZYSNAP_TESTS=OFF \
    -DLAZYSNAP_BENCH=OFF -DLAZYSNAP_WERROR=OFF -DLAZYSNAP_GUEST_STATIC=ON >/dev/null
  ninja -C "$build" lazysnap-guest lazysnap
fi

# ---------------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/lazysnap-vm-test.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  set +e
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [[ ${LAZYSNAP_VM_KEEP:-0} == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 3. A real registry on loopback and an indexed 2-layer image.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || { echo "registry did not start" >&2; cat "$work/registry/log" >&2; exit 1; }

say "building sample image (busybox-static + app layer) with umoci"
oci="$work/oci"
umoci init --layout "$oci" >/dev/null
umoci new --image "$oci:vm" >/dev/null
umoci unpack --image "$oci:vm" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for a in sh echo cat ls wc sha256sum head expr; do ln -s busybox "$work/bundle/rootfs/bin/$a"; done
umoci repack --image "$oci:vm" "$work/bundle" >/dev/null
# unpack + repack (umoci 0.4.7's `insert` writes tars whose last entry is cut short)
umoci unpack --image "$oci:vm" "$work/bundle2" >/dev/null
mkdir -p "$work/bundle2/rootfs/app"
# The marker is computed by the script, so it appears on the console only if the script ran.
cat >"$work/bundle2/rootfs/app/hello.sh" <<'SH'
#!/bin/sh
echo "LAZYSNAP-VM-MARKER-$(expr 6 \* 7) hello from a lazily mounted rootfs"
SH
chmod +x "$work/bundle2/rootfs/app/hello.sh"
marker="LAZYSNAP-VM-MARKER-42 hello from a lazily mounted rootfs"
head -c 30000000 /dev/urandom >"$work/bundle2/rootfs/app/data.bin"
want_sha=$(sha256sum "$work/bundle2/rootfs/app/data.bin" | cut -d' ' -f1)
umoci repack --image "$oci:vm" "$work/bundle2" >/dev/null
rm -rf "$work/bundle" "$work/bundle2"
umoci config --image "$oci:vm" --config.env PATH=/bin --config.cmd /bin/sh >/dev/null
repo="vmtest/app:v1"
image="127.0.0.1:$port/$repo"
skopeo copy -q --dest-tls-verify=false "oci:$oci:vm" "docker://$image"

say "indexing $image"
"$cli_bin" index --plain-http "$image" | sed 's/^/    /'

# 4. The descriptor lazysnapd would produce, with the registry as the guest sees it.
manifest=$(skopeo inspect --tls-verify=false --raw "docker://$image")
# The registry's digest of the stored manifest bytes ($(...) would drop a trailing newline).
manifest_digest=$(curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://127.0.0.1:$port/v2/${repo%%:*}/manifests/${repo##*:}" |
  tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
[[ $manifest_digest == sha256:* ]] || { echo "no manifest digest from the registry" >&2; exit 1; }
config=$(skopeo inspect --tls-verify=false --raw --config "docker://$image")
mapfile -t layers < <(jq -r '.layers[].digest' <<<"$manifest")
mapfile -t diffs < <(jq -r '.rootfs.diff_ids[]' <<<"$config")
((${#layers[@]} == 2 && ${#diffs[@]} == 2)) || { echo "expected 2 layers" >&2; exit 1; }
chains=("${diffs[0]}")
for ((i = 1; i < ${#diffs[@]}; i++)); do
  chains+=("sha256:$(printf '%s %s' "${chains[i - 1]}" "${diffs[i]}" | sha256sum | cut -d' ' -f1)")
done
join() { local IFS=,; echo "$*"; }
guest_registry="10.0.2.2:$port"
jq -cn --arg src "$guest_registry/$repo" --arg md "$manifest_digest" \
  --arg l "$(join "${layers[@]}")" --arg c "$(join "${chains[@]}")" \
  '{volume_type: "image_guest_pull", source: $src,
    image_pull: {metadata: {"io.lazysnap.version": "1", "io.lazysnap.manifest-digest": $md,
                            "io.lazysnap.layers": $l, "io.lazysnap.chain-ids": $c}}}' \
  >"$work/descriptor.json"
say "descriptor: $(cat "$work/descriptor.json")"

# 5. The initramfs.
say "building initramfs"
root="$work/initramfs"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,rootfs,state,lib/modules,etc}
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [[ -e $root/bin/$a ]] || ln -s busybox "$root/bin/$a"; done
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
cp "$guest_bin" "$root/bin/lazysnap-guest"
strip "$root/bin/lazysnap-guest" 2>/dev/null || true
# Every shared library ldd lists, and the dynamic loader, at the same paths.
for lib in $(ldd "$guest_bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The descriptor reaches the guest on the kernel command line (as a Kata agent would get it from
# its host), base64 so it stays one word.
descriptor_b64=$(base64 -w0 <"$work/descriptor.json")
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
# Kernel modules, in load order (dependencies first); built-in ones need nothing.
: >"$root/modules.list"
for m in virtio_pci virtio_net overlay fuse erofs; do
  while read -r kind path _; do
    [[ $kind == insmod ]] || continue
    name=$(basename "$path")
    dest="${name%%.ko*}.ko"
    grep -qx "$dest" "$root/modules.list" && continue
    case $name in
      *.ko.xz) xz -dc "$path" >"$root/lib/modules/$dest" ;;
      *.ko.zst) zstd -qdc "$path" >"$root/lib/modules/$dest" ;;
      *.ko.gz) gzip -dc "$path" >"$root/lib/modules/$dest" ;;
      *) cp "$path" "$root/lib/modules/$dest" ;;
    esac
    echo "$dest" >>"$root/modules.list"
  done < <(modprobe -S "$kver" --show-depends "$m" 2>/dev/null || echo "missing $m")
done
say "modules: $(tr '\n' ' ' <"$root/modules.list")"

cat >"$root/init" <<INIT
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs state /state
echo "vm-test: booted after \$(cut -d' ' -f1 /proc/uptime) s"
for m in \$(cat /modules.list); do insmod /lib/modules/\$m 2>/dev/null || echo "vm-test: insmod \$m failed (non-fatal if only a CPU-specific crypto module)"; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
grep -E 'fuse|overlay|erofs' /proc/filesystems | tr '\n' ' '; echo
echo "vm-test: starting lazysnap-guest at \$(cut -d' ' -f1 /proc/uptime) s"
sed -n "s/.*lazysnap\\.descriptor=\\([^ ]*\\).*/\\1/p" /proc/cmdline >/tmp/descriptor.b64
lazysnap-guest mount --descriptor /tmp/descriptor.b64 --target /rootfs --state /state \\
  --plain-http $guest_registry --log-level info &
agent=\$!
i=0
while [ ! -e /rootfs/app/hello.sh ] && [ \$i -lt 3000 ] && kill -0 \$agent 2>/dev/null; do
  sleep 0.1; i=\$((i + 1))
done
if [ -e /rootfs/app/hello.sh ]; then
  echo "vm-test: rootfs ready at \$(cut -d' ' -f1 /proc/uptime) s"
  chroot /rootfs /bin/sh /app/hello.sh
  chroot /rootfs sha256sum /app/data.bin
  echo "vm-test: read done at \$(cut -d' ' -f1 /proc/uptime) s"
  cat /proc/mounts | grep -E 'rootfs|fuse|overlay'
else
  echo "vm-test: rootfs never appeared"
fi
kill -TERM \$agent 2>/dev/null
i=0; while kill -0 \$agent 2>/dev/null && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
echo VM-TEST-DONE
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.cpio.gz"
say "initramfs $(du -h "$work/initrd.cpio.gz" | cut -f1)"

# 6. Boot it. KVM when it works; nested KVM can pass the probe yet hang in early boot (seen under
# Firecracker), so a KVM boot that prints nothing from /init within 60 s is retried under TCG.
log="$work/serial.log"
run_qemu() {  # accel; runs qemu in the background, sets qpid and t_vm
  local cpu=()
  t_vm=$(now)
  [[ $1 == kvm ]] && cpu=(-cpu host)
  timeout "$vm_timeout" qemu-system-x86_64 -accel "$1" "${cpu[@]}" -m 1024 -smp 2 -nographic \
    -no-reboot -monitor none -kernel "/boot/vmlinuz-$kver" -initrd "$work/initrd.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet lazysnap.descriptor=$descriptor_b64" -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    </dev/null >"$log" 2>&1 &
  qpid=$!
  pids+=("$qpid")
}
before=$(awk '/"GET \/v2\/.*\/blobs\// {s += $10} END {print s + 0}' "$work/registry/log")
accel="${LAZYSNAP_VM_ACCEL:-}"
if [[ -z $accel ]]; then
  accel=tcg
  if [[ -r /dev/kvm && -w /dev/kvm ]] &&
    echo quit | timeout 20 qemu-system-x86_64 -accel kvm -M none -nographic -monitor stdio \
      >/dev/null 2>&1; then
    accel=kvm
  fi
  if [[ $accel == kvm ]]; then
    say "trying KVM"
    run_qemu kvm
    for _ in $(seq 600); do
      grep -q "vm-test: booted" "$log" 2>/dev/null && break
      kill -0 "$qpid" 2>/dev/null || break
      sleep 0.1
    done
    if ! grep -q "vm-test: booted" "$log" 2>/dev/null; then
      say "KVM boot failed or hung ($(tr -d '\r' <"$log" | grep -a qemu-system | head -1)); using TCG"
      kill "$qpid" 2>/dev/null || true
      wait "$qpid" 2>/dev/null || true
      accel=tcg
    fi
  fi
fi
if [[ $accel == tcg || -n ${LAZYSNAP_VM_ACCEL:-} ]]; then
  say "booting the microVM (accel $accel, timeout ${vm_timeout}s)"
  run_qemu "$accel"
else
  say "booted the microVM (accel $accel, timeout ${vm_timeout}s)"
fi
tail -n +1 -f --pid="$qpid" "$log" | sed -u 's/^/    | /' &
tpid=$!
set +e
wait "$qpid"
qrc=$?
set -e
wait "$tpid" 2>/dev/null || true
t_end=$(now)
after=$(awk '/"GET \/v2\/.*\/blobs\// {s += $10} END {print s + 0}' "$work/registry/log")
image_bytes=$(du -cb "$oci"/blobs/sha256/* | tail -1 | cut -f1)

ok=1
tr -d '\r' <"$log" >"$log.clean"
grep -qxF "$marker" "$log.clean" || { echo "FAIL: marker line not in the serial log" >&2; ok=0; }
grep -qE "^$want_sha +/app/data.bin\$" "$log.clean" || { echo "FAIL: sha256 $want_sha of /app/data.bin not in the serial log" >&2; ok=0; }
grep -qx "VM-TEST-DONE" "$log.clean" || { echo "FAIL: VM-TEST-DONE not in the serial log" >&2; ok=0; }
((qrc == 124)) && echo "FAIL: qemu timed out after ${vm_timeout}s" >&2

echo
printf 'qemu exit:        %d (accel %s, kernel %s)\n' "$qrc" "$accel" "$kver"
printf 'VM run:           %s s (boot, mount, read 30 MB, poweroff)\n' "$(elapsed "$t_vm" "$t_end")"
printf 'whole test:       %s s\n' "$(elapsed "$t_start" "$t_end")"
printf 'registry bytes:   %d fetched by the guest (image blobs: %d)\n' "$((after - before))" "$image_bytes"
if ((ok)); then
  echo "vm-test: PASS"
  exit 0
fi
echo "vm-test: FAIL (serial log: $log; set LAZYSNAP_VM_KEEP=1 to keep it)" >&2
exit 1
