// SIMD traits for the AVX-512 (F/BW/VL/DQ) kernel builds: 16 fp32 lanes. Included only by
// translation units compiled with those flags; everything lives in the avx512 namespace.
#pragma once

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_avx512.hpp needs -mavx512f -mavx512bw -mfma -mf16c"
#endif

#include <immintrin.h>

#include <cstdint>

#include "qwen3vl/core/dtype.hpp"

namespace qwen3vl::detail::cpu::avx512 {

struct Simd {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int kWidth = 16;
  // Register blocks: 8 x 48 floats, 24 accumulators + 3 row vectors + 1 broadcast of 32 zmm.
  static constexpr int kQkKeys = 8;
  static constexpr int kPvCols = 8;
  static constexpr int kRowVecs = 3;
  static constexpr int kTileRows = 96;
  static constexpr int kMaxTileRows = 288;

  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const half* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V load(const bfloat16* p) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m512i u = _mm512_cvtepu16_epi32(bits);
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
  static void store(float* p, V x) { _mm512_storeu_ps(p, x); }
  static void store(half* p, V x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static void store(bfloat16* p, V x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i top = _mm512_srli_epi32(u, 16);
    const __m512i bias =
        _mm512_add_epi32(_mm512_and_si512(top, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fff));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);  // nearest even
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, top, _mm512_set1_epi32(0x40));  // NaN stays a quiet NaN
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
  static float load_one(const float* p) { return *p; }
  static float load_one(const half* p) { return _cvtsh_ss(p->bits); }
  static float load_one(const bfloat16* p) {
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(p->bits) << 16)));
  }
  static void store_one(float* p, float x) { *p = x; }
  static void store_one(half* p, float x) {
    p->bits = static_cast<uint16_t>(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static void store_one(bfloat16* p, float x) {
    alignas(64) bfloat16 lanes[kWidth];
    store(lanes, _mm512_set1_ps(x));
    *p = lanes[0];
  }

  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V round(V x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static V pow2i(V n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static V abs(V x) { return _mm512_abs_ps(x); }
  static V copysign(V magnitude, V sign) {
    // bitwise select: sign bit from `sign`, the rest from `magnitude`
    const __m512i s = _mm512_set1_epi32(static_cast<int>(0x80000000u));
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(s, _mm512_castps_si512(magnitude),
                                                         _mm512_castps_si512(sign), 0xac));
  }
  static Mask lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static V select(Mask m, V if_true, V if_false) {
    return _mm512_mask_blend_ps(m, if_false, if_true);
  }
  static bool all(Mask m) { return m == 0xffff; }
};

}  // namespace qwen3vl::detail::cpu::avx512
