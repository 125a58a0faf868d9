#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (root .clang-format) would write.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -v '^third_party/')
if ((${#files[@]})); then
  clang-format --dry-run -Werror "${files[@]}"
fi
echo "check-format: ${#files[@]} files formatted"
