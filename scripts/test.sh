#!/usr/bin/env bash
# The tests: missing Debian packages, the formatting check, then the Release workflow and the `debug-asan` workflow
# (ASan + UBSan), each configure + build + ctest (unit tests, header checks, consumer projects;
# the consumer projects only in the Release run), two tests at a time; then the Python package
# over the Release build's library (scripts/test-python.sh).
# Where no GPU is visible the Release workflow is `release-nogpu`: the CUDA code (if a CUDA
# compiler is found) is compiled for its default architectures (75, 80, 90 with CUDA 13) as a
# compile check, and tests labelled "gpu" are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/presets.sh
scripts/install-deps.sh

scripts/check-format.sh  # every tracked C++/CUDA source as clang-format 14 writes it

preset=$(qwen3vl_release_preset)
echo "qwen3vl: workflows $preset and debug-asan"
cmake --workflow --preset "$preset"
cmake --workflow --preset debug-asan

# The Python package, linked against the Release build's library (installed to a prefix inside
# the build tree, so the library is not compiled a second time).
cmake --install "build-$preset" --prefix "build-$preset/install-python" > /dev/null
scripts/test-python.sh "build-$preset/install-python"
