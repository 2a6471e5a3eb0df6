#!/usr/bin/env bash
# The CUDA backend on a lent sm_90 GPU, in one call.
#
#   scripts/gpu/cuda.sh pack   (here, no GPU needed) builds the sm_90 binaries with CUDA 13, the
#                              sm_61 build with CUDA 11.8 (scripts/build-sm61.sh: sm_61 SASS plus
#                              compute_61 PTX), and copies both with the shared libraries they need
#                              into build-cuda-carry/ (ignored by git; pass it to the device run as
#                              a carried path).
#   scripts/gpu/cuda.sh run    (on the GPU machine) runs, in order: the CUDA tests of the sm_90
#                              build; the same tests of the sm_61 build, whose compute_61 PTX the
#                              driver JIT-compiles for sm_90; compute-sanitizer memcheck and
#                              racecheck on the reduced sweep; qwen3vl-attn-bench cuda-prefill
#                              (with cuBLAS SGEMM) and PyTorch SDPA fp32; then the summary table. Logs and JSON go to
#                              $OUT (or build-gpu-out/), the table is printed last.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=${QWEN3VL_CUDA_CARRY:-$root/build-cuda-carry}

pack() {
  set -e
  local build=$root/build-cuda-gpu
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQWEN3VL_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90-real \
    -DQWEN3VL_BENCH_OPENBLAS=OFF \
    >/dev/null
  cmake --build "$build" -j2 --target test_attention_cuda qwen3vl-attn-bench
  if [ "${QWEN3VL_SM61_QUICK:-0}" = 1 ] && [ -d "$root/build-sm61" ]; then
    # Only the test binary, with build-sm61.sh's environment (CUDA 13 off PATH).
    # The ptxas report of the objects rebuilt here (kernel, registers, shared memory, spills).
    find "$root/build-sm61/cuda" -name '*.cu.o' -delete
    (PATH=/usr/bin:$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '^/usr/local/cuda' | paste -sd: -)
     unset CUDACXX CUDA_PATH CUDA_HOME CUDAToolkit_ROOT
     cmake --build "$root/build-sm61" --target test_attention_cuda) |
      grep -E "Compiling entry function|Used [0-9]+ registers|spill" |
      sed -E "s/.*Compiling entry function '([^']*)'.*/\1/" |
      { command -v cu++filt >/dev/null && cu++filt || c++filt; } >"$root/build-sm61-report.txt"
  else
    "$root/scripts/build-sm61.sh" >"$root/build-sm61-report.txt"
  fi
  rm -rf "$carry"
  mkdir -p "$carry/bin" "$carry/bin-sm61" "$carry/lib"
  cp "$build/tests/test_attention_cuda" "$build/bench/qwen3vl-attn-bench" "$carry/bin/"
  cp "$root/build-sm61/tests/test_attention_cuda" "$carry/bin-sm61/"
  [ -e "$root/build-sm61-report.txt" ] && cp "$root/build-sm61-report.txt" "$carry/"
  # What the device image may lack: oneTBB and both CUDA runtimes (cuBLAS comes from its CUDA).
  cp -L /usr/lib/x86_64-linux-gnu/libtbb.so.12 /usr/local/cuda/lib/libcudart.so.13 \
    /usr/lib/x86_64-linux-gnu/libcudart.so.11.0 "$carry/lib/"
  du -sh "$carry"
}

run() {
  local out=${OUT:-$root/build-gpu-out}  # build* is ignored by git
  mkdir -p "$out"
  local log=$out/run.log
  : >"$log"
  local cublas
  cublas=$(dirname "$(ls /usr/local/cuda/lib64/libcublas.so.13 /usr/local/cuda/targets/*/lib/libcublas.so.13 \
    2>/dev/null | head -n 1)" 2>/dev/null)
  [ -n "$cublas" ] || cublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH="$carry/lib:${cublas}:${LD_LIBRARY_PATH:-}"
  local failed=0
  step() {  # step <name> <command...>: logs to run.log, prints rc, time and the tail
    local name=$1 start=$SECONDS rc
    shift
    echo "===== $name: $*" >>"$log"
    "$@" >>"$log" 2>&1
    rc=$?
    echo "== $name: rc=$rc ($((SECONDS - start)) s)"
    [ "$rc" = 0 ] || failed=1
    return 0
  }
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv | tee -a "$log"
  echo "commit $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)" | tee -a "$log"
  step tests_sm90 "$carry/bin/test_attention_cuda"
  step tests_sm61_ptx_jit env CUDA_CACHE_PATH=/tmp/qwen3vl-jit "$carry/bin-sm61/test_attention_cuda"
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 3 --leak-check no \
    "$carry/bin/test_attention_cuda" --gtest_filter='CudaSanitize.*'
  step racecheck compute-sanitizer --tool racecheck --error-exitcode 3 \
    "$carry/bin/test_attention_cuda" --gtest_filter='CudaSanitize.*'
  step bench "$carry/bin/qwen3vl-attn-bench" cuda-prefill --json "$out/bench.json"
  step sdpa python3 "$root/scripts/gpu/sdpa_bench.py" --json "$out/sdpa.jsonl"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |^\[==========\]|ERROR SUMMARY|RACECHECK SUMMARY|error" "$log" |
    sort | uniq -c | sort -rn | head -n 40
  python3 "$root/scripts/gpu/summarize.py" "$out/bench.json" "$out/sdpa.jsonl" >"$out/summary.md" &&
    cat "$out/summary.md"
  return $failed
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: $0 pack|run" >&2; exit 2 ;;
esac
