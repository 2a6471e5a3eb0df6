// Shared by the CPU and CUDA sides of the moh routine: options, the problem (T tokens, Hq/Hkv
// heads, D, causal by default) and MoH routings from random router logits at a given top_k.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/report.hpp"
#include "common/timing.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"

namespace qwen3vl::bench {

struct MoHBenchOptions {
  int64_t tokens = 4096, heads = 32, kv_heads = 8, head_dim = 128;
  int reps = 3, threads = 0;
  bool causal = true;
  std::vector<int> percents = {25, 50, 75, 100};  // routed heads active per token
};

// The CPU and CUDA runs (bench_moh.cpp, bench_moh_cuda.cpp): a row a case in `report`.
int run_moh_cpu(const MoHBenchOptions& o, Report* report);
int run_moh_cuda(MoHBenchOptions o, Report* report);

// A routing with top_k = percent% of the heads (no shared heads), from uniform router logits
// through route_mixture_of_heads, as a model's router would produce it.
struct BenchRouting {
  Tensor index, weight;
  HeadRouting view() const { return HeadRouting{index.view(), weight.view()}; }
};

inline BenchRouting bench_routing(const MoHBenchOptions& o, int percent, uint64_t seed) {
  const int64_t k = std::max<int64_t>(1, o.heads * percent / 100);
  const MoHConfig c{o.heads, 0, k};
  Tensor logits(DType::kF32, {o.tokens, o.heads});
  testing::fill_uniform(logits, seed, -2.0f, 2.0f);
  BenchRouting r{Tensor(DType::kI32, {o.tokens, k}), Tensor(DType::kF32, {o.tokens, k})};
  MoHRouterLogits in;
  in.routed = logits.view();
  throw_if_error(route_mixture_of_heads(c, in, r.view()));
  return r;
}

// FLOPs of the dense problem (4 T^2 D Hq, halved under a causal mask).
inline double dense_flops(const MoHBenchOptions& o) {
  const double f = 4.0 * static_cast<double>(o.tokens) * o.tokens * o.head_dim * o.heads;
  return o.causal ? f / 2 : f;
}

// How a device's table prints: the ms precision and the rate column (FLOP/ms times rate_scale).
struct MoHTable {
  const char* device;  // the report's device field
  int ms_digits;
  const char* rate_title;
  int rate_width, rate_digits;
  double rate_scale;
};

inline void print_moh_header(const MoHTable& t) {
  std::printf("%-22s %10s %10s %*s\n", "case", "ms", "vs dense", t.rate_width, t.rate_title);
}

// The name of the row with `percent` of the heads routed.
inline std::string moh_case_name(int percent) {
  char name[64];
  std::snprintf(name, sizeof name, "moh %d%% heads", percent);
  return name;
}

// One row of the table and of `report`: `name` timed at `ms` against dense at `dense_ms` with
// `percent` of the heads active; the rate counts the computed rows only (the active fraction of
// the dense FLOPs).
inline void moh_row(Report* report, const MoHTable& t, const std::string& name, int percent,
                    double ms, double dense_ms, const MoHBenchOptions& o) {
  const double flops = dense_flops(o) * percent / 100.0;
  std::printf("%-22s %10.*f %10.3f %*.*f\n", name.c_str(), t.ms_digits, ms, ms / dense_ms,
              t.rate_width, t.rate_digits, flops / ms * t.rate_scale);
  report->add({{"device", t.device},
               {"case", name},
               {"percent", percent},
               {"ms", ms},
               {"over_dense", ms / dense_ms},
               {"gflops", flops / ms * 1e-6}});
}

}  // namespace qwen3vl::bench
