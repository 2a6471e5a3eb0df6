// SIMD traits for the AVX2 + FMA + F16C kernel builds: 8 fp32 lanes. Included only by translation
// units compiled with those flags; everything lives in the avx2 namespace (see kernels.hpp).
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_avx2.hpp needs -mavx2 -mfma -mf16c"
#endif

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "qwen3vl/core/dtype.hpp"

namespace qwen3vl::detail::cpu::avx2 {

struct Simd {
  using V = __m256;
  using Mask = __m256;
  static constexpr int kWidth = 8;
  // Register blocks of the flash micro-kernels: (kQkKeys or kPvCols) x kRowVecs vectors of query
  // rows = 4 x 24 floats, 12 accumulators + 3 row vectors + 1 broadcast = all 16 ymm registers.
  static constexpr int kQkKeys = 4;
  static constexpr int kPvCols = 4;
  static constexpr int kRowVecs = 3;
  // Query rows (group x positions) of one task: the default, and the most a large L2 gets.
  static constexpr int kTileRows = 96;
  static constexpr int kMaxTileRows = 288;

  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load(const bfloat16* p) {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
  static void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  static void store(half* p, V x) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // bf16 bits of each lane (round to nearest even, NaN stays a quiet NaN: to_bf16) in its low half.
  static __m256i bf16_bits(V x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i top = _mm256_srli_epi32(u, 16);
    const __m256i bias =
        _mm256_add_epi32(_mm256_and_si256(top, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7fff));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i quiet = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(quiet), nan));
  }
  static void store(bfloat16* p, V x) {
    const __m256i r = bf16_bits(x);  // every lane <= 0xffff: the unsigned pack is exact
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
  // Codes of the compressed KV formats (kv_cache/kv_format.hpp), kWidth at a time: int8 values;
  // 4-bit codes minus 8 from the low (high = false) or high nibbles of kWidth bytes; fp8 e4m3
  // values (exact: a code's 7 magnitude bits at float bits 20..26 are its value times 2^-120,
  // subnormal codes included; the NaN codes read as 480, and are never written).
  static V load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static V load_i4(const uint8_t* p, bool high) {
    __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    if (high) x = _mm256_srli_epi32(x, 4);
    x = _mm256_sub_epi32(_mm256_and_si256(x, _mm256_set1_epi32(15)), _mm256_set1_epi32(8));
    return _mm256_cvtepi32_ps(x);
  }
  static V load_fp8(const uint8_t* p) {
    const __m256i x = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m256i bits =
        _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(INT32_MIN)),
                        _mm256_and_si256(_mm256_slli_epi32(x, 20), _mm256_set1_epi32(0x07f00000)));
    return _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0x1p120f));
  }
  // Integer dot products of int8 codes (the decode kernel's int8 Q.K): B holds kDotBytes codes, I
  // kWidth int32 sums (lane j: bytes j * kDotBytes / kWidth onwards). dot_i8(acc, q, |q|, k) adds
  // q . k by the u8 x s8 multiply: |q| times k carrying q's sign. Codes are in -127..127 (-128 is
  // never written: it would keep its sign), so a pair of products stays below 2^15 and never
  // saturates.
  using B = __m256i;
  using I = __m256i;
  static constexpr int kDotBytes = 32;
  static B load_bytes(const int8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static B abs_i8(B q) { return _mm256_abs_epi8(q); }
  static I izero() { return _mm256_setzero_si256(); }
  static I dot_i8(I acc, B q, B q_abs, B k) {
    const __m256i pairs = _mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(k, q));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  static V to_float(I x) { return _mm256_cvtepi32_ps(x); }
  // One element, for row tails shorter than a vector.
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
    alignas(32) bfloat16 lanes[kWidth];
    store(lanes, _mm256_set1_ps(x));
    *p = lanes[0];
  }

  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a * b
  // a > b ? a : b (a NaN b gives b, like the instruction), so NaN in b propagates.
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V round(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for integral n in [-127, 128]: -127 gives 0 and 128 gives +inf.
  static V pow2i(V n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static V abs(V x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static V copysign(V magnitude, V sign) {
    const V s = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, magnitude), _mm256_and_ps(s, sign));
  }
  static Mask lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static V select(Mask m, V if_true, V if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  static bool all(Mask m) { return _mm256_movemask_ps(m) == 0xff; }
  static V neg(V x) { return _mm256_xor_ps(x, _mm256_set1_ps(-0.0f)); }
  // x rounded to storage type T and back.
  template <class T>
  static V round_to(V x) {
    if constexpr (std::is_same_v<T, half>)
      return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    else if constexpr (std::is_same_v<T, bfloat16>)
      return _mm256_castsi256_ps(_mm256_slli_epi32(bf16_bits(x), 16));
    else
      return x;
  }

  // 2 * kWidth elements at p as their even and odd elements (interleaved pairs), and back.
  template <class T>
  static void load_pairs(const T* p, V* even, V* odd) {
    const V a = load(p), b = load(p + kWidth);
    const V e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
    const V o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  template <class T>
  static void store_pairs(T* p, V even, V odd) {
    const V lo = _mm256_unpacklo_ps(even, odd);  // e0 o0 e1 o1 | e4 o4 e5 o5
    const V hi = _mm256_unpackhi_ps(even, odd);  // e2 o2 e3 o3 | e6 o6 e7 o7
    store(p, _mm256_permute2f128_ps(lo, hi, 0x20));
    store(p + kWidth, _mm256_permute2f128_ps(lo, hi, 0x31));
  }

  // Lane groups: a vector as kGroups groups of 4 lanes (lane g * 4 + i is lane i of group g).
  static constexpr int kGroups = 2;
  // Group g, lane i of the result = the sum of the lanes of a[g][i].
  static V reduce_groups(const V (&a)[kGroups][4]) {
    const auto group = [](const V(&r)[4]) {  // [lower-half sums of r0..r3 | upper-half sums]
      return _mm256_hadd_ps(_mm256_hadd_ps(r[0], r[1]), _mm256_hadd_ps(r[2], r[3]));
    };
    const V g0 = group(a[0]), g1 = group(a[1]);
    return _mm256_add_ps(_mm256_permute2f128_ps(g0, g1, 0x20),
                         _mm256_permute2f128_ps(g0, g1, 0x31));
  }
  // Lane i of the result = max / sum over the lanes with the same index i % 4 in every group.
  static V fold_groups_max(V v) { return _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1)); }
  static V fold_groups_sum(V v) { return _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1)); }
  // p[0..3] in every group.
  static V broadcast4(const float* p) {
    return _mm256_broadcast_ps(reinterpret_cast<const __m128*>(p));
  }
};

// The traits with whole lane groups (see Simd4 in simd_scalar.hpp): Simd itself.
using Simd4 = Simd;

}  // namespace qwen3vl::detail::cpu::avx2
