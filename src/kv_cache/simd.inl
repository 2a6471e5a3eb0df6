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
inline __m256 vhalves(Vec v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}
// out[i] = the sum of the lanes of vector i, for four vectors at once (a hadd tree).
inline void vreduce4(Vec a, Vec b, Vec c, Vec d, float* out) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(vhalves(a), vhalves(b)),
                                  _mm256_hadd_ps(vhalves(c), vhalves(d)));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
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
inline void vreduce4(Vec a, Vec b, Vec c, Vec d, float* out) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}
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
inline void vreduce4(Vec a, Vec b, Vec c, Vec d, float* out) {
  out[0] = vsum(a);
  out[1] = vsum(b);
  out[2] = vsum(c);
  out[3] = vsum(d);
}
#endif

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
