// The random sweep every attention variant and device is checked on against the float64
// reference (the CPU standard variant and the CUDA variants use it; flash2 on the CPU has its own,
// built around its tile sizes).
#pragma once

#include <cstdint>
#include <iterator>
#include <vector>

#include "support/problem.hpp"

namespace qwen3vl::testing {

// The random sweep: odd sizes, Lq != Lk both ways, several K/V tiles, every fast head_dim and odd
// ones (the run-time head_dim kernel, scalar loads when head_dim % 4 != 0), MHA/GQA/MQA, every
// mask, every storage dtype, BHSD strides, varlen with an empty segment, key padding, additive
// mask, soft-cap and an explicit scale.
inline std::vector<ProblemSpec> attention_sweep() {
  std::vector<ProblemSpec> specs;
  const int64_t sizes[][2] = {{1, 1},   {3, 17},   {17, 3},    {63, 65},   {65, 63}, {129, 129},
                              {1, 257}, {257, 33}, {200, 517}, {517, 200}, {64, 64}, {96, 160}};
  const int64_t dims[] = {64, 72, 80, 96, 128, 256, 40, 33, 130, 8, 72, 128};
  const int64_t heads[][2] = {{4, 4}, {4, 2}, {3, 1}, {6, 3}};
  const MaskKind masks[] = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kCausalTopLeft,
                            MaskKind::kSlidingWindow};
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  uint64_t seed = 500;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    ProblemSpec s;
    s.batch = 1 + static_cast<int64_t>(i % 2);
    s.seq_q = sizes[i][0];
    s.seq_k = sizes[i][1];
    s.head_dim = dims[i];
    s.heads = heads[i % 4][0];
    s.kv_heads = heads[i % 4][1];
    s.mask = masks[i % 4];
    s.window_left = i % 2 ? 70 : 5;
    s.window_right = i % 3 == 0 ? 2 : 0;
    s.dtype = dtypes[i % 3];
    s.with_lse = true;
    s.with_weights = true;
    s.seed = ++seed;
    specs.push_back(s);
    ProblemSpec t = s;  // the same shape through BHSD strides with another mask and dtype
    t.bhsd = true;
    t.mask = masks[(i + 1) % 4];
    t.dtype = dtypes[(i + 1) % 3];
    t.seed = ++seed;
    specs.push_back(t);
  }
  ProblemSpec v;  // packed frames with an empty segment, GQA, causal
  v.varlen_q = {17, 0, 130, 5};
  v.varlen_k = {17, 3, 130, 9};
  v.heads = 4;
  v.kv_heads = 2;
  v.head_dim = 72;
  v.mask = MaskKind::kCausal;
  v.with_lse = true;
  v.seed = ++seed;
  specs.push_back(v);
  ProblemSpec vf = v;  // vision-style block-diagonal frames, no mask, f16, with key padding
  vf.varlen_q = {64, 64, 0, 100};
  vf.varlen_k = {64, 64, 0, 100};
  vf.key_lengths = {64, 50, 0, 99};
  vf.mask = MaskKind::kNone;
  vf.dtype = DType::kF16;
  vf.seed = ++seed;
  specs.push_back(vf);
  ProblemSpec extras;  // key padding + additive mask + softcap + explicit scale
  extras.batch = 3;
  extras.seq_q = 9;
  extras.seq_k = 131;
  extras.key_lengths = {131, 12, 0};
  extras.additive_mask = true;
  extras.softcap = 5.0f;
  extras.scale = 0.3f;
  extras.with_lse = true;
  extras.with_weights = true;
  extras.seed = ++seed;
  specs.push_back(extras);
  ProblemSpec window = extras;  // additive mask with a window and GQA in bf16
  window.additive_mask = true;
  window.softcap = 0.0f;
  window.scale.reset();
  window.mask = MaskKind::kSlidingWindow;
  window.window_left = 40;
  window.window_right = 7;
  window.seq_q = 150;
  window.seq_k = 150;
  window.key_lengths = {150, 100, 1};
  window.dtype = DType::kBF16;
  window.head_dim = 128;
  window.seed = ++seed;
  specs.push_back(window);
  return specs;
}

}  // namespace qwen3vl::testing
