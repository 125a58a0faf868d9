#!/usr/bin/env bash
# The test command: installs dependencies, builds everything with ASan+UBSan and -Werror, checks
# formatting, and runs the whole suite (unit tests plus tests against real containerd,
# docker-registry, FUSE and the kernel's overlayfs/EROFS). Needs root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${LAZYSNAP_TEST_BUILD_DIR:-$here/build-test}"

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: must run as root (the tests mount filesystems and run containerd)" >&2
  exit 1
fi

"$here/scripts/install-deps.sh"

cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLAZYSNAP_SANITIZE=ON -DLAZYSNAP_WERROR=ON
cmake --build "$build" -j"$(nproc)"

"$here/scripts/check-format.sh"

cd "$build"
# halt_on_error keeps the first sanitizer report readable; leak checking stays on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --output-on-failure -j"$(nproc)" --timeout 600

# The microVM test of the guest agent (qemu + a Debian kernel + an initramfs it builds; installs
# qemu-system-x86 and linux-image-cloud-amd64 and builds Release binaries in build-vm the first
# time, then ~15 s a run under TCG): opt in with LAZYSNAP_VM_TEST=1.
if [[ ${LAZYSNAP_VM_TEST:-0} == 1 ]]; then
  LAZYSNAP_VM_ACCEL="${LAZYSNAP_VM_ACCEL:-tcg}" bash "$here/scripts/vm-test.sh"
fi
