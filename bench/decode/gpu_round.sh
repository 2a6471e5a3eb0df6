#!/usr/bin/env bash
# One device call for the CUDA decode kernels: test_decode_cuda, then qwen3vl-decode-bench for the
# CUDA-core kernel (default) and the tensor-core kernel (QWEN3VL_DECODE_MMA=1) in several block
# shapes, PyTorch SDPA on the same shape, then contiguous / bf16 / forced splits, and per-kernel
# times from nsys where it is installed.
#   bench/decode/gpu_round.sh pack <build dir> <carry dir>   (here: copies binaries + runtimes)
#   bench/decode/gpu_round.sh run <carry dir>                (on the GPU machine)
set -uo pipefail
case "${1:-}" in
pack)
  rm -rf "$3" && mkdir -p "$3"
  cp "$2/tests/test_decode_cuda" "$2/bench/decode/qwen3vl-decode-bench" "$3/"
  cp -L /usr/lib/x86_64-linux-gnu/libtbb.so.12 /usr/local/cuda/lib64/libcudart.so.13 "$3/"
  du -sh "$3" ;;
run)
  c=$2
  cublas=$(dirname "$(ls /usr/local/cuda/lib64/libcublas.so.* /usr/local/cuda/targets/*/lib/libcublas.so.* 2>/dev/null | head -n 1)")
  export LD_LIBRARY_PATH=$c:$cublas:${LD_LIBRARY_PATH:-}
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  timeout 60 "$c/test_decode_cuda" --gtest_brief=1 2>&1 | tail -n 8
  bench() { echo "== $*"; timeout 40 env "$@" "$c/qwen3vl-decode-bench" --device cuda --lens "${LENS:-4096,16384,65536}" ${ARGS:-}; }
  m="QWEN3VL_DECODE_MMA=1 QWEN3VL_DECODE_MMA_WARPS"
  bench QWEN3VL_DECODE_MMA=0
  # Tensor-core block shapes: warps a block, at most this many KV heads a block.
  for shape in "8 1" "8 8" "4 4" "4 1" "4 2"; do
    set -- $shape
    bench $m=$1 QWEN3VL_DECODE_MMA_HEADS=$2
  done
  timeout 40 python3 bench/decode/sdpa_decode.py
  ARGS="--layout contiguous" bench QWEN3VL_DECODE_MMA=0
  ARGS="--layout contiguous" bench QWEN3VL_DECODE_MMA=1
  ARGS="--dtype bf16" bench QWEN3VL_DECODE_MMA=1
  for s in 16 66; do LENS=4096 ARGS="--splits $s" bench QWEN3VL_DECODE_MMA=1; done
  for s in 66 264; do LENS=16384 ARGS="--splits $s" bench QWEN3VL_DECODE_MMA=1; done
  if command -v nsys >/dev/null; then  # per-kernel times (decode kernel vs merge) at KV 4096
    for mma in 0 1; do
      QWEN3VL_DECODE_MMA=$mma timeout 40 nsys profile \
        --cuda-graph-trace=node -o /tmp/nsys$mma --stats=false "$c/qwen3vl-decode-bench" --device cuda --lens 4096 >/dev/null 2>&1
      timeout 30 nsys stats -r cuda_gpu_kern_sum --format csv /tmp/nsys$mma.nsys-rep 2>/dev/null | cut -c1-200 | head -n 8
    done
  else echo "no nsys"; fi ;;
*) echo "usage: $0 pack <build> <carry> | run <carry>"; exit 2 ;;
esac
