#!/usr/bin/env bash
# The tests: missing Debian packages, then the `release` workflow and the `debug-asan` workflow
# (ASan + UBSan), each configure + build + ctest (unit tests, header checks, consumer projects).
# GPU tests (label "gpu") run only where a GPU is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  cmake --workflow --preset release
else
  echo "qwen3vl: no GPU visible: tests labelled gpu are left out"
  cmake --workflow --preset release-cpu
fi
cmake --workflow --preset debug-asan
