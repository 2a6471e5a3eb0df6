#!/usr/bin/env bash
# The formatting check CI runs: every tracked C++/CUDA source must be as clang-format (Debian 12's,
# version 14, with the repository's .clang-format) writes it. `scripts/check-format.sh --fix`
# rewrites the files that differ.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
qwen3vl_apt_install clang-format

fix=0
[ "${1:-}" = "--fix" ] && fix=1
mapfile -t files < <(git ls-files '*.hpp' '*.cpp' '*.h' '*.cu' '*.cuh' '*.inl')
if [ "$fix" = 1 ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
# One clang-format process for every file; its diagnostics name the files that differ.
mapfile -t bad < <(clang-format --dry-run -Werror "${files[@]}" 2>&1 |
  sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error:.*/\1/p' | sort -u)
if [ "${#bad[@]}" -gt 0 ]; then
  echo "qwen3vl: ${#bad[@]} file(s) not formatted (run scripts/check-format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "qwen3vl: formatting checked (${#files[@]} files, $(clang-format --version | grep -o 'version [0-9.]*'))"
