#!/usr/bin/env bash
# One device call for the CUDA decode figures of docs/performance.md "## Decode": test_decode_cuda,
# then qwen3vl-attn-bench decode (the default kernel paged and contiguous, twice; bf16; the CUDA-core
# kernel; forced splits at KV 4096) and PyTorch SDPA (every backend) on the same shape. The GPU
# targets as a whole: scripts/gpu/targets.sh.
#   bench/kv_cache/gpu_round.sh pack <build dir> <carry dir>   (here: copies binaries + runtimes)
#   bench/kv_cache/gpu_round.sh run <carry dir>                (on the GPU machine, repository root)
set -uo pipefail
case "${1:-}" in
pack)
  rm -rf "$3" && mkdir -p "$3"
  cp "$2/tests/test_decode_cuda" "$2/bench/qwen3vl-attn-bench" "$3/"
  cp -L /usr/lib/x86_64-linux-gnu/libtbb.so.12 /usr/local/cuda/lib64/libcudart.so.13 "$3/"
  du -sh "$3" ;;
run)
  c=$2
  cublas=$(dirname "$(ls /usr/local/cuda/lib64/libcublas.so.* /usr/local/cuda/targets/*/lib/libcublas.so.* 2>/dev/null | head -n 1)")
  export LD_LIBRARY_PATH=$c:$cublas:${LD_LIBRARY_PATH:-}
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  timeout 90 "$c/test_decode_cuda" --gtest_brief=1 2>&1 | tail -n 2
  # One line per setting: KV length: us / splits (fraction of the copy rate), event-timed and
  # graph-timed, each against a copy timed the same way.
  bench() {
    printf "%-36s " "${ARGS:-default}"
    # shellcheck disable=SC2086  # ARGS: several words
    timeout 60 "$c/qwen3vl-attn-bench" decode --device cuda --lens "${LENS:-4096,16384,65536}" ${ARGS:-} 2>&1 |
      awk '$1 == "cuda" { printf "%s: %.1f us / %s (%.3f), graph %.1f us (%.3f)  ", $2, $4 * 1000, $3, $8, $12 * 1000, $14 } /rror/'
    echo
  }
  for _ in 1 2; do
    ARGS="--layout paged" bench
    ARGS="--layout contiguous" bench
  done
  ARGS="--dtype bf16" bench
  ARGS="--layout paged --tensor-cores 0" bench
  for s in 8 12 24; do LENS=4096 ARGS="--splits $s" bench; done
  timeout 120 python3 bench/kv_cache/sdpa_decode.py 2>&1 | grep -E "^#|best" ;;
*) echo "usage: $0 pack <build> <carry> | run <carry>"; exit 2 ;;
esac
