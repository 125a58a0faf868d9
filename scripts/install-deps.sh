#!/usr/bin/env bash
# Installs every Debian 12 package lazysnap's build, tests, benchmarks and demo need, then builds
# erofs-utils 1.8 (liberofs + mkfs/fsck/dump.erofs) from Debian 13's source package into a
# project-local prefix. Idempotent: a second run installs nothing and rebuilds nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format git
  # libraries
  libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev liburing-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libsqlite3-dev nlohmann-json3-dev libtomlplusplus-dev zlib1g-dev libzstd-dev
  libisal-dev  # ISA-L: the lazy read path inflates with it (2x zlib here)
  libgtest-dev libgmock-dev libbenchmark-dev
  # containerd's snapshots.proto
  golang-github-containerd-containerd-dev
  # real peers for tests, benchmarks and the demo
  containerd runc docker-registry skopeo umoci busybox-static curl openssl apache2-utils
  iproute2 procps psmisc util-linux e2fsprogs python3 bc zstd debootstrap gnuplot-nox
  # erofs-utils 1.8 build dependencies
  dpkg-dev autoconf automake libtool liblz4-dev liblzma-dev uuid-dev libselinux1-dev libdeflate-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

"$here/scripts/build-erofs-utils.sh"
