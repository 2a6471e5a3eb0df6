// The random sweep every attention variant and device is checked on against the float64
// reference (the CPU standard variant and the CUDA variants use it; flash2 on the CPU has its own,
// built around its tile sizes).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

#include "support/problem.hpp"

namespace qwen3vl::testing {

// The tables a random sweep walks: row i takes sizes[i] and dims[i] (one row per size), and heads,
// masks and dtypes at i modulo their counts.
struct SweepTables {
  std::vector<std::array<int64_t, 2>> sizes;  // (seq_q, seq_k)
  std::vector<int64_t> dims;
  std::vector<std::array<int64_t, 2>> heads;  // (heads, kv_heads)
  std::vector<MaskKind> masks;
  std::vector<DType> dtypes;

  size_t rows() const { return sizes.size(); }
  // Row i with batch 1 + i % 2, LSE on, and `seed`; callers add their own variations.
  ProblemSpec row(size_t i, uint64_t seed) const {
    ProblemSpec s;
    s.batch = 1 + static_cast<int64_t>(i % 2);
    s.seq_q = sizes[i][0];
    s.seq_k = sizes[i][1];
    s.head_dim = dims[i];
    s.heads = heads[i % heads.size()][0];
    s.kv_heads = heads[i % heads.size()][1];
    s.mask = masks[i % masks.size()];
    s.dtype = dtypes[i % dtypes.size()];
    s.with_lse = true;
    s.seed = seed;
    return s;
  }
};

// The random sweep: odd sizes, Lq != Lk both ways, several K/V tiles, every fast head_dim and odd
// ones (the run-time head_dim kernel, scalar loads when head_dim % 4 != 0), MHA/GQA/MQA, every
// mask, every storage dtype, BHSD strides, varlen with an empty segment, key padding, additive
// mask, soft-cap and an explicit scale.
inline std::vector<ProblemSpec> attention_sweep() {
  std::vector<ProblemSpec> specs;
  SweepTables t;
  t.sizes = {{1, 1},   {3, 17},   {17, 3},    {63, 65},   {65, 63}, {129, 129},
             {1, 257}, {257, 33}, {200, 517}, {517, 200}, {64, 64}, {96, 160}};
  t.dims = {64, 72, 80, 96, 128, 256, 40, 33, 130, 8, 72, 128};
  t.heads = {{4, 4}, {4, 2}, {3, 1}, {6, 3}};
  t.masks = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kCausalTopLeft,
             MaskKind::kSlidingWindow};
  t.dtypes = {DType::kF32, DType::kF16, DType::kBF16};
  uint64_t seed = 500;
  for (size_t i = 0; i < t.rows(); ++i) {
    ProblemSpec s = t.row(i, ++seed);
    s.window_left = i % 2 ? 70 : 5;
    s.window_right = i % 3 == 0 ? 2 : 0;
    s.with_weights = true;
    specs.push_back(s);
    ProblemSpec b = s;  // the same shape through BHSD strides with another mask and dtype
    b.bhsd = true;
    b.mask = t.masks[(i + 1) % 4];
    b.dtype = t.dtypes[(i + 1) % 3];
    b.seed = ++seed;
    specs.push_back(b);
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
