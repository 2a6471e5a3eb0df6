// The float64 RoPE oracle: angles p_axis(i) * inv_i and their cos/sin in float64, the rotation in
// float64, no table. Slow and obvious; every kernel and table mode is measured against it.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "qwen3vl/rope/apply.hpp"

namespace qwen3vl::rope::reference {

// The float64 angle of slot i for a token with positions pos[axis].
inline double angle(const std::vector<float>& inv_freq, const std::vector<uint8_t>& axis,
                    const int32_t* pos, size_t i) {
  return static_cast<double>(pos[axis.empty() ? 0 : axis[i]]) * static_cast<double>(inv_freq[i]);
}

// q and k after RoPE, in float64, in logical order [tokens, heads, head_dim] (token = b * S + i).
// `params` gives shapes, strides, positions and style; inv_freq, axis map and attention factor
// are the table's (RopeTable::spec()).
struct Result {
  std::vector<double> q, k;
};

inline Result apply(const RopeApplyParams& params, const std::vector<float>& inv_freq,
                    const std::vector<uint8_t>& axis, double attention_factor) {
  RopeApplyShape s;
  throw_if_error(validate(params, &s));
  const int64_t half = static_cast<int64_t>(inv_freq.size()), d = s.head_dim;
  Result r;
  std::vector<double> c(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  const auto rotate = [&](const TensorView& x, int64_t heads, int64_t b, int64_t i,
                          std::vector<double>* out) {
    const int64_t base = rope_row_offset(x, s, b, i);
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> v(static_cast<size_t>(d));
      for (int64_t e = 0; e < d; ++e)
        v[static_cast<size_t>(e)] = load_float(x, base + h * x.stride[x.rank - 2] + e);
      std::vector<double> o = v;
      for (int64_t j = 0; j < half; ++j) {
        const int64_t i1 = params.style == RopeStyle::kNeox ? j : 2 * j;
        const int64_t i2 = params.style == RopeStyle::kNeox ? j + half : 2 * j + 1;
        const double x1 = v[static_cast<size_t>(i1)], x2 = v[static_cast<size_t>(i2)];
        o[static_cast<size_t>(i1)] =
            x1 * c[static_cast<size_t>(j)] - x2 * sn[static_cast<size_t>(j)];
        o[static_cast<size_t>(i2)] =
            x2 * c[static_cast<size_t>(j)] + x1 * sn[static_cast<size_t>(j)];
      }
      out->insert(out->end(), o.begin(), o.end());
    }
  };
  const int32_t* positions = params.positions.ptr<const int32_t>();
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < s.seq; ++i) {
      int32_t pos[3] = {0, 0, 0};
      for (int64_t a = 0; a < params.table.axes; ++a)
        pos[a] = positions[rope_position_offset(params.positions.stride, s.packed, s.positions_axis,
                                                s.positions_axis ? a : 0, b, i)];
      for (int64_t j = 0; j < half; ++j) {
        const double phi = angle(inv_freq, axis, pos, static_cast<size_t>(j));
        c[static_cast<size_t>(j)] = std::cos(phi) * attention_factor;
        sn[static_cast<size_t>(j)] = std::sin(phi) * attention_factor;
      }
      rotate(params.q, s.q_heads, b, i, &r.q);
      if (s.k_heads > 0) rotate(params.k, s.k_heads, b, i, &r.k);
    }
  return r;
}

}  // namespace qwen3vl::rope::reference
