// f16 / bf16 conversions: exhaustive round trips and round-to-nearest-even against independent
// oracles.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(DType, HalfRoundTripsEveryPattern) {
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const half h{static_cast<uint16_t>(bits)};
    const float f = to_float(h);
    const half back = to_half(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(to_float(back))) << std::hex << bits;
    } else {
      EXPECT_EQ(back.bits, h.bits) << std::hex << bits;
    }
  }
}

TEST(DType, BFloat16RoundTripsEveryPattern) {
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const bfloat16 b{static_cast<uint16_t>(bits)};
    const float f = to_float(b);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(to_float(to_bf16(f))));
    } else {
      EXPECT_EQ(to_bf16(f).bits, b.bits) << std::hex << bits;
    }
  }
}

// Oracle: of the two representable neighbours, the nearer; ties go to the even pattern.
template <class T, class ToFloat>
uint16_t nearest_even(float x, uint16_t lo_bits, ToFloat to_f) {
  const uint16_t hi_bits = static_cast<uint16_t>(lo_bits + 1);
  const double lo = to_f(T{lo_bits}), hi = to_f(T{hi_bits});
  const double dlo = std::fabs(static_cast<double>(x) - lo),
               dhi = std::fabs(static_cast<double>(x) - hi);
  if (dlo < dhi) return lo_bits;
  if (dhi < dlo) return hi_bits;
  return (lo_bits & 1u) ? hi_bits : lo_bits;
}

TEST(DType, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(to_bf16(1.0f + 0x1p-8f).bits, to_bf16(1.0f).bits);                // tie -> even (down)
  EXPECT_EQ(to_bf16(1.0f + 3 * 0x1p-8f).bits, to_bf16(1.0f + 0x1p-6f).bits);  // tie -> even (up)
  EXPECT_EQ(to_bf16(3.4e38f).bits, 0x7f80u);  // past the halfway point to 2^128: overflow to inf
  EXPECT_EQ(to_bf16(3.39e38f).bits, 0x7f7fu);
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t u = rng() % 0x7f7f0000u;  // finite, below the last bf16 binade (overflow below)
    const float x = bits_to_float(u);
    const uint16_t truncated = static_cast<uint16_t>(u >> 16);
    const uint16_t want =
        nearest_even<bfloat16>(x, truncated, [](bfloat16 b) { return to_float(b); });
    ASSERT_EQ(to_bf16(x).bits, want) << x;
    ASSERT_EQ(to_bf16(-x).bits, want | 0x8000u) << -x;
  }
}

TEST(DType, HalfRoundsToNearestEvenIncludingSubnormalsAndOverflow) {
  EXPECT_EQ(to_half(65504.0f).bits, 0x7bffu);
  EXPECT_EQ(to_half(65519.0f).bits, 0x7bffu);  // below the halfway point to 65536
  EXPECT_EQ(to_half(65520.0f).bits, 0x7c00u);  // halfway, odd -> rounds up to inf
  EXPECT_EQ(to_half(std::numeric_limits<float>::infinity()).bits, 0x7c00u);
  EXPECT_EQ(to_half(0x1p-24f).bits, 0x0001u);    // smallest subnormal
  EXPECT_EQ(to_half(0x1p-25f).bits, 0x0000u);    // tie between 0 and the smallest subnormal -> 0
  EXPECT_EQ(to_half(0x1.8p-24f).bits, 0x0002u);  // tie between 1 and 2 units -> 2 (even)
  EXPECT_EQ(to_half(-0.0f).bits, 0x8000u);
  EXPECT_TRUE(std::isnan(to_float(to_half(std::numeric_limits<float>::quiet_NaN()))));
  // Every float between consecutive halves rounds to the nearer one (ties to even).
  std::mt19937 rng(11);
  for (int i = 0; i < 200000; ++i) {
    const uint16_t lo = static_cast<uint16_t>(rng() % 0x7bffu);  // finite non-negative halves
    const float a = to_float(half{lo}), b = to_float(half{static_cast<uint16_t>(lo + 1)});
    const float x = a + (b - a) * std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
    const uint16_t want = nearest_even<half>(x, lo, [](half h) { return to_float(h); });
    ASSERT_EQ(to_half(x).bits, want) << x;
  }
  EXPECT_EQ(to_half(to_float(half{0x3c00}) + 0x1p-11f).bits, 0x3c00u);  // 1 + half ulp: tie -> even
}

TEST(DType, TensorStoresAndLoadsEachDtype) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    Tensor x(t, {3, 5});
    fill_uniform(x, 3);
    for (int64_t i = 0; i < x.numel(); ++i) {
      EXPECT_GE(x.get(i), -1.0f);
      EXPECT_LE(x.get(i), 1.0f);
    }
    x.set(4, 0.5f);
    EXPECT_EQ(x.get(4), 0.5f);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data<void>()) % Tensor::kAlignment, 0u);
  }
  EXPECT_THROW(Tensor(DType::kF32, {2, -1}), Error);
}

}  // namespace
}  // namespace qwen3vl
