// The linear routine: what a runner (CPU or CUDA) measures for one causal problem.
#pragma once

#include <cstdint>
#include <string>

namespace qwen3vl::bench {

struct LinearCase {
  int64_t n = 4096, heads = 4, kv_heads = 4, head_dim = 128;
  int reps = 3;
  bool flash = true;  // also time causal flash2 at this N
};

struct LinearTimes {
  double linear_ms = 0, flash_ms = 0;  // medians; flash 0 when not run
};

// CUDA runner (linear_bench_cuda.cpp): kernel time by CUDA events. Returns false with a reason.
bool run_linear_cuda(const LinearCase& c, LinearTimes* t, std::string* why);

}  // namespace qwen3vl::bench
