#!/usr/bin/env bash
# The sm_61 (Pascal) build: Debian's CUDA 11.8 (CUDA 13 cannot compile below sm_75), the `sm61`
# preset, then ptxas's resource report (registers, shared memory, spills) for every kernel.
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

# Recompile the CUDA objects so that ptxas reports every kernel, not only the changed ones.
build_dir="$root/build-sm61"
[ -d "$build_dir" ] && find "$build_dir" -name '*.cu.o' -delete
cmake --preset sm61 -S "$root" >/dev/null
log="$build_dir/build.log"
status=0
cmake --build --preset sm61 >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  grep -E -A12 '^FAILED|error' "$log" | head -n 60
  echo "qwen3vl: the sm61 build FAILED; full log: $log (the report below covers what compiled)"
else
  echo "qwen3vl: built $build_dir (log: $log)"
fi

echo
echo "== ptxas resource report (sm_61) =="
demangle=$(command -v cu++filt || command -v c++filt || echo cat)
if grep -q "^ptxas info *: Used" "$log"; then
  # Per kernel: its name, then registers, shared/constant memory, stack and spills.
  awk '/Compiling entry function/ { split($0, q, "\047"); name = q[2]; next }
       /bytes stack frame/ { sub(/^ +/, ""); frame = $0; next }
       /^ptxas info *: Used/ { sub(/^ptxas info *: /, ""); print name; print "    " $0 "; " frame }' \
    "$log" | $demangle
else
  echo "(no kernels: the CUDA sources compiled for sm_61 define no __global__ functions yet)"
fi
exit "$status"
