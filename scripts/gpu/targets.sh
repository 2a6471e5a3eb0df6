#!/usr/bin/env bash
# The GPU rows of docs/performance.md's targets table, rerun in one device call and printed beside
# the last recorded figures (bench/targets/recorded.json) and, when a baseline build is carried,
# beside the baseline's figures measured in the same call.
#
#   scripts/gpu/targets.sh pack [--baseline DIR|COMMIT] [--dry-run]
#       (here, no GPU needed) builds qwen3vl-cuda-bench, qwen3vl-decode-bench and
#       qwen3vl-quest-bench (CUDA 13, sm_90) in build-targets/ and copies them, with oneTBB and the
#       CUDA runtime, into build-targets-carry/ (ignored by git; carry it to the device run).
#       --baseline DIR: binaries of another build (found by name under DIR; DIR/commit names it);
#       --baseline COMMIT: built here from `git archive COMMIT`, with this tree's bench/decode and
#       bench/cuda in place of the commit's so both builds time the same way (the commit's own
#       benches if that does not build).
#   scripts/gpu/targets.sh run [--rounds N] [--limit-s S] [--dry-run]
#       (on the GPU machine, repository root) per round and step, the baseline and the current
#       binaries one after the other (the order flips each round): flash2 fp32 at N 4096 causal
#       and not, the vision shape and sm61_tiled against flash2 at N 1024 / 4096 (each beside cuBLAS
#       SGEMM); flash2 f16/bf16 at Hq 32 / Hkv 8 at N 4096 / 16384; decode paged and contiguous at
#       KV 4096 / 16384 / 65536 (event-timed and graph-timed, each against a copy timed the same
#       way); Quest against dense decode at 16384 / 65536. After round 1, PyTorch once: SDPA fp32,
#       f16/bf16 GQA prefill and decode, every backend, the fastest kept. Logs and JSON go to $OUT
#       (or build-targets-out/); scripts/gpu/targets.py prints the table last and writes
#       targets.jsonl and recorded.new.json. Each step gets at most 120 s and none runs past
#       --limit-s (default 480) from the first step: a step with under 30 s left is skipped.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=${QWEN3VL_TARGETS_CARRY:-$root/build-targets-carry}
bins="qwen3vl-cuda-bench qwen3vl-decode-bench qwen3vl-quest-bench"
dry=0

# do <command...>: runs it, or prints it under --dry-run.
do_() {
  if [ "$dry" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

configure_and_build() {  # configure_and_build <source> <build dir>
  do_ cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQWEN3VL_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90-real \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    -DQWEN3VL_BENCH_OPENBLAS=OFF -DQWEN3VL_BUILD_TESTS=OFF || return 1
  # shellcheck disable=SC2086  # $bins: one target a word
  do_ cmake --build "$2" -j2 --target $bins
}

copy_bins() {  # copy_bins <dir searched> <destination>
  local b f
  do_ mkdir -p "$2"
  for b in $bins; do
    f=$(find "$1" -name "$b" -type f 2>/dev/null | head -n 1)
    if [ -n "$f" ]; then do_ cp "$f" "$2/"; elif [ "$dry" = 0 ]; then echo "warning: no $b under $1" >&2; fi
  done
}

pack() {
  local baseline=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --baseline) baseline=${2:?--baseline needs a directory or a commit}; shift 2 ;;
      --dry-run) dry=1; shift ;;
      *) echo "pack: unknown argument $1" >&2; return 2 ;;
    esac
  done
  configure_and_build "$root" "$root/build-targets" || return 1
  do_ rm -rf "$carry"
  do_ mkdir -p "$carry/lib"
  copy_bins "$root/build-targets" "$carry/cur"
  if [ "$dry" = 0 ]; then
    (cd "$root" && echo "$(git rev-parse --short HEAD)$([ -n "$(git status --porcelain -uno)" ] && echo -dirty)") \
      >"$carry/cur/commit"
  fi
  if [ -n "$baseline" ] && [ -d "$baseline" ]; then
    copy_bins "$baseline" "$carry/base"
    if [ -e "$baseline/commit" ]; then do_ cp "$baseline/commit" "$carry/base/commit"
    elif [ "$dry" = 0 ]; then echo "$baseline" >"$carry/base/commit"; fi
  elif [ -n "$baseline" ]; then
    # The build directory sits in the source as build-targets does here, so the compile commands
    # match this tree's relative to /work (ccache's base_dir) and unchanged files hit the cache.
    local sha src=$root/build-targets-base/src build=$root/build-targets-base/src/build-targets
    sha=$(cd "$root" && git rev-parse --short "$baseline^{commit}") || { echo "pack: $baseline is neither a directory nor a commit" >&2; return 2; }
    do_ rm -rf "$src"
    do_ mkdir -p "$src"
    if [ "$dry" = 1 ]; then
      echo "+ git archive $sha | tar -x -C $src; cp -r bench/decode bench/cuda over it"
    else
      (cd "$root" && git archive "$sha") | tar -x -C "$src"
      cp -r "$root/bench/decode" "$root/bench/cuda" "$src/bench/"
    fi
    if ! configure_and_build "$src" "$build"; then
      echo "pack: $sha with this tree's benches did not build; building its own benches" >&2
      rm -rf "$src" "$build" && mkdir -p "$src" && (cd "$root" && git archive "$sha") | tar -x -C "$src" &&
        configure_and_build "$src" "$build" || return 1
      sha="$sha (its own benches)"
    fi
    copy_bins "$build" "$carry/base"
    [ "$dry" = 1 ] || echo "$sha" >"$carry/base/commit"
  fi
  # What the device image lacks: oneTBB and the CUDA 13 runtime (cuBLAS comes from its CUDA).
  do_ cp -L /usr/lib/x86_64-linux-gnu/libtbb.so.12 \
    "$(ls /usr/local/cuda/lib64/libcudart.so.13 /usr/local/cuda/lib/libcudart.so.13 2>/dev/null | head -n 1)" \
    "$carry/lib/"
  if [ "$dry" = 0 ]; then
    du -sh "$carry"
    local kib
    kib=$(du -sk "$carry" | cut -f1)
    [ "$kib" -lt $((60 * 1024)) ] || echo "warning: $carry is $kib KiB; a carry holds 64 MiB in all" >&2
  fi
}

run() {
  local rounds=2 limit=480
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds) rounds=$2; shift 2 ;;
      --limit-s) limit=$2; shift 2 ;;
      --dry-run) dry=1; shift ;;
      *) echo "run: unknown argument $1" >&2; return 2 ;;
    esac
  done
  if [ "$dry" = 0 ] && [ ! -x "$carry/cur/qwen3vl-cuda-bench" ]; then
    echo "run: no binaries in $carry/cur: run 'scripts/gpu/targets.sh pack' here and carry build-targets-carry" >&2
    return 2
  fi
  local out=${OUT:-$root/build-targets-out}
  local raw=$out/raw
  mkdir -p "$raw"
  local cublas
  cublas=$(dirname "$(ls /usr/local/cuda/lib64/libcublas.so.13 /usr/local/cuda/targets/*/lib/libcublas.so.13 \
    2>/dev/null | head -n 1)" 2>/dev/null)
  [ -n "$cublas" ] && [ "$cublas" != . ] ||
    cublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH="$carry/lib:${cublas}:${LD_LIBRARY_PATH:-}"
  local builds=cur
  [ -d "$carry/base" ] && builds="base cur"
  if [ "$dry" = 0 ]; then
    nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 >"$out/card.txt"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
    cp "$carry/cur/commit" "$out/commit_cur.txt"
    [ -d "$carry/base" ] && cp "$carry/base/commit" "$out/commit_base.txt"
  fi
  echo "builds: $builds; cur $(cat "$carry/cur/commit" 2>/dev/null)$([ -d "$carry/base" ] && echo "; base $(cat "$carry/base/commit")")"
  local start=$SECONDS

  # step <name> <log> <command...>: runs with stdout and stderr in <log>, killed after 120 s or
  # at the limit, skipped when under 30 s are left; prints one line.
  step() {
    local name=$1 log=$2 t0=$SECONDS rc left
    shift 2
    if [ "$dry" = 1 ]; then printf '+ %s > %s\n' "$*" "$log"; return 0; fi
    left=$((limit - (SECONDS - start)))
    if [ "$left" -lt 30 ]; then echo "== $name: skipped (${left} s left of --limit-s $limit)"; return 0; fi
    [ "$left" -gt 120 ] && left=120
    timeout "$left" "$@" >"$log" 2>&1
    rc=$?
    echo "== $name: rc=$rc ($((SECONDS - t0)) s)$(grep -m1 -iE 'error|usage|unknown' "$log" | cut -c1-100 | sed 's/^/ /')"
  }
  cpp_step() {  # cpp_step <step> <build> <round>
    local b=$2 r=$3 bin=$carry/$2
    case "$1" in
      prefill)
        step "prefill $b r$r" "$raw/prefill.$b.r$r.log" "$bin/qwen3vl-cuda-bench" --variants flash2,sm61_tiled \
          --filter "D128 N4096 f32,D128 N4096 causal f32,D128 N1024 ,vision" --json "$raw/prefill.$b.r$r.jsonl" ;;
      gqa)
        step "gqa $b r$r" "$raw/gqa.$b.r$r.log" "$bin/qwen3vl-cuda-bench" --variants flash2 --dtypes f16,bf16 \
          --kv-heads 8 --seqs 4096,16384 --filter text --json "$raw/gqa.$b.r$r.jsonl" ;;
      decode_paged | decode_contiguous)
        step "$1 $b r$r" "$raw/$1.$b.r$r.log" "$bin/qwen3vl-decode-bench" --device cuda \
          --lens 4096,16384,65536 --layout "${1#decode_}" ;;
      quest)
        step "quest $b r$r" "$raw/quest.$b.r$r.log" "$bin/qwen3vl-quest-bench" --device cuda --lens 16384,65536 \
          --budgets 1024 --data structured --repeats 20 ;;
    esac
  }
  torch_steps() {
    step "torch sdpa fp32" "$raw/sdpa_f32.log" python3 "$root/scripts/gpu/sdpa_bench.py" --dtypes f32 --seqs 4096 \
      --json "$raw/sdpa_f32.jsonl"
    step "torch sdpa f16/bf16 gqa" "$raw/sdpa_gqa.log" python3 "$root/scripts/gpu/sdpa_bench.py" --dtypes f16,bf16 \
      --kv-heads 8 --seqs 4096,16384 --no-vision --json "$raw/sdpa_gqa.jsonl"
    step "torch sdpa decode" "$raw/sdpa_decode.log" python3 "$root/bench/decode/sdpa_decode.py" \
      --json "$raw/sdpa_decode.jsonl"
  }
  local r b order name
  for r in $(seq 1 "$rounds"); do
    order=$builds
    [ $((r % 2)) = 0 ] && order=$(echo "$builds" | tr ' ' '\n' | tac | tr '\n' ' ')
    for name in prefill gqa decode_paged decode_contiguous quest; do
      for b in $order; do cpp_step "$name" "$b" "$r"; done
    done
    [ "$r" = 1 ] && torch_steps
  done
  echo "total $((SECONDS - start)) s"
  if [ "$dry" = 1 ]; then
    echo "+ python3 $root/scripts/gpu/targets.py $out"
  else
    if ! python3 "$root/scripts/gpu/targets.py" "$out" >"$out/table.txt" 2>&1; then
      # The summary failed: the raw result lines instead (the logs stay in $OUT/raw).
      grep -hE '^(cuda |sdpa .*best|# sgemm)' "$raw"/*.log | cut -c1-150 | tail -n 60
    fi
    cat "$out/table.txt"
  fi
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 pack [--baseline DIR|COMMIT] [--dry-run] | run [--rounds N] [--limit-s S] [--dry-run]" >&2; exit 2 ;;
esac
