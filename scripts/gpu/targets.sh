#!/usr/bin/env bash
# The GPU rows of docs/performance.md's targets table, rerun in one device call and printed beside
# the last recorded figures (bench/targets/recorded.json) and, when a baseline build is carried,
# beside the baseline's figures measured in the same call.
#
#   scripts/gpu/targets.sh pack [--baseline DIR|COMMIT] [--dry-run]
#       (here, no GPU needed) builds qwen3vl-attn-bench (CUDA 13, sm_90) in build-targets/ and
#       copies it, with oneTBB and the CUDA runtime, into build-targets-carry/ (ignored by git;
#       carry it to the device run).
#       --baseline DIR: binaries of another build, found by name under DIR: qwen3vl-attn-bench, or
#       the executables it replaced (qwen3vl-cuda-bench, qwen3vl-decode-bench, qwen3vl-quest-bench,
#       e.g. built from d380380); DIR/commit names it.
#       --baseline COMMIT: built here from `git archive COMMIT` with this tree's bench/ in place of
#       the commit's, so both builds time the same way (the commit's own benches if that does not
#       build).
#   scripts/gpu/targets.sh run [--rounds N] [--steps a,b,...] [--limit-s S] [--dry-run]
#       (on the GPU machine, repository root) per round and step, the baseline and the current
#       build one after the other (the order flips each round), each step the same command line
#       for both where both have it:
#         prefill         flash2 fp32 at N 4096 causal and not, the vision shape, and sm61_tiled
#                         against flash2 at N 1024 / 4096, beside cuBLAS SGEMM (cuda-prefill)
#         gqa             flash2 f16/bf16 at Hq 32 / Hkv 8, N 4096 / 16384 (cuda-prefill)
#         decode_paged, decode_contiguous
#                         decode at KV 4096 / 16384 / 65536, event-timed and graph-timed, each
#                         against the copy timed the same way (decode)
#         quest           Quest against dense decode at KV 16384 / 65536, budget 1024 (quest)
#         block_sparse    block-sparse at 50 / 10 / 5% against dense flash2, N 16384
#                         (cuda-prefill --block-sparse)
#         rope            RoPE against a device copy, T 4096 (rope)
#         linear          linear attention T(16384) / T(4096) (linear)
#         dynamic_sparse  block top-k time and recall against dense, N 16384 (dynamic-sparse)
#         moh             mixture-of-heads at 25-100% against dense (moh)
#       An old-executable baseline has the first five steps and block_sparse only. After round 1,
#       PyTorch once: SDPA fp32, f16/bf16 GQA prefill and decode, every backend, the fastest kept.
#       Logs and reports go to $OUT (or build-targets-out/); scripts/gpu/targets.py prints the table
#       last (median over rounds with the min-max spread) and writes targets.jsonl and
#       recorded.new.json. Each step gets at most 120 s and none runs past --limit-s (default 480)
#       from the first step: a step with under 30 s left is skipped. Every step with a baseline at
#       the default 5 rounds may not fit one call: split them with --steps.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=${QWEN3VL_TARGETS_CARRY:-$root/build-targets-carry}
driver=qwen3vl-attn-bench
old_bins="qwen3vl-cuda-bench qwen3vl-decode-bench qwen3vl-quest-bench"
all_steps="prefill gqa decode_paged decode_contiguous quest block_sparse rope linear dynamic_sparse moh"
dry=0

# do_ <command...>: runs it, or prints it under --dry-run.
do_() {
  if [ "$dry" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

configure_and_build() {  # configure_and_build <source> <build dir> <targets> [cmake -D...]
  local src=$1 build=$2 targets=$3
  shift 3
  do_ cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQWEN3VL_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90-real \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    -DQWEN3VL_BENCH_OPENBLAS=OFF -DQWEN3VL_BUILD_TESTS=OFF "$@" || return 1
  # shellcheck disable=SC2086  # $targets: one target a word
  do_ cmake --build "$build" -j2 --target $targets
}

copy_bins() {  # copy_bins <dir searched> <destination> <names>: the ones found
  local b f found=0
  do_ mkdir -p "$2"
  for b in $3; do
    f=$(find "$1" -name "$b" -type f 2>/dev/null | head -n 1)
    if [ -n "$f" ]; then do_ cp "$f" "$2/"; found=1; fi
  done
  [ "$found" = 1 ] || [ "$dry" = 1 ] || { echo "pack: none of $3 under $1" >&2; return 1; }
}

# The benchmarks of a baseline directory: the driver if it has one, else the old executables.
baseline_bins() {
  if [ -n "$(find "$1" -name "$driver" -type f 2>/dev/null | head -n 1)" ]; then echo "$driver"; else echo "$old_bins"; fi
}

# kind_of <build>: "driver" (qwen3vl-attn-bench) or "old" (the executables it replaced); a base
# that is not carried counts as old, so --dry-run shows both command forms.
kind_of() {
  if [ -x "$carry/$1/$driver" ]; then echo driver
  elif [ -d "$carry/$1" ] || [ "$1" = base ]; then echo old
  else echo driver; fi
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
  configure_and_build "$root" "$root/build-targets" "$driver" || return 1
  do_ rm -rf "$carry"
  do_ mkdir -p "$carry/lib"
  copy_bins "$root/build-targets" "$carry/cur" "$driver" || return 1
  if [ "$dry" = 0 ]; then
    (cd "$root" && echo "$(git rev-parse --short HEAD)$([ -n "$(git status --porcelain -uno)" ] && echo -dirty)") \
      >"$carry/cur/commit"
  fi
  if [ -n "$baseline" ] && [ -d "$baseline" ]; then
    copy_bins "$baseline" "$carry/base" "$(baseline_bins "$baseline")" || return 1
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
      echo "+ git archive $sha | tar -x -C $src; replace its bench/ by this tree's"
    else
      (cd "$root" && git archive "$sha") | tar -x -C "$src"
      rm -rf "$src/bench" && cp -r "$root/bench" "$src/bench"
    fi
    local bins=$driver
    if ! configure_and_build "$src" "$build" "$driver" -DQWEN3VL_BENCH_COMMIT="$sha"; then
      echo "pack: $sha with this tree's bench/ did not build; building its own benches" >&2
      rm -rf "$src" "$build" && mkdir -p "$src" && (cd "$root" && git archive "$sha") | tar -x -C "$src" || return 1
      [ -e "$src/bench/cli/routines.hpp" ] || bins=$old_bins
      configure_and_build "$src" "$build" "$bins" -DQWEN3VL_BENCH_COMMIT="$sha" || return 1
      sha="$sha (its own benches)"
    fi
    copy_bins "$build" "$carry/base" "$bins" || return 1
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
  local rounds=5 limit=480 steps=$all_steps s
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds) rounds=${2:?}; shift 2 ;;
      --limit-s) limit=${2:?}; shift 2 ;;
      --steps) steps=$(echo "${2:?}" | tr ',' ' '); shift 2 ;;
      --dry-run) dry=1; shift ;;
      *) echo "run: unknown argument $1" >&2; return 2 ;;
    esac
  done
  for s in $steps; do
    case " $all_steps " in *" $s "*) ;; *) echo "run: unknown step $s (allowed: $all_steps)" >&2; return 2 ;; esac
  done
  if [ "$dry" = 0 ] && [ ! -x "$carry/cur/$driver" ]; then
    echo "run: no $driver in $carry/cur: run 'scripts/gpu/targets.sh pack' here and carry build-targets-carry" >&2
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
  if [ "$dry" = 1 ] && [ ! -d "$carry/base" ]; then
    builds="base cur"
    echo "(dry run without a carried baseline: base shown as the old executables)"
  fi
  if [ "$dry" = 0 ]; then
    nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 >"$out/card.txt"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
    cp "$carry/cur/commit" "$out/commit_cur.txt"
    [ -d "$carry/base" ] && cp "$carry/base/commit" "$out/commit_base.txt"
    for b in $builds; do kind_of "$b" >"$out/kind_$b.txt"; done  # targets.py compares like with like
  fi
  echo "builds: $builds; cur $(cat "$carry/cur/commit" 2>/dev/null)$([ -d "$carry/base" ] && echo "; base $(cat "$carry/base/commit")")"
  echo "steps: $steps; rounds: $rounds"
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
  # bench_step <step> <build> <round>: the step's command line for this build's kind of binaries;
  # the same workload and timing for both kinds, each writing what targets.py reads.
  bench_step() {
    local name=$1 b=$2 r=$3 bin=$carry/$2 tag=$raw/$1.$2.r$3
    local prefill_filter="D128 N4096 f32,D128 N4096 causal f32,D128 N1024 ,vision"
    if [ "$(kind_of "$b")" = old ]; then
      # The executables the driver replaced (e.g. built from d380380), their own flags.
      case "$name" in
        prefill) step "$name $b r$r" "$tag.log" "$bin/qwen3vl-cuda-bench" --variants flash2,sm61_tiled \
            --filter "$prefill_filter" --json "$tag.jsonl" ;;
        gqa) step "$name $b r$r" "$tag.log" "$bin/qwen3vl-cuda-bench" --variants flash2 --dtypes f16,bf16 \
            --kv-heads 8 --seqs 4096,16384 --filter text --json "$tag.jsonl" ;;
        decode_paged | decode_contiguous) step "$name $b r$r" "$tag.log" "$bin/qwen3vl-decode-bench" \
            --device cuda --lens 4096,16384,65536 --layout "${name#decode_}" ;;
        quest) step "$name $b r$r" "$tag.log" "$bin/qwen3vl-quest-bench" --device cuda --lens 16384,65536 \
            --budgets 1024 --data structured --repeats 20 ;;
        block_sparse) step "$name $b r$r" "$tag.log" "$bin/qwen3vl-cuda-bench" --block-sparse --reps 10 \
            --json "$tag.jsonl" ;;
        *) ;;  # not in the old executables: nothing to compare with
      esac
      return 0
    fi
    local d=$bin/$driver
    case "$name" in
      prefill) step "$name $b r$r" "$tag.log" "$d" cuda-prefill --variants flash2,sm61_tiled \
          --filter "$prefill_filter" --json "$tag.json" ;;
      gqa) step "$name $b r$r" "$tag.log" "$d" cuda-prefill --variants flash2 --dtypes f16,bf16 \
          --kv-heads 8 --seqs 4096,16384 --filter text --json "$tag.json" ;;
      decode_paged | decode_contiguous) step "$name $b r$r" "$tag.log" "$d" decode --device cuda \
          --lens 4096,16384,65536 --layout "${name#decode_}" --json "$tag.json" ;;
      quest) step "$name $b r$r" "$tag.log" "$d" quest --device cuda --lens 16384,65536 --budgets 1024 \
          --data structured --repeats 20 --json "$tag.json" ;;
      block_sparse) step "$name $b r$r" "$tag.log" "$d" cuda-prefill --block-sparse --reps 10 --json "$tag.json" ;;
      rope) step "$name $b r$r" "$tag.log" "$d" rope --device cuda --reps 50 --json "$tag.json" ;;
      linear) step "$name $b r$r" "$tag.log" "$d" linear --device cuda --json "$tag.json" ;;
      dynamic_sparse) step "$name $b r$r" "$tag.log" "$d" dynamic-sparse --device cuda --n 16384 --heads 32 \
          --kv-heads 8 --rows 8 --reps 10 --json "$tag.json" ;;
      moh) step "$name $b r$r" "$tag.log" "$d" moh --device cuda --json "$tag.json" ;;
    esac
  }
  torch_steps() {
    local prefill=0 decode=0
    for s in $steps; do
      case "$s" in prefill | gqa) prefill=1 ;; decode_*) decode=1 ;; esac
    done
    if [ "$prefill" = 1 ]; then
      step "torch sdpa fp32" "$raw/sdpa_f32.log" python3 "$root/scripts/gpu/sdpa_bench.py" --dtypes f32 --seqs 4096 \
        --json "$raw/sdpa_f32.jsonl"
      step "torch sdpa f16/bf16 gqa" "$raw/sdpa_gqa.log" python3 "$root/scripts/gpu/sdpa_bench.py" --dtypes f16,bf16 \
        --kv-heads 8 --seqs 4096,16384 --no-vision --json "$raw/sdpa_gqa.jsonl"
    fi
    if [ "$decode" = 1 ]; then
      step "torch sdpa decode" "$raw/sdpa_decode.log" python3 "$root/bench/kv_cache/sdpa_decode.py" \
        --json "$raw/sdpa_decode.jsonl"
    fi
  }
  local r b order name
  for r in $(seq 1 "$rounds"); do
    order=$builds
    [ $((r % 2)) = 0 ] && order=$(echo "$builds" | tr ' ' '\n' | tac | tr '\n' ' ')
    for name in $steps; do
      for b in $order; do bench_step "$name" "$b" "$r"; done
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
  *) echo "usage: $0 pack [--baseline DIR|COMMIT] [--dry-run] | run [--rounds N] [--steps a,b] [--limit-s S] [--dry-run]" >&2; exit 2 ;;
esac
