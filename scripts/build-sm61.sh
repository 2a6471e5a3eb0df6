#!/usr/bin/env bash
# The Pascal build: Debian's CUDA 11.8 (CUDA 13 cannot compile below sm_75), the `sm61` preset
# (sm_60 and sm_61 SASS, compute_60 PTX), then ptxas's resource report (registers, shared memory,
# stack, spills) for every kernel and architecture, and its check: no spills and at most 48 KB of
# static + dynamic shared memory per block. Exits non-zero when the build or the check fails.
# Usage: scripts/build-sm61.sh   (needs root or sudo the first time, to install the toolkit)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/apt.sh"
"$root/scripts/install-deps.sh"

# nvidia-cuda-toolkit lives in Debian's non-free component.
enable_non_free() {
  apt-cache policy nvidia-cuda-toolkit 2>/dev/null | grep -q 'Candidate: [0-9]' && return 0
  echo "qwen3vl: enabling Debian's contrib and non-free components"
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    qwen3vl_sudo sed -i -E '/^Components:/{/non-free( |$)/!s/$/ contrib non-free/}' "$f"
  done
  if [ -e /etc/apt/sources.list ]; then
    qwen3vl_sudo sed -i -E '/^deb /{/non-free( |$)/!s/$/ contrib non-free/}' /etc/apt/sources.list
  fi
  qwen3vl_sudo apt-get update -qq
  QWEN3VL_APT_UPDATED=1
}

if [ -n "$(qwen3vl_missing_packages nvidia-cuda-toolkit g++-11)" ]; then
  started=$SECONDS
  enable_non_free
  qwen3vl_apt_install nvidia-cuda-toolkit g++-11
  echo "qwen3vl: CUDA 11.8 toolkit installed in $((SECONDS - started)) s"
fi

# Keep CUDA 13 out of this build: its bin off PATH, no variables pointing at it. Debian's nvcc finds
# ptxas, nvlink and fatbinary through PATH, so the preset also puts /usr/bin first (some machines
# have CUDA 13 wrappers in /usr/local/bin).
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '^/usr/local/cuda' | paste -sd: -)
export PATH
unset CUDACXX CUDA_PATH CUDA_HOME CUDAToolkit_ROOT
echo "qwen3vl: nvcc $(/usr/bin/nvcc --version | grep -o 'release [0-9.]*'), ptxas at" \
  "$(PATH=/usr/bin:$PATH command -v ptxas), host compiler $(g++-11 -dumpfullversion)"

# Recompile the CUDA objects so that ptxas reports every kernel, not only the changed ones. The C++
# objects go through ccache when it is installed (the CUDA ones never: a cache hit prints nothing).
build_dir="$root/build-sm61"
[ -d "$build_dir" ] && find "$build_dir" -name '*.cu.o' -delete
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake --preset sm61 -S "$root" "${launcher[@]}" >/dev/null
log="$build_dir/build.log"
status=0
started=$SECONDS
cmake --build --preset sm61 >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  grep -E -A12 '^FAILED|error' "$log" | head -n 60
  echo "qwen3vl: the sm61 build FAILED; full log: $log (the report below covers what compiled)"
else
  echo "qwen3vl: built $build_dir in $((SECONDS - started)) s (log: $log)"
fi

echo
"$root/scripts/lib/ptxas_report.sh" "$log" "$root" "$build_dir" || status=$?
exit "$status"
