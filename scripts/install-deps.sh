#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, test and benchmark qwen3vl-attention (CPU).
# Idempotent and quiet: does nothing when everything is there.
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"

qwen3vl_apt_install cmake g++ make ninja-build pkg-config python3 python3-venv python3-dev \
  libeigen3-dev libtbb-dev libgtest-dev libgmock-dev libbenchmark-dev libopenblas-dev liburing-dev
