// Prints the dynamic shared memory of every flash tile configuration the build compiles, one line
// each: "<TileConfig as int> <head_dim template argument> <bytes>", for Tiles<C, D> of
// cuda/flash/flash_traits.cuh over QWEN3VL_FLASH_HEAD_DIMS (the generated flash_head_dims.hpp of
// the build, the list cuda/CMakeLists.txt holds) and D = 0, the run-time head_dim. ptxas reports
// only static shared memory; scripts/lib/ptxas_report.sh adds these to it for the Pascal 48 KB
// per-block check.
#include <cstdio>

#include "flash/flash_traits.cuh"

namespace flash = qwen3vl::detail::flash;

template <flash::TileConfig C, int... D>
void print_config() {
  ((std::printf("%d %d %d\n", static_cast<int>(C), D, flash::Tiles<C, D>::kSmemBytes)), ...);
}

int main() {
  print_config<flash::kG, QWEN3VL_FLASH_HEAD_DIMS, 0>();
  print_config<flash::kC, QWEN3VL_FLASH_HEAD_DIMS, 0>();
  return 0;
}
