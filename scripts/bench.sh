#!/usr/bin/env bash
# The main job: missing Debian packages, the `release` build of qwen3vl-attn-bench, then the
# benchmark. With no arguments it runs the Qwen3-VL workload; arguments go to the benchmark
# (e.g. scripts/bench.sh --variant standard --seq 1024 --json; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

cmake --preset release >/dev/null
cmake --build --preset release --target qwen3vl-attn-bench
bench=$(find build-release -type f -name qwen3vl-attn-bench -perm -u+x | head -n 1)
[ -n "$bench" ] || { echo "qwen3vl: qwen3vl-attn-bench was not built" >&2; exit 1; }
exec "$bench" "$@"
