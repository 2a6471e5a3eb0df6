# Shared by the scripts: which Release preset fits this machine.
# shellcheck shell=bash

# Prints `release` where a GPU is visible, else `release-nogpu` (the same build, CUDA compiled as a
# check where a compiler exists; tests labelled gpu left out).
qwen3vl_release_preset() {
  if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo release
  else
    echo release-nogpu
  fi
}
