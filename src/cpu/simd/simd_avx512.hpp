// SIMD traits for the AVX-512 (F/BW/VL/DQ) kernel builds: 16 fp32 lanes. Included only by
// translation units compiled with those flags; everything lives in the avx512 namespace.
#pragma once

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_avx512.hpp needs -mavx512f -mavx512bw -mfma -mf16c"
#endif

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

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
  // Codes of the compressed KV formats, kWidth at a time (see simd_avx2.hpp).
  static V load_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static V load_i4(const uint8_t* p, bool high) {
    __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (high) x = _mm512_srli_epi32(x, 4);
    x = _mm512_sub_epi32(_mm512_and_si512(x, _mm512_set1_epi32(15)), _mm512_set1_epi32(8));
    return _mm512_cvtepi32_ps(x);
  }
  static V load_fp8(const uint8_t* p) {
    const __m512i x = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m512i bits =
        _mm512_or_si512(_mm512_and_si512(x, _mm512_set1_epi32(INT32_MIN)),
                        _mm512_and_si512(_mm512_slli_epi32(x, 20), _mm512_set1_epi32(0x07f00000)));
    return _mm512_mul_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(0x1p120f));
  }
  static void store(float* p, V x) { _mm512_storeu_ps(p, x); }
  static void store(half* p, V x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // bf16 bits of each lane (round to nearest even, NaN stays a quiet NaN: to_bf16) in its low half.
  static __m512i bf16_bits(V x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i top = _mm512_srli_epi32(u, 16);
    const __m512i bias =
        _mm512_add_epi32(_mm512_and_si512(top, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fff));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(r, nan, top, _mm512_set1_epi32(0x40));
  }
  static void store(bfloat16* p, V x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(bf16_bits(x)));
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
  static V neg(V x) {
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
  }
  // x rounded to storage type T and back.
  template <class T>
  static V round_to(V x) {
    if constexpr (std::is_same_v<T, half>)
      return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    else if constexpr (std::is_same_v<T, bfloat16>)
      return _mm512_castsi512_ps(_mm512_slli_epi32(bf16_bits(x), 16));
    else
      return x;
  }

  // 2 * kWidth elements at p as their even and odd elements (interleaved pairs), and back.
  template <class T>
  static void load_pairs(const T* p, V* even, V* odd) {
    const V a = load(p), b = load(p + kWidth);
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    *even = _mm512_permutex2var_ps(a, ie, b);
    *odd = _mm512_permutex2var_ps(a, io, b);
  }
  template <class T>
  static void store_pairs(T* p, V even, V odd) {
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    store(p, _mm512_permutex2var_ps(even, lo, odd));
    store(p + kWidth, _mm512_permutex2var_ps(even, hi, odd));
  }

  // Integer dot products of int8 codes (see simd_avx2.hpp). AVX-512 has no byte sign instruction:
  // k is negated where q is negative (the mask of q's sign bits; q = 0 adds 0 through |q|).
  using B = __m512i;
  using I = __m512i;
  static constexpr int kDotBytes = 64;
  static B load_bytes(const int8_t* p) {
    return _mm512_loadu_si512(reinterpret_cast<const void*>(p));
  }
  static B abs_i8(B q) { return _mm512_abs_epi8(q); }
  static I izero() { return _mm512_setzero_si512(); }
  static I dot_i8(I acc, B q, B q_abs, B k) {
    const __m512i signed_k =
        _mm512_mask_sub_epi8(k, _mm512_movepi8_mask(q), _mm512_setzero_si512(), k);
    const __m512i pairs = _mm512_maddubs_epi16(q_abs, signed_k);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
  }
  static V to_float(I x) { return _mm512_cvtepi32_ps(x); }

  // Lane groups: a vector as kGroups groups of 4 lanes (lane g * 4 + i is lane i of group g).
  static constexpr int kGroups = 4;
  // Group g, lane i of the result = the sum of the lanes of a[g][i]. Each step adds pairs of
  // half-width partials: 256-bit halves, then 128-bit quarters, then within 128-bit lanes.
  static V reduce_groups(const V (&a)[kGroups][4]) {
    const auto halves = [](V x, V y) {  // [x0+x2, x1+x3, y0+y2, y1+y3] in 128-bit quarters
      return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xEE));
    };
    const auto quarters = [](V xy, V zw) {  // [x, y, z, w]: each 4 partial sums of one source
      return _mm512_add_ps(_mm512_shuffle_f32x4(xy, zw, 0x88), _mm512_shuffle_f32x4(xy, zw, 0xDD));
    };
    V rows[4];  // rows[i] quarter g: partial sums of a[g][i]
    for (int i = 0; i < 4; ++i)
      rows[i] = quarters(halves(a[0][i], a[1][i]), halves(a[2][i], a[3][i]));
    const V r01 =
        _mm512_add_ps(_mm512_unpacklo_ps(rows[0], rows[1]), _mm512_unpackhi_ps(rows[0], rows[1]));
    const V r23 =
        _mm512_add_ps(_mm512_unpacklo_ps(rows[2], rows[3]), _mm512_unpackhi_ps(rows[2], rows[3]));
    return _mm512_add_ps(_mm512_shuffle_ps(r01, r23, 0x44), _mm512_shuffle_ps(r01, r23, 0xEE));
  }
  // Lane i of the result = max / sum over the lanes with the same index i % 4 in every group.
  static V fold_groups_max(V v) {
    v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
    return _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  }
  static V fold_groups_sum(V v) {
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
    return _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  }
  // p[0..3] in every group.
  static V broadcast4(const float* p) { return _mm512_broadcast_f32x4(_mm_loadu_ps(p)); }
};

// The traits with whole lane groups (see Simd4 in simd_scalar.hpp): Simd itself.
using Simd4 = Simd;

}  // namespace qwen3vl::detail::cpu::avx512
