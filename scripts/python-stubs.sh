#!/usr/bin/env bash
# Regenerates python/qwen3vl_attention/_core.pyi (the extension's type stubs) with nanobind's
# stubgen from an installed package; --check compares instead of writing (exit 1 when they differ).
# Usage: scripts/python-stubs.sh [--check] [PYTHON]   (PYTHON: an interpreter that imports
# qwen3vl_attention and has nanobind; default build-python/venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
python=${1:-build-python/venv/bin/python}
case "$python" in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; esac
stub=python/qwen3vl_attention/_core.pyi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Run from the temporary directory so that the installed package is imported, not python/.
(cd "$tmp" && "$python" -m nanobind.stubgen -q -m qwen3vl_attention._core -o _core.pyi)
if [ "$check" = 1 ]; then
  if ! diff -u "$stub" "$tmp/_core.pyi"; then
    echo "qwen3vl: $stub is stale; run scripts/python-stubs.sh and commit it" >&2
    exit 1
  fi
else
  cp "$tmp/_core.pyi" "$stub"
fi
