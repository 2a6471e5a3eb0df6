#!/usr/bin/env bash
# The main job: missing Debian packages, the Release build of qwen3vl-attn-bench (preset `release`,
# or `release-nogpu` where no GPU is visible), then the benchmark. With no arguments it runs the
# Qwen3-VL workload; arguments go to the benchmark (e.g. scripts/bench.sh --variant flash2
# --seq 1024 --json; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/presets.sh
scripts/install-deps.sh

preset=$(qwen3vl_release_preset)
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target qwen3vl-attn-bench
bench="build-$preset/bench/qwen3vl-attn-bench"  # not a copy installed by the packaging tests
[ -x "$bench" ] || { echo "qwen3vl: $bench was not built" >&2; exit 1; }
exec "$bench" "$@"
