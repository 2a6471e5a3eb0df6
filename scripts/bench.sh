#!/usr/bin/env bash
# The main job: missing Debian packages, the Release build of qwen3vl-attn-bench (preset `release`,
# or `release-nogpu` where no GPU is visible), then the benchmark driver. With no arguments it runs
# the prefill routine on the Qwen3-VL workload; arguments go to the driver, a routine first
# (e.g. scripts/bench.sh decode --lens 4096; scripts/bench.sh --help lists the routines); flags
# without a routine go to prefill (e.g. scripts/bench.sh --variant flash2 --seq 1024 --json -).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/presets.sh
scripts/install-deps.sh

preset=$(qwen3vl_release_preset)
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target qwen3vl-attn-bench
bench="build-$preset/bench/qwen3vl-attn-bench"  # not a copy installed by the packaging tests
[ -x "$bench" ] || { echo "qwen3vl: $bench was not built" >&2; exit 1; }
if [ $# -eq 0 ]; then
  exec "$bench" prefill
elif [ "${1#--}" != "$1" ] && [ "$1" != --help ]; then
  exec "$bench" prefill "$@"
fi
exec "$bench" "$@"
