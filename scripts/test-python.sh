#!/usr/bin/env bash
# The Python package: creates a virtual environment (build-python/venv, or $QWEN3VL_VENV), builds
# and installs the package into it with pip, runs its tests (python/tests) and checks that the
# committed type stubs match the module.
# Usage: scripts/test-python.sh [PREFIX]
#   PREFIX: an installed library (cmake --install <build> --prefix PREFIX) for the module to link,
#   so that the library is not compiled a second time; without it pip builds the library too.
# Environment: PYTHON (the interpreter for the venv, default python3), QWEN3VL_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh  # python3-venv, python3-dev and the library's build dependencies
venv=${QWEN3VL_VENV:-build-python/venv}
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"
# The build requirements too: the package builds without isolation (no download per build).
"$py" -m pip install -q --disable-pip-version-check numpy pytest "nanobind==3.1.0" \
  "scikit-build-core>=0.10"
if [ -n "${1:-}" ]; then
  prefix=$(cd "$1" && pwd)
  export CMAKE_PREFIX_PATH="$prefix${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  echo "qwen3vl: python package over the library installed in $prefix"
fi
if command -v ccache > /dev/null; then
  export CMAKE_ARGS="${CMAKE_ARGS:+$CMAKE_ARGS }-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
# A build directory kept between runs (no isolation, so its cached paths stay valid).
"$py" -m pip install -q --disable-pip-version-check --no-build-isolation --force-reinstall \
  --no-deps -C build-dir=build-python/build .
"$py" -m pytest -q python/tests
scripts/python-stubs.sh --check "$py"
