// Prints the dynamic shared memory of every flash tile configuration, one line each:
// "<TileConfig as int> <head_dim template argument> <bytes>". ptxas reports only static shared
// memory; scripts/build-sm61.sh adds these to it to check the Pascal 48 KB per-block limit.
#include <cstdio>

#include "flash/flash_traits.cuh"

namespace flash = qwen3vl::detail::flash;

template <flash::TileConfig C, int... D>
void print_config() {
  ((std::printf("%d %d %d\n", static_cast<int>(C), D, flash::Tiles<C, D>::kSmemBytes)), ...);
}

int main() {
  print_config<flash::kG, 64, 72, 80, 96, 128, 256, 0>();
  print_config<flash::kC, 64, 72, 80, 96, 128, 256, 0>();
  return 0;
}
