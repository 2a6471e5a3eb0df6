// Seeded RoPE problems for the CPU and CUDA tests: q and k (BSHD, BHSD through strides, or packed
// THD), positions (1-D or per axis, with text tokens where t = h = w), and the table.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/rope/reference.hpp"
#include "qwen3vl/rope/rope.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl::testing {

struct RopeSpec {
  int64_t batch = 2, seq = 17, q_heads = 4, k_heads = 2, head_dim = 128, rotary_dim = 0;
  DType dtype = DType::kF32;
  bool packed = false;  // THD (batch folded into tokens)
  bool bhsd = false;    // q/k stored [B, H, S, D], passed through strides
  rope::MRopeLayout mrope = rope::MRopeLayout::kNone;
  bool positions_axis = true;  // with M-RoPE: [3, ...] positions (else 1-D, broadcast)
  rope::RopeStyle style = rope::RopeStyle::kNeox;
  rope::RopeArithmetic arithmetic = rope::RopeArithmetic::kFused;
  rope::TableLayout table_layout = rope::TableLayout::kFull;
  rope::AngleRecipe recipe = rope::AngleRecipe::kExact;
  rope::RopeScaling scaling;
  int64_t max_position = 4096;
  double theta = 1e6;
  uint64_t seed = 1;

  std::string to_string() const {
    return "B" + std::to_string(batch) + " S" + std::to_string(seq) + " H" +
           std::to_string(q_heads) + "/" + std::to_string(k_heads) + " D" +
           std::to_string(head_dim) + " rot" + std::to_string(rotary_dim) + " " +
           qwen3vl::to_string(dtype) + (packed ? " thd" : "") + (bhsd ? " bhsd" : "") +
           " mrope=" + rope::to_string(mrope) + " " + rope::to_string(style) + " " +
           rope::to_string(arithmetic) + " " + rope::to_string(table_layout) + " " +
           rope::to_string(recipe) + " maxpos=" + std::to_string(max_position) +
           " seed=" + std::to_string(seed);
  }
};

// Sections for `half` slots: Qwen3-VL's [24, 20, 20] and Qwen2-VL's [16, 24, 24] at half = 64.
inline rope::MRopeSection default_section(rope::MRopeLayout layout, int64_t half) {
  if (layout == rope::MRopeLayout::kChunked) {
    const int32_t t = static_cast<int32_t>(half / 4), h = static_cast<int32_t>((half - t) / 2);
    return {t, h, static_cast<int32_t>(half - t - h)};
  }
  const int32_t h = static_cast<int32_t>(half * 5 / 16);
  return {static_cast<int32_t>(half - 2 * h), h, h};
}

struct RopeProblem {
  RopeSpec spec;
  Tensor q, k, positions;
  rope::RopeTable table;
  rope::RopeApplyParams params;

  explicit RopeProblem(const RopeSpec& s) : spec(s) {
    rope::RopeConfig config;
    config.head_dim = s.head_dim;
    config.rotary_dim = s.rotary_dim;
    config.theta = s.theta;
    config.scaling = s.scaling;
    const int64_t half = config.rotary() / 2;
    throw_if_error(rope::make_text_table(config, s.mrope, default_section(s.mrope, half),
                                         s.max_position, s.recipe, s.table_layout, &table));
    const int64_t tokens = s.batch * s.seq;
    if (s.packed) {
      q = Tensor(s.dtype, {tokens, s.q_heads, s.head_dim});
      k = Tensor(s.dtype, {tokens, s.k_heads, s.head_dim});
    } else if (s.bhsd) {
      q = Tensor(s.dtype, {s.batch, s.q_heads, s.seq, s.head_dim});
      k = Tensor(s.dtype, {s.batch, s.k_heads, s.seq, s.head_dim});
    } else {
      q = Tensor(s.dtype, {s.batch, s.seq, s.q_heads, s.head_dim});
      k = Tensor(s.dtype, {s.batch, s.seq, s.k_heads, s.head_dim});
    }
    fill_uniform(q, s.seed * 3 + 0, -2.0f, 2.0f);
    fill_uniform(k, s.seed * 3 + 1, -2.0f, 2.0f);
    const int axes = s.positions_axis ? rope::mrope_axes(s.mrope) : 1;
    const bool axis_dim = s.positions_axis && s.mrope != rope::MRopeLayout::kNone;
    if (s.packed)
      positions = axis_dim ? Tensor(DType::kI32, {axes, tokens}) : Tensor(DType::kI32, {tokens});
    else
      positions = axis_dim ? Tensor(DType::kI32, {axes, s.batch, s.seq})
                           : Tensor(DType::kI32, {s.batch, s.seq});
    std::mt19937_64 rng(s.seed * 3 + 2);
    std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(s.max_position - 1));
    int32_t* pos = positions.data<int32_t>();
    const int64_t per_axis = tokens;
    for (int64_t t = 0; t < tokens; ++t) {
      const bool text = rng() % 3 == 0;  // t = h = w
      const int32_t p0 = t == 0 ? static_cast<int32_t>(s.max_position - 1) : any(rng);
      for (int a = 0; a < (axis_dim ? axes : 1); ++a)
        pos[a * per_axis + t] = text || a == 0 ? p0 : any(rng);
    }
    params.q = s.bhsd ? q.view().transposed(1, 2) : q.view();
    params.k = s.bhsd ? k.view().transposed(1, 2) : k.view();
    params.positions = positions.view();
    params.table = table.view();
    params.style = s.style;
    params.arithmetic = s.arithmetic;
  }

  rope::reference::Result reference() const {
    return rope::reference::apply(params, table.spec().inv_freq, table.spec().axis,
                                  table.spec().attention_factor);
  }
};

// ||got - want|| / ||want|| over q and k in logical order; +inf on NaN/Inf.
inline double rope_relative_error(const rope::RopeApplyParams& p,
                                  const rope::reference::Result& ref) {
  rope::RopeApplyShape s;
  throw_if_error(rope::validate(p, &s));
  double diff = 0.0, norm = 0.0;
  const auto add = [&](const TensorView& x, int64_t heads, const std::vector<double>& want) {
    size_t at = 0;
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t i = 0; i < s.seq; ++i) {
        const int64_t base = rope::rope_row_offset(x, s, b, i);
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t e = 0; e < s.head_dim; ++e, ++at) {
            const double got = load_float(x, base + h * x.stride[x.rank - 2] + e);
            if (!std::isfinite(got)) diff = std::numeric_limits<double>::infinity();
            diff += (got - want[at]) * (got - want[at]);
            norm += want[at] * want[at];
          }
      }
  };
  add(p.q, s.q_heads, ref.q);
  if (s.k_heads > 0) add(p.k, s.k_heads, ref.k);
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Bit patterns of a tensor, for exact comparisons between ISAs and devices.
inline std::vector<uint32_t> rope_bits(const Tensor& t) {
  std::vector<uint32_t> out(static_cast<size_t>(t.numel()));
  const int64_t width = size_of(t.dtype());
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint32_t u = 0;
    std::memcpy(&u, static_cast<const char*>(t.view().data) + i * width,
                static_cast<size_t>(width));
    out[static_cast<size_t>(i)] = u;
  }
  return out;
}

}  // namespace qwen3vl::testing
