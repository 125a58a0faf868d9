#!/usr/bin/env bash
# Builds erofs-utils (pinned below) from Debian 13's source package into third_party/erofs-utils
# (gitignored). Debian 12 ships erofs-utils 1.5, which cannot read tar input; 1.8's source builds
# fine on Debian 12. The trixie deb-src entry lives in a private apt state directory so the
# system's sources are never touched. Idempotent: skips everything when the pinned build exists.
set -euo pipefail

version=1.8.6
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix="$here/third_party/erofs-utils"
stamp="$prefix/.built-$version"
[[ -f $stamp ]] && exit 0

work="$here/third_party/.erofs-src"
rm -rf "$work"
mkdir -p "$work/lists/partial" "$prefix"

# Use the mirror this machine's apt already uses (no host is hard-coded here).
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
  sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]*\)\?\([^[:space:]]*\).*/\2/p' |
  grep -v -e security -e '^$' | head -n1 || true)
if [[ -z $mirror ]]; then
  echo "build-erofs-utils: cannot find a Debian mirror in /etc/apt sources" >&2
  exit 1
fi
echo "deb-src [trusted=yes] $mirror trixie main" >"$work/sources.list"

apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/nonexistent
  -o "Dir::State::Lists=$work/lists" -o APT::Get::List-Cleanup=0)
apt-get "${apt_opts[@]}" update -qq
cd "$work"
if ! apt-get "${apt_opts[@]}" source --download-only "erofs-utils=$version-*" >/dev/null 2>&1 &&
  ! apt-get "${apt_opts[@]}" source --download-only erofs-utils; then
  echo "build-erofs-utils: erofs-utils source package not available from $mirror trixie" >&2
  exit 1
fi
dsc=$(ls erofs-utils_*.dsc | head -n1)
got=$(sed -n 's/^Version: \([0-9.]*\).*/\1/p' "$dsc")
if [[ $got != "$version" ]]; then
  echo "build-erofs-utils: need erofs-utils $version, the mirror has $got; update the pin in $0" >&2
  exit 1
fi
dpkg-source --no-check -x "$dsc" src >/dev/null
cd src
./autogen.sh >/dev/null
./configure --prefix="$prefix" --enable-lzma --with-libdeflate --with-libzstd --enable-static \
  --disable-fuse --without-selinux >/dev/null
make -j"$(nproc)" >/dev/null
make install >/dev/null
# liberofs.a and its headers are not installed by `make install`: keep them beside the tools.
mkdir -p "$prefix/lib" "$prefix/include"
cp lib/.libs/liberofs.a "$prefix/lib/"
cp -r include/erofs "$prefix/include/"
[[ -f config.h ]] && cp config.h "$prefix/include/erofs-config.h"
cd "$here"
rm -rf "$work"
touch "$stamp"
echo "build-erofs-utils: erofs-utils $version installed in $prefix"
