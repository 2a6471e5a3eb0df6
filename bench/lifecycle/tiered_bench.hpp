// The tiered routine's case, shared by its CPU body (tiered_bench.cpp) and its CUDA one
// (tiered_bench_cuda.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "common/report.hpp"

namespace qwen3vl::bench {

struct TieredCase {
  int64_t layers = 36, heads = 32, kv_heads = 8, head_dim = 128, block = 16;
  int64_t context = 8192, steps = 4, chunk = 1024, threads = 2, prefetch = 2, async = 0,
          disk_copies = 1;
  double arena_mib = 256, host_mib = 256, ram_mib = 4096;
  std::string disk_dir = "tiered-store", policy = "schedule", device = "cpu";
};

// The CUDA body: a CUDA arena, CUDA decode, all-resident device storage as the baseline; exit 2
// in a build without CUDA.
int run_tiered_cuda(const TieredCase& c, Report& report);

}  // namespace qwen3vl::bench
