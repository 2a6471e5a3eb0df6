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
  // Codes of the compressed KV formats (see simd_avx2.hpp).
  static V load_i8(const int8_t* p) { return static_cast<float>(*p); }
  static V load_i4(const uint8_t* p, bool high) {
    return static_cast<float>((high ? *p >> 4 : *p & 15) - 8);
  }
  static V load_fp8(const uint8_t* p) {
    const uint32_t b = *p;
    return bits_float((b & 0x80u) << 24 | (b & 0x7fu) << 20) * 0x1p120f;
  }
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

// Four portable lanes with Simd's interface and the lane-group operations (one group): the
// scalar build of kernels whose vectors hold groups of 4 lanes (the decode kernel's [key][4 rows]
// scores). On AVX2 and AVX-512, Simd4 is Simd. Each lane computes exactly as Simd.
struct Simd4 {
  struct V {
    float x[4];
  };
  struct Mask {
    bool x[4];
  };
  static constexpr int kWidth = 4;
  static constexpr int kGroups = 1;

  template <class F>
  static V map(F f) {
    V r;
    for (int i = 0; i < 4; ++i) r.x[i] = f(i);
    return r;
  }
  static V zero() { return set1(0.0f); }
  static V set1(float a) {
    return map([a](int) { return a; });
  }
  template <class T>
  static V load(const T* p) {
    return map([p](int i) { return Simd::load(p + i); });
  }
  template <class T>
  static void store(T* p, V v) {
    for (int i = 0; i < 4; ++i) Simd::store(p + i, v.x[i]);
  }
  static V load_i8(const int8_t* p) {
    return map([p](int i) { return Simd::load_i8(p + i); });
  }
  static V load_i4(const uint8_t* p, bool high) {
    return map([p, high](int i) { return Simd::load_i4(p + i, high); });
  }
  static V load_fp8(const uint8_t* p) {
    return map([p](int i) { return Simd::load_fp8(p + i); });
  }
  static V add(V a, V b) {
    return map([&](int i) { return Simd::add(a.x[i], b.x[i]); });
  }
  static V sub(V a, V b) {
    return map([&](int i) { return Simd::sub(a.x[i], b.x[i]); });
  }
  static V mul(V a, V b) {
    return map([&](int i) { return Simd::mul(a.x[i], b.x[i]); });
  }
  static V div(V a, V b) {
    return map([&](int i) { return Simd::div(a.x[i], b.x[i]); });
  }
  static V fma(V a, V b, V c) {
    return map([&](int i) { return Simd::fma(a.x[i], b.x[i], c.x[i]); });
  }
  static V fnma(V a, V b, V c) {
    return map([&](int i) { return Simd::fnma(a.x[i], b.x[i], c.x[i]); });
  }
  static V max(V a, V b) {
    return map([&](int i) { return Simd::max(a.x[i], b.x[i]); });
  }
  static V min(V a, V b) {
    return map([&](int i) { return Simd::min(a.x[i], b.x[i]); });
  }
  static V round(V x) {
    return map([&](int i) { return Simd::round(x.x[i]); });
  }
  static V pow2i(V n) {
    return map([&](int i) { return Simd::pow2i(n.x[i]); });
  }
  static V abs(V x) {
    return map([&](int i) { return Simd::abs(x.x[i]); });
  }
  static V copysign(V m, V s) {
    return map([&](int i) { return Simd::copysign(m.x[i], s.x[i]); });
  }
  static Mask lt(V a, V b) {
    return {{a.x[0] < b.x[0], a.x[1] < b.x[1], a.x[2] < b.x[2], a.x[3] < b.x[3]}};
  }
  static Mask eq(V a, V b) {
    return {{a.x[0] == b.x[0], a.x[1] == b.x[1], a.x[2] == b.x[2], a.x[3] == b.x[3]}};
  }
  static V select(Mask m, V t, V f) {
    return map([&](int i) { return m.x[i] ? t.x[i] : f.x[i]; });
  }
  static bool all(Mask m) { return m.x[0] && m.x[1] && m.x[2] && m.x[3]; }

  // Integer dot products of int8 codes (see simd_avx2.hpp): lane j sums bytes 4j..4j+3.
  struct B {
    int8_t x[16];
  };
  struct I {
    int32_t x[4];
  };
  static constexpr int kDotBytes = 16;
  static B load_bytes(const int8_t* p) {
    B b;
    std::memcpy(b.x, p, sizeof b.x);
    return b;
  }
  static B abs_i8(B q) { return q; }  // unused: the products are taken directly
  static I izero() { return {{0, 0, 0, 0}}; }
  static I dot_i8(I acc, B q, B, B k) {
    for (int j = 0; j < 4; ++j)
      for (int b = 4 * j; b < 4 * j + 4; ++b) acc.x[j] += q.x[b] * k.x[b];
    return acc;
  }
  static V to_float(I x) {
    return map([&](int i) { return static_cast<float>(x.x[i]); });
  }

  // Lane groups (as Simd in simd_avx2.hpp): one group of 4 lanes.
  static V reduce_groups(const V (&a)[kGroups][4]) {
    return map(
        [&](int i) { return (a[0][i].x[0] + a[0][i].x[1]) + (a[0][i].x[2] + a[0][i].x[3]); });
  }
  static V fold_groups_max(V v) { return v; }
  static V fold_groups_sum(V v) { return v; }
  static V broadcast4(const float* p) { return load(p); }
};

}  // namespace qwen3vl::detail::cpu::scalar
