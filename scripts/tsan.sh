#!/usr/bin/env bash
# ThreadSanitizer over the code with threads of its own: the tiered store's mover, the file store's
# engines (io_uring, the pread/pwrite pool) and the prefix store. CPU only, RelWithDebInfo; not part
# of scripts/test.sh (a third full build would not fit CI's time on two cores).
#   scripts/tsan.sh [build dir, default build-tsan]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-tsan}
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQWEN3VL_CUDA=OFF \
  -DQWEN3VL_SANITIZE=thread
tests=(test_tiered_kv test_block_store test_prefix_store)
cmake --build "$dir" --target "${tests[@]}"
for t in "${tests[@]}"; do
  TSAN_OPTIONS="halt_on_error=1" "$dir/tests/$t"
done
echo "tsan: ${tests[*]} clean"
