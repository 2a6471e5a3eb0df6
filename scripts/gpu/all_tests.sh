#!/usr/bin/env bash
# Every GPU test of the library on a lent sm_90 GPU, in one call.
#
#   scripts/gpu/all_tests.sh pack   (here, no GPU needed) builds, with CUDA 13 for sm_90, every
#                                   test labelled gpu in tests/CMakeLists.txt and copies them with
#                                   the shared libraries they need into build-gpu-carry/ (ignored
#                                   by git; pass it to the device run as a carried path).
#   scripts/gpu/all_tests.sh run    (on the GPU machine) runs each test binary; logs go to $OUT (or
#                                   build-gpu-out/), and a pass/fail line per binary is printed.
# The fixture directories are compiled in as absolute paths of this checkout; `run` links this
# checkout there when the device copy lives elsewhere.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=${QWEN3VL_GPU_CARRY:-$root/build-gpu-carry}

# The tests whose qwen3vl_add_test(...) call carries LABELS gpu.
gpu_tests() {
  python3 - "$root/tests/CMakeLists.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
for m in re.finditer(r"qwen3vl_add_test\((\w+)([^)]*)\)", text):
    if re.search(r"LABELS\s+gpu", m.group(2)):
        print(m.group(1))
EOF
}

pack() {
  set -e
  local build=$root/build-gpu-all
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQWEN3VL_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90-real \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    -DQWEN3VL_BENCH_OPENBLAS=OFF >/dev/null
  local targets
  targets=$(gpu_tests | tr '\n' ' ')
  cmake --build "$build" -j2 --target $targets
  rm -rf "$carry"
  mkdir -p "$carry/bin" "$carry/lib"
  for t in $targets; do cp "$build/tests/$t" "$carry/bin/"; done
  echo "$root" >"$carry/source_root"
  (cd "$root" && git rev-parse --short HEAD && git status --porcelain | head -n 5) >"$carry/commit"
  # What the device image may lack: oneTBB and the CUDA 13 runtime (cuBLAS comes from its CUDA).
  cp -L /usr/lib/x86_64-linux-gnu/libtbb.so.12 "$(ls /usr/local/cuda/lib64/libcudart.so.13 \
    /usr/local/cuda/lib/libcudart.so.13 2>/dev/null | head -n 1)" "$carry/lib/"
  du -sh "$carry"
}

run() {
  local out=${OUT:-$root/build-gpu-out}
  mkdir -p "$out"
  local cublas
  cublas=$(dirname "$(ls /usr/local/cuda/lib64/libcublas.so.13 /usr/local/cuda/targets/*/lib/libcublas.so.13 \
    2>/dev/null | head -n 1)" 2>/dev/null)
  export LD_LIBRARY_PATH="$carry/lib:${cublas}:${LD_LIBRARY_PATH:-}"
  local source_root
  source_root=$(cat "$carry/source_root")
  if [ ! -e "$source_root" ]; then mkdir -p "$(dirname "$source_root")" && ln -s "$root" "$source_root"; fi
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  echo "built from commit $(cat "$carry/commit")"
  local failed=0
  for bin in "$carry"/bin/*; do
    local name start=$SECONDS rc
    name=$(basename "$bin")
    "$bin" >"$out/$name.log" 2>&1
    rc=$?
    [ "$rc" = 0 ] || failed=1
    echo "$name: rc=$rc ($((SECONDS - start)) s) $(grep -E '^\[  (PASSED|FAILED) ' "$out/$name.log" | tr '\n' ' ')"
    grep -E '^\[  FAILED  \] [A-Za-z]' "$out/$name.log" | head -n 10
  done
  return $failed
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: $0 pack|run" >&2; exit 2 ;;
esac
