// A few fp32 vector operations for the decode kernel, in the widest form the translation unit's
// flags allow: AVX-512 (16 lanes), AVX2 + FMA + F16C (8 lanes) or portable code (4 lanes that the
// compiler may vectorise). Storage loads convert f16 / bf16 to fp32. Include it inside the
// translation unit's own anonymous namespace: every function here has internal linkage, so code
// built with wider flags can never be picked for another ISA's translation unit.
#if !defined(QWEN3VL_DECODE_SIMD_INCLUDED)
#define QWEN3VL_DECODE_SIMD_INCLUDED

#if defined(__AVX512F__)
constexpr int kLanes = 16;
using Vec = __m512;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vset1(float x) { return _mm512_set1_ps(x); }
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline Vec vload(const half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline Vec vload(const bfloat16* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
inline void vstore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline void vstore(half* p, Vec v) {  // round to nearest even, as to_half
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec vsub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec vmax(Vec a, Vec b) { return _mm512_max_ps(a, b); }
inline float vsum(Vec v) { return _mm512_reduce_add_ps(v); }
inline float vmaxall(Vec v) { return _mm512_reduce_max_ps(v); }
inline Vec vround(Vec x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline Vec vpow2i(Vec n) {  // 2^n for integral n in [-126, 127]
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
inline Vec vzero_below(Vec y, Vec x, float bound) {  // 0 where x < bound
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(bound), _CMP_GE_OQ), y);
}
// Lane k * 4 + r of the result = the sum of the lanes of a[k][r] (4 keys x 4 rows). Each step adds
// pairs of half-width partials: 256-bit halves, then 128-bit quarters, then within 128-bit lanes.
constexpr int kKeysPerVec = 4;
inline Vec vreduce_keys(const Vec (&a)[kKeysPerVec][4]) {
  auto halves = [](Vec x, Vec y) {  // [x0+x2, x1+x3, y0+y2, y1+y3] in 128-bit quarters
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xEE));
  };
  auto quarters = [](Vec xy, Vec zw) {  // [x, y, z, w]: each 4 partial sums of one source
    return _mm512_add_ps(_mm512_shuffle_f32x4(xy, zw, 0x88), _mm512_shuffle_f32x4(xy, zw, 0xDD));
  };
  Vec rows[4];  // rows[r] quarter k: partial sums of a[k][r]
  for (int r = 0; r < 4; ++r) rows[r] = quarters(halves(a[0][r], a[1][r]), halves(a[2][r], a[3][r]));
  const Vec r01 = _mm512_add_ps(_mm512_unpacklo_ps(rows[0], rows[1]), _mm512_unpackhi_ps(rows[0], rows[1]));
  const Vec r23 = _mm512_add_ps(_mm512_unpacklo_ps(rows[2], rows[3]), _mm512_unpackhi_ps(rows[2], rows[3]));
  return _mm512_add_ps(_mm512_shuffle_ps(r01, r23, 0x44), _mm512_shuffle_ps(r01, r23, 0xEE));
}
// Lane i of the result = op over the lanes j with j % 4 == i % 4 (a [key][4 rows] vector folded
// over its keys, every key slot holding the result).
inline Vec vfold4_max(Vec v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  return _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
}
inline Vec vfold4_sum(Vec v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  return _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
}
inline Vec vload4_rep(const float* p) { return _mm512_broadcast_f32x4(_mm_loadu_ps(p)); }
#elif defined(__AVX2__)
constexpr int kLanes = 8;
using Vec = __m256;
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vset1(float x) { return _mm256_set1_ps(x); }
inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline Vec vload(const half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline Vec vload(const bfloat16* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
inline void vstore(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline void vstore(half* p, Vec v) {  // round to nearest even, as to_half
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vmul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec vsub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec vmax(Vec a, Vec b) { return _mm256_max_ps(a, b); }
inline float vsum(Vec v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
inline float vmaxall(Vec v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
inline Vec vround(Vec x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline Vec vpow2i(Vec n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
inline Vec vzero_below(Vec y, Vec x, float bound) {
  return _mm256_and_ps(y, _mm256_cmp_ps(x, _mm256_set1_ps(bound), _CMP_GE_OQ));
}
// Lane k * 4 + r of the result = the sum of the lanes of a[k][r] (2 keys x 4 rows).
constexpr int kKeysPerVec = 2;
inline Vec vreduce_keys(const Vec (&a)[kKeysPerVec][4]) {
  auto key = [](const Vec (&r)[4]) {  // [lower-half sums of r0..r3 | upper-half sums]
    return _mm256_hadd_ps(_mm256_hadd_ps(r[0], r[1]), _mm256_hadd_ps(r[2], r[3]));
  };
  const Vec k0 = key(a[0]), k1 = key(a[1]);
  return _mm256_add_ps(_mm256_permute2f128_ps(k0, k1, 0x20), _mm256_permute2f128_ps(k0, k1, 0x31));
}
inline Vec vfold4_max(Vec v) { return _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1)); }
inline Vec vfold4_sum(Vec v) { return _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1)); }
inline Vec vload4_rep(const float* p) { return _mm256_broadcast_ps(reinterpret_cast<const __m128*>(p)); }
#else
constexpr int kLanes = 4;
struct Vec {
  float x[4];
};
template <class F>
inline Vec vmap(F f) {
  Vec r;
  for (int i = 0; i < 4; ++i) r.x[i] = f(i);
  return r;
}
inline Vec vzero() { return vmap([](int) { return 0.0f; }); }
inline Vec vset1(float a) { return vmap([a](int) { return a; }); }
template <class T>
inline Vec vload(const T* p) { return vmap([p](int i) { return to_float(p[i]); }); }
inline void vstore(float* p, Vec v) { for (int i = 0; i < 4; ++i) p[i] = v.x[i]; }
inline void vstore(half* p, Vec v) { for (int i = 0; i < 4; ++i) p[i] = to_half(v.x[i]); }
inline Vec vfma(Vec a, Vec b, Vec c) { return vmap([&](int i) { return a.x[i] * b.x[i] + c.x[i]; }); }
inline Vec vmul(Vec a, Vec b) { return vmap([&](int i) { return a.x[i] * b.x[i]; }); }
inline Vec vsub(Vec a, Vec b) { return vmap([&](int i) { return a.x[i] - b.x[i]; }); }
inline Vec vadd(Vec a, Vec b) { return vmap([&](int i) { return a.x[i] + b.x[i]; }); }
inline Vec vmax(Vec a, Vec b) { return vmap([&](int i) { return a.x[i] > b.x[i] ? a.x[i] : b.x[i]; }); }
inline float vsum(Vec v) { return (v.x[0] + v.x[1]) + (v.x[2] + v.x[3]); }
inline float vmaxall(Vec v) { return vmax(vmax(vset1(v.x[0]), vset1(v.x[1])), vmax(vset1(v.x[2]), vset1(v.x[3]))).x[0]; }
inline Vec vround(Vec x) { return vmap([&](int i) { return std::nearbyint(x.x[i]); }); }
inline Vec vpow2i(Vec n) { return vmap([&](int i) { return std::ldexp(1.0f, static_cast<int>(n.x[i])); }); }
inline Vec vzero_below(Vec y, Vec x, float bound) {
  return vmap([&](int i) { return x.x[i] >= bound ? y.x[i] : 0.0f; });
}
constexpr int kKeysPerVec = 1;
inline Vec vreduce_keys(const Vec (&a)[kKeysPerVec][4]) {
  return vmap([&](int r) { return vsum(a[0][r]); });
}
inline Vec vfold4_max(Vec v) { return v; }
inline Vec vfold4_sum(Vec v) { return v; }
inline Vec vload4_rep(const float* p) { return vload(p); }
#endif

// bfloat16 stores go through to_bf16 lane by lane on every ISA (its NaN handling included).
inline void vstore(bfloat16* p, Vec v) {
  alignas(64) float lanes[kLanes];
  vstore(lanes, v);
  for (int i = 0; i < kLanes; ++i) p[i] = to_bf16(lanes[i]);
}

// Software prefetch of the line at p into L2 (prefetcht2). An asm statement, not __builtin_prefetch:
// GCC 12 deems a function that only prefetches free of side effects and drops calls to it.
inline void prefetch_l2(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht2 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 1);
#endif
}

// 2^x for x <= 0 with a relative error of about 2e-7 (Cephes exp2f's polynomial on [-0.5, 0.5]);
// exactly 0 below 2^-126, so masked scores (-inf) weigh nothing.
inline Vec vexp2(Vec x) {
  const Vec clamped = vmax(x, vset1(-126.0f));
  const Vec n = vround(clamped);
  const Vec f = vsub(clamped, n);
  Vec p = vset1(1.535336188319500e-4f);
  p = vfma(p, f, vset1(1.339887440266574e-3f));
  p = vfma(p, f, vset1(9.618437357674640e-3f));
  p = vfma(p, f, vset1(5.550332471162809e-2f));
  p = vfma(p, f, vset1(2.402264791363012e-1f));
  p = vfma(p, f, vset1(6.931472028550421e-1f));
  p = vfma(p, f, vset1(1.0f));
  return vzero_below(vmul(p, vpow2i(n)), x, -126.0f);
}

#endif  // QWEN3VL_DECODE_SIMD_INCLUDED
