// SIMD traits for the portable build: one lane, plain float arithmetic (the compiler may still
// vectorise the micro-kernels' independent accumulators with the baseline instruction set).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "qwen3vl/core/dtype.hpp"

namespace qwen3vl::detail::cpu::scalar {

struct Simd {
  using V = float;
  using Mask = bool;
  static constexpr int kWidth = 1;
  static constexpr int kQkKeys = 4;
  static constexpr int kPvCols = 4;
  static constexpr int kRowVecs = 4;
  static constexpr int kTileRows = 64;
  static constexpr int kMaxTileRows = 128;

  static V zero() { return 0.0f; }
  static V set1(float x) { return x; }
  static V broadcast(const float* p) { return *p; }
  static V load(const float* p) { return *p; }
  static V load(const half* p) { return to_float(*p); }
  static V load(const bfloat16* p) { return to_float(*p); }
  static void store(float* p, V x) { *p = x; }
  static void store(half* p, V x) { *p = to_half(x); }
  static void store(bfloat16* p, V x) { *p = to_bf16(x); }
  template <class T>
  static float load_one(const T* p) {
    return load(p);
  }
  template <class T>
  static void store_one(T* p, float x) {
    store(p, x);
  }

  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V fnma(V a, V b, V c) { return c - a * b; }
  // The x86 semantics (a > b ? a : b), so the scalar and SIMD builds treat NaN alike.
  static V max(V a, V b) { return a > b ? a : b; }
  static V min(V a, V b) { return a < b ? a : b; }
  // Nearest-even for |x| < 2^22 under the default rounding mode, without a libm call.
  static V round(V x) { return (x + 12582912.0f) - 12582912.0f; }
  static V pow2i(V n) {
    const int32_t e = n >= -127.0f && n <= 128.0f ? static_cast<int32_t>(n) : 0;  // NaN: any
    const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
    float r;
    std::memcpy(&r, &bits, sizeof r);
    return r;
  }
  static V abs(V x) { return std::fabs(x); }
  static V copysign(V magnitude, V sign) { return std::copysign(magnitude, sign); }
  static Mask lt(V a, V b) { return a < b; }
  static Mask eq(V a, V b) { return a == b; }
  static V select(Mask m, V if_true, V if_false) { return m ? if_true : if_false; }
  static bool all(Mask m) { return m; }
};

}  // namespace qwen3vl::detail::cpu::scalar
