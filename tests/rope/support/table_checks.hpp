// The two ways the RoPE tests measure a table's cos/sin (what every kernel reads,
// rope::detail::rope_slot): its angle against p * inv_i in float64, and its values against
// transformers' cos/sin from a fixture.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "qwen3vl/rope/rope.hpp"

namespace qwen3vl::testing {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// Positions up to 262143 (the far end the docs speak of): the precision probes (powers of two
// either side, the last position) and every `step`-th position from `first`.
inline std::vector<int32_t> far_probes(int32_t first, int32_t step) {
  std::vector<int32_t> probes = {0,     1,     255,    256,    4095,   4096,
                                 32767, 65535, 100000, 131071, 262142, 262143};
  for (int32_t p = first; p < 262144; p += step) probes.push_back(p);
  return probes;
}

// The largest |angle error| (radians; the angle of the fp32 pair taken in float64) of a 1-axis
// table over `probes`, against p * want[i] in float64, and the largest |cos^2 + sin^2 - 1|.
struct AngleError {
  double angle = 0, norm = 0;
};

inline AngleError angle_error(const rope::RopeTable& table, const std::vector<int32_t>& probes,
                              const std::vector<double>& want) {
  const rope::RopeTableView v = table.view();
  AngleError e;
  for (int32_t p : probes)
    for (int32_t i = 0; i < v.half; ++i) {
      float c, s;
      rope::detail::rope_slot<struct AngleErrorTag>(v, &p, i, &c, &s);
      const double angle = std::fmod(static_cast<double>(p) * want[static_cast<size_t>(i)], kTwoPi);
      e.angle = std::max(
          e.angle, std::fabs(std::remainder(std::atan2(double{s}, double{c}) - angle, kTwoPi)));
      e.norm = std::max(e.norm, std::fabs(double{c} * c + double{s} * s - 1.0));
    }
  return e;
}

// The table's own frequencies widened to float64.
inline std::vector<double> own_frequencies(const rope::RopeTable& table) {
  return std::vector<double>(table.spec().inv_freq.begin(), table.spec().inv_freq.end());
}

// A table's cos/sin against transformers' for the fixture's positions [3, B, L]; the fixture's
// cos/sin are [B, L, half] or [B, L, 2 half] (each row written twice). With `bf16`, the table's
// values are rounded to bf16 first, as transformers' are.
struct FixtureDiff {
  double max_abs = 0;
  int32_t at_position = -1;  // the largest position of the token with max_abs
  int64_t differ = 0, total = 0;
};

inline FixtureDiff cos_sin_vs_fixture(const rope::RopeTable& table, const FixtureArray& pos,
                                      const FixtureArray& cos, const FixtureArray& sin,
                                      bool bf16 = false) {
  const int64_t B = pos.shape[1], L = pos.shape[2], width = cos.shape[2], half = table.view().half;
  EXPECT_TRUE(width == half || width == 2 * half)
      << "fixture width " << width << ", table half " << half;
  FixtureDiff d;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      int32_t p[3];
      for (int a = 0; a < 3; ++a) p[a] = pos.i[static_cast<size_t>((a * B + b) * L + l)];
      for (int32_t i = 0; i < half; ++i) {
        float c, s;
        rope::detail::rope_slot<struct FixtureTag>(table.view(), p, i, &c, &s);
        if (bf16) {
          c = rope::detail::round_to<bfloat16>(c);
          s = rope::detail::round_to<bfloat16>(s);
        }
        for (int64_t dup = 0; dup < width; dup += half) {
          const size_t at = static_cast<size_t>((b * L + l) * width + i + dup);
          const double e =
              std::max(std::fabs(double{c} - cos.f[at]), std::fabs(double{s} - sin.f[at]));
          if (e > d.max_abs) d.max_abs = e, d.at_position = std::max({p[0], p[1], p[2]});
          d.differ += (c != cos.f[at]) + (s != sin.f[at]);
          d.total += 2;
        }
      }
    }
  return d;
}

}  // namespace qwen3vl::testing
