// What the CPU and CUDA sides of the rope routine share: options, the Qwen3-VL text workload (q and
// k of T tokens, Hq/Hkv heads, head_dim D, positions of a text run around an image block), the
// modes measured, and the report line.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/report.hpp"
#include "common/timing.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/rope/rope.hpp"

namespace qwen3vl::bench {

struct RopeBenchOptions {
  int64_t tokens = 4096, q_heads = 32, k_heads = 8, head_dim = 128;
  int reps = 30;
  int threads = 0;  // CPU: 0 = physical cores
};

// The CPU and CUDA runs (bench_rope.cpp, bench_rope_cuda.cpp); a row a (dtype, mode) in `report`.
int run_rope_cpu(const RopeBenchOptions& o, Report* report);
int run_rope_cuda(const RopeBenchOptions& o, Report* report);

// One measured configuration: the table it uses and its positions layout.
struct RopeMode {
  const char* name;
  rope::MRopeLayout mrope;
  rope::TableLayout layout;
  int64_t max_position;
};

inline std::vector<RopeMode> rope_modes(int64_t tokens) {
  return {
      {"rope-1d/full", rope::MRopeLayout::kNone, rope::TableLayout::kFull, tokens},
      {"mrope-qwen3/full", rope::MRopeLayout::kInterleaved, rope::TableLayout::kFull, tokens},
      {"mrope-qwen3/split", rope::MRopeLayout::kInterleaved, rope::TableLayout::kSplit, 262144}};
}

inline rope::RopeTable make_bench_table(const RopeBenchOptions& o, const RopeMode& m) {
  rope::RopeConfig c;
  c.head_dim = o.head_dim;
  c.theta = 5e6;
  const int64_t half = o.head_dim / 2, h = half * 5 / 16;
  rope::RopeTable t;
  throw_if_error(rope::make_text_table(
      c, m.mrope,
      {static_cast<int32_t>(half - 2 * h), static_cast<int32_t>(h), static_cast<int32_t>(h)},
      m.max_position, rope::AngleRecipe::kExact, m.layout, &t));
  return t;
}

// Positions of a prompt: text, then a 32 x 32 image block (t fixed, h/w over the grid), then text.
inline Tensor make_bench_positions(const RopeBenchOptions& o, const RopeMode& m) {
  const int64_t n = o.tokens;
  const bool axes = m.mrope != rope::MRopeLayout::kNone;
  Tensor p = axes ? Tensor(DType::kI32, {3, n}) : Tensor(DType::kI32, {n});
  int32_t* d = p.data<int32_t>();
  const int64_t image_start = n / 4, image_tokens = std::min<int64_t>(1024, n / 2);
  for (int64_t t = 0; t < n; ++t) {
    int32_t pt = static_cast<int32_t>(t), ph = pt, pw = pt;
    if (t >= image_start && t < image_start + image_tokens) {
      const int64_t r = (t - image_start) / 32, c = (t - image_start) % 32;
      pt = static_cast<int32_t>(image_start);
      ph = static_cast<int32_t>(image_start + r);
      pw = static_cast<int32_t>(image_start + c);
    } else if (t >= image_start + image_tokens) {
      pt = ph = pw = static_cast<int32_t>(t - image_tokens + 32);
    }
    d[t] = pt;
    if (axes) {
      d[n + t] = ph;
      d[2 * n + t] = pw;
    }
  }
  return p;
}

// bytes: q and k read once and written once.
inline void report(Report* out, const char* device, const RopeBenchOptions& o, DType dt,
                   const RopeMode& m, double bytes, double rope_s, double copy_s) {
  std::printf(
      "%-5s %-4s %-18s T%lld Hq%lld Hkv%lld D%lld  rope %9.1f us %7.1f GB/s | copy %9.1f us %7.1f "
      "GB/s"
      " | rope/copy bandwidth %5.1f%%\n",
      device, to_string(dt), m.name, static_cast<long long>(o.tokens),
      static_cast<long long>(o.q_heads), static_cast<long long>(o.k_heads),
      static_cast<long long>(o.head_dim), rope_s * 1e6, bytes / rope_s / 1e9, copy_s * 1e6,
      bytes / copy_s / 1e9, 100.0 * copy_s / rope_s);
  out->add({{"device", device},
            {"dtype", to_string(dt)},
            {"mode", m.name},
            {"tokens", o.tokens},
            {"q_heads", o.q_heads},
            {"kv_heads", o.k_heads},
            {"head_dim", o.head_dim},
            {"rope_us", rope_s * 1e6},
            {"rope_gbps", bytes / rope_s / 1e9},
            {"copy_us", copy_s * 1e6},
            {"copy_gbps", bytes / copy_s / 1e9},
            {"rope_over_copy", copy_s / rope_s}});
}

}  // namespace qwen3vl::bench
