// The CPU decode kernel for one task, compiled once per ISA (decode_<isa>.cpp defines
// QWEN3VL_ISA_NS and includes this file). Scores are pre-scaled by scale * log2(e), so exp2 is the
// only exponential. Keys past the sequence length are never read.
//
// Per chunk of up to kDecodeChunk keys (within one block when paged), two kinds of work:
//  A. In address order (kKeys keys at a time, every head in turn): S = Q K^T for the packed G * R
//     query rows of each head (each K row converted once, four rows per tile, kKeys x 4 dot
//     products reduced together into one vector of scores), and a software prefetch into L2 of
//     the same keys' K and V rows kPrefetchChunks chunks ahead. The rows of one head are Hkv * D
//     elements apart; reading them from DRAM head by head defeats the hardware prefetchers
//     (measured: half the bandwidth on Zen 4), so A touches every row in address order.
//  B. Per head: the causal mask of the new rows, an online base-2 softmax per row on whole
//     vectors, then O = alpha O + P V straight from the cached V rows (in L2 since the prefetch).
//     (Copying V into a head-major scratch during A cost more CPU time per byte.)
// B of one chunk is spread between the keys of A of the next (two sets of score buffers),
// so the cache keeps streaming: pausing the reads for a whole pass B cost as much again.
// Without the software prefetch the kernel waited on K: the hardware prefetchers alone keep too
// few lines in flight (docs/perf-log/decode.md, the prefetch round).
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() (a self-initialised variable), which
// -Wmaybe-uninitialized reports at every inlined use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cmath>
#include <limits>

#include "decode_kernels.hpp"
#include "src/cpu/simd/simd.hpp"

namespace qwen3vl::detail::decode::QWEN3VL_ISA_NS {
namespace {

namespace simd = ::qwen3vl::detail::cpu::QWEN3VL_ISA_NS;
// Vectors of whole [key][4 rows] score groups (4 portable lanes in the scalar build).
using S = simd::Simd4;
using Vec = S::V;
constexpr int kLanes = S::kWidth;
using simd::prefetch_l2;

constexpr int kTile = kDecodeRowTile;  // query rows sharing each converted K / V vector
constexpr int64_t kChunk = kDecodeChunk;
// K and V rows are prefetched into L2 this many chunks (64 KiB at Hkv 8, D 128, f16) ahead of
// their Q K^T (1 to 3 measured alike; prefetcht0 or prefetchnta instead of prefetcht2 made the
// kernel slower than no prefetch).
constexpr int64_t kPrefetchChunks = 2;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
static_assert(kLanes % kTile == 0, "a vector holds whole [key][4 rows] score groups");

constexpr int kKeys = S::kGroups;  // keys per Q K^T step: their [key][4 rows] scores fill a vector
static_assert(kChunk % kKeys == 0, "a chunk's score buffer holds whole vectors of keys");

// How the kernel reads a row of each storage format (kv_format.hpp). Code is the storage element;
// load(row, scales, c) gives kLanes values from column c (a multiple of kLanes), at(...) one, with
// `scales` the row's scales converted to fp32. kRowScale formats (int8, fp8) load their code
// values: the row's one scale multiplies its scores and its softmax weights instead, one multiply
// per key rather than per value. int4 loads values (code - 8) * group scale (its groups of 32 hold
// whole vectors: no tail).
constexpr int kMaxScales = 256 / kKvInt4Group;

template <class T>
struct FloatCodec {
  using Code = T;
  static constexpr bool kIntQk = false;
  static constexpr bool kRowScale = false;
  static constexpr int kScales = 0;
  static Vec load(const T* row, const float*, int64_t c) { return S::load(row + c); }
  static float at(const T* row, const float*, int64_t c) { return to_float(row[c]); }
};
struct Int8Codec {
  using Code = uint8_t;
  static constexpr bool kIntQk = false;
  static constexpr bool kRowScale = true;
  static constexpr int kScales = 1;
  static Vec load(const uint8_t* row, const float*, int64_t c) {
    return S::load_i8(reinterpret_cast<const int8_t*>(row) + c);
  }
  static float at(const uint8_t* row, const float*, int64_t c) {
    return kv_code_value(KvFormat::kInt8, row, c);
  }
};
struct Fp8Codec {
  using Code = uint8_t;
  static constexpr bool kIntQk = false;
  static constexpr bool kRowScale = true;
  static constexpr int kScales = 1;
  static Vec load(const uint8_t* row, const float*, int64_t c) { return S::load_fp8(row + c); }
  static float at(const uint8_t* row, const float*, int64_t c) {
    return kv_code_value(KvFormat::kFp8E4M3, row, c);
  }
};
struct Int4Codec {
  using Code = uint8_t;
  static constexpr bool kIntQk = false;
  static constexpr bool kRowScale = false;
  static constexpr int kScales = kMaxScales;
  static_assert(16 % kLanes == 0, "a vector takes the low or the high nibbles of its bytes");
  static Vec load(const uint8_t* row, const float* scales, int64_t c) {
    const int64_t g = c / kKvInt4Group, i = c % kKvInt4Group;
    return S::mul(S::load_i4(row + g * 16 + i % 16, i >= 16), S::set1(scales[g]));
  }
  static float at(const uint8_t* row, const float* scales, int64_t c) {
    return kv_code_value(KvFormat::kInt4, row, c) * scales[c / kKvInt4Group];
  }
};

// int8 with the integer Q.K (DecodeParams::integer_qk): q is held as int8 codes and one scale a
// row (kv_quantize_query), each score an exact integer dot product times the two scales, so a key
// costs no conversion to fp32. P.V reads V as Int8Codec does.
struct Int8QkCodec : Int8Codec {
  static constexpr bool kIntQk = true;
  static constexpr bool kVnni = false;
};
#if defined(QWEN3VL_ISA_AVX512)
struct Int8VnniCodec : Int8QkCodec {  // qk_keys_i8_vnni (DecodeTask::vnni)
  static constexpr bool kVnni = true;
};
#endif

// The fp32 scales of a row (n of them) for load / at (F16C where the ISA has it, as every scale
// read here: the portable conversion's branches cost as much as a key's multiplies).
template <class C>
inline void row_scales(const half* scales, int64_t n, float* out) {
  if constexpr (C::kScales > 1)
    for (int64_t g = 0; g < n; ++g) out[g] = simd::Simd::load_one(scales + g);
}

// out[i * 4 + r] = q[r] . k_i for the four rows of a tile and the nk <= kKeys keys at k, k_stride
// apart (missing keys repeat the last one; their scores are masked later). Each column chunk of
// the four q rows is loaded once for all the keys, the kKeys x 4 accumulators are independent FMA
// chains, and one transpose-reduce turns them into a whole vector of scores.
template <class C, class T = typename C::Code>
inline void qk_keys(const float* q, int64_t q_stride, const T* k, int64_t k_stride, const half* ks,
                    int64_t ks_stride, int64_t nk, int64_t d, float* out) {
  const T* key[kKeys];
  float sc[kKeys][C::kScales > 0 ? C::kScales : 1];
  for (int i = 0; i < kKeys; ++i) {
    const int64_t at = i < nk ? i : nk - 1;
    key[i] = k + at * k_stride;
    if constexpr (C::kScales > 1) row_scales<C>(ks + at * ks_stride, d / kKvInt4Group, sc[i]);
  }
  const int64_t dv = d / kLanes * kLanes;
  Vec acc[kKeys][kTile];
  for (int i = 0; i < kKeys; ++i)
    for (int r = 0; r < kTile; ++r) acc[i][r] = S::zero();
  for (int64_t c = 0; c < dv; c += kLanes) {
    Vec qc[kTile];
    for (int r = 0; r < kTile; ++r) qc[r] = S::load(q + r * q_stride + c);
    for (int i = 0; i < kKeys; ++i) {
      const Vec x = C::load(key[i], sc[i], c);
      for (int r = 0; r < kTile; ++r) acc[i][r] = S::fma(qc[r], x, acc[i][r]);
    }
  }
  S::store(out, S::reduce_groups(acc));
  for (int64_t c = dv; c < d; ++c)
    for (int i = 0; i < kKeys; ++i) {
      const float x = C::at(key[i], sc[i], c);
      for (int r = 0; r < kTile; ++r) out[i * kTile + r] += q[r * q_stride + c] * x;
    }
  if constexpr (C::kRowScale)
    for (int i = 0; i < kKeys; ++i) {
      const float scale = simd::Simd::load_one(ks + (i < nk ? i : nk - 1) * ks_stride);
      for (int r = 0; r < kTile; ++r) out[i * kTile + r] *= scale;
    }
}

// The integer Q.K's q rows hold int8 codes (q_stride floats apart, zero padded) followed by the
// row's scale at float q_scale_at(q_stride) and, for the VNNI kernel, -128 times the sum of its
// codes in whole 64-byte vectors at the float after it (exact: at most 128 * 127 * 256).
inline int64_t q_scale_at(int64_t q_stride) { return q_stride / 4; }

// The integer Q.K's scores from the vector sums of columns [0, dv) ([key][4 rows] lanes): plus
// bias[r] and the columns [dv, d), times the row's q scale and the key's scale, into out.
inline void finish_scores(Vec dots, const int32_t* bias, const float* q, int64_t q_stride,
                          const int8_t* const* qc, const int8_t* const* key, int64_t dv, int64_t d,
                          const half* ks, int64_t ks_stride, int64_t nk, float* out) {
  alignas(64) float add[kLanes], k_scale[kLanes], q_scale[kTile];
  for (int r = 0; r < kTile; ++r) q_scale[r] = q[r * q_stride + q_scale_at(q_stride)];
  for (int i = 0; i < kKeys; ++i) {
    const float scale = simd::Simd::load_one(ks + (i < nk ? i : nk - 1) * ks_stride);
    for (int r = 0; r < kTile; ++r) {
      int32_t sum = bias[r];
      for (int64_t c = dv; c < d; ++c) sum += qc[r][c] * key[i][c];
      add[i * kTile + r] = static_cast<float>(sum);
      k_scale[i * kTile + r] = scale;
    }
  }
  S::store(out,
           S::mul(S::mul(S::add(dots, S::load(add)), S::broadcast4(q_scale)), S::load(k_scale)));
}

// qk_keys for Int8QkCodec. The integer sums stay below 2^24 (127 * 127 * 256), so their conversion
// and the lane reduction in fp32 are exact; only the two scale multiplies round.
inline void qk_keys_i8(const float* q, int64_t q_stride, const uint8_t* k, int64_t k_stride,
                       const half* ks, int64_t ks_stride, int64_t nk, int64_t d, float* out) {
  const int8_t* key[kKeys];
  for (int i = 0; i < kKeys; ++i)
    key[i] = reinterpret_cast<const int8_t*>(k + (i < nk ? i : nk - 1) * k_stride);
  const int8_t* qc[kTile];
  for (int r = 0; r < kTile; ++r) qc[r] = reinterpret_cast<const int8_t*>(q + r * q_stride);
  constexpr int64_t kBytes = S::kDotBytes;
  const int64_t dv = d / kBytes * kBytes;
  S::I acc[kKeys][kTile];
  for (int i = 0; i < kKeys; ++i)
    for (int r = 0; r < kTile; ++r) acc[i][r] = S::izero();
  for (int64_t c = 0; c < dv; c += kBytes) {
    S::B qv[kTile], qa[kTile];
    for (int r = 0; r < kTile; ++r) {
      qv[r] = S::load_bytes(qc[r] + c);
      qa[r] = S::abs_i8(qv[r]);
    }
    for (int i = 0; i < kKeys; ++i) {
      const S::B kv = S::load_bytes(key[i] + c);
      for (int r = 0; r < kTile; ++r) acc[i][r] = S::dot_i8(acc[i][r], qv[r], qa[r], kv);
    }
  }
  Vec sums[kKeys][kTile];
  for (int i = 0; i < kKeys; ++i)
    for (int r = 0; r < kTile; ++r) sums[i][r] = S::to_float(acc[i][r]);
  const int32_t bias[kTile] = {};
  finish_scores(S::reduce_groups(sums), bias, q, q_stride, qc, key, dv, d, ks, ks_stride, nk, out);
}

#if defined(QWEN3VL_ISA_AVX512)
// qk_keys_i8 with AVX512-VNNI, compiled for it alone (called only where the CPU has it). dpbusd
// multiplies unsigned by signed bytes without saturating, so K goes in as k + 128 (a flipped sign
// bit: one operation a key, none a row) and each row's 128 * sum(q) (once a call) comes off at the
// end; the sums stay below 2^24 (255 * 127 * 256), exact in fp32 as before.
__attribute__((target("avx512vnni"))) void qk_keys_i8_vnni(const float* q, int64_t q_stride,
                                                           const uint8_t* k, int64_t k_stride,
                                                           const half* ks, int64_t ks_stride,
                                                           int64_t nk, int64_t d, float* out) {
  const int8_t* key[kKeys];
  for (int i = 0; i < kKeys; ++i)
    key[i] = reinterpret_cast<const int8_t*>(k + (i < nk ? i : nk - 1) * k_stride);
  const int8_t* qc[kTile];
  for (int r = 0; r < kTile; ++r) qc[r] = reinterpret_cast<const int8_t*>(q + r * q_stride);
  constexpr int64_t kBytes = 64;
  const int64_t dv = d / kBytes * kBytes;
  __m512i acc[kKeys][kTile];
  for (int i = 0; i < kKeys; ++i)
    for (int r = 0; r < kTile; ++r) acc[i][r] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t c = 0; c < dv; c += kBytes) {
    __m512i qv[kTile];
    for (int r = 0; r < kTile; ++r) qv[r] = _mm512_loadu_si512(qc[r] + c);
    for (int i = 0; i < kKeys; ++i) {
      const __m512i ku = _mm512_xor_si512(_mm512_loadu_si512(key[i] + c), flip);
      for (int r = 0; r < kTile; ++r) acc[i][r] = _mm512_dpbusd_epi32(acc[i][r], ku, qv[r]);
    }
  }
  Vec sums[kKeys][kTile];
  for (int i = 0; i < kKeys; ++i)
    for (int r = 0; r < kTile; ++r) sums[i][r] = _mm512_cvtepi32_ps(acc[i][r]);
  int32_t bias[kTile];
  for (int r = 0; r < kTile; ++r)
    bias[r] = static_cast<int32_t>(q[r * q_stride + q_scale_at(q_stride) + 1]);
  finish_scores(S::reduce_groups(sums), bias, q, q_stride, qc, key, dv, d, ks, ks_stride, nk, out);
}
#endif

// The integer Q.K of Int8QkCodec or Int8VnniCodec.
template <class C>
inline void qk_int8(const float* q, int64_t q_stride, const uint8_t* k, int64_t k_stride,
                    const half* ks, int64_t ks_stride, int64_t nk, int64_t d, float* out) {
#if defined(QWEN3VL_ISA_AVX512)
  if constexpr (C::kVnni)
    return qk_keys_i8_vnni(q, q_stride, k, k_stride, ks, ks_stride, nk, d, out);
#endif
  qk_keys_i8(q, q_stride, k, k_stride, ks, ks_stride, nk, d, out);
}

// o[r] = alpha[r] o[r] + sum_j p[j][r] v[j] for the four rows of a tile over n keys (p laid out
// [key][4 rows]). One column vector at a time, so each weight feeds a single FMA per pass and the
// compiler folds its broadcast into the FMA (AVX-512 {1to16}: a separate broadcast costs a shuffle
// uop per two FMAs on Zen 4); even and odd keys go to separate accumulators (8 FMA chains).
template <class C, class T = typename C::Code>
inline void pv_chunk(const float* p, const T* v, int64_t v_stride, const half* vs,
                     int64_t vs_stride, int64_t n, int64_t d, float* o, int64_t o_stride,
                     const float* alpha) {
  float sc[kChunk][C::kScales > 0 ? C::kScales : 1];
  if constexpr (C::kScales > 1)
    for (int64_t j = 0; j < n; ++j) row_scales<C>(vs + j * vs_stride, d / kKvInt4Group, sc[j]);
  bool rescale = false;
  for (int r = 0; r < kTile; ++r) rescale |= alpha[r] != 1.0f;
  const int64_t dv = d / kLanes * kLanes;
  for (int64_t c = 0; c < dv; c += kLanes) {
    Vec a[kTile], b[kTile];
    for (int r = 0; r < kTile; ++r) {
      a[r] = S::load(o + r * o_stride + c);
      if (rescale) a[r] = S::mul(a[r], S::set1(alpha[r]));
      b[r] = S::zero();
    }
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      const Vec x = C::load(v + j * v_stride, sc[j], c);
      const Vec y = C::load(v + (j + 1) * v_stride, sc[j + 1], c);
      for (int r = 0; r < kTile; ++r) {
        a[r] = S::fma(S::set1(p[j * kTile + r]), x, a[r]);
        b[r] = S::fma(S::set1(p[(j + 1) * kTile + r]), y, b[r]);
      }
    }
    if (j < n) {
      const Vec x = C::load(v + j * v_stride, sc[j], c);
      for (int r = 0; r < kTile; ++r) a[r] = S::fma(S::set1(p[j * kTile + r]), x, a[r]);
    }
    for (int r = 0; r < kTile; ++r) S::store(o + r * o_stride + c, S::add(a[r], b[r]));
  }
  for (int64_t c = dv; c < d; ++c)
    for (int r = 0; r < kTile; ++r) {
      float acc = o[r * o_stride + c] * alpha[r];
      for (int64_t j = 0; j < n; ++j) acc += p[j * kTile + r] * C::at(v + j * v_stride, sc[j], c);
      o[r * o_stride + c] = acc;
    }
}

// o[r] += p[j][r] v[j] for keys j in [from, n) and the rows r that see them (j < ends[r]): the
// keys some rows of the tile do not see. pv_chunk would multiply their zero weights by V, and
// 0 x Inf = NaN would reach those rows; only the last few keys of a sequence (R new rows) are
// here, so a plain loop does.
template <class C, class T = typename C::Code>
inline void pv_partial(const float* p, const T* v, int64_t v_stride, const half* vs,
                       int64_t vs_stride, int64_t from, int64_t n, const int64_t* ends, int rows,
                       int64_t d, float* o, int64_t o_stride) {
  for (int64_t j = from; j < n; ++j) {
    float sc[C::kScales > 0 ? C::kScales : 1];
    if constexpr (C::kScales > 1) row_scales<C>(vs + j * vs_stride, d / kKvInt4Group, sc);
    for (int r = 0; r < rows; ++r) {
      if (j >= ends[r]) continue;
      const float w = p[j * kTile + r];
      for (int64_t c = 0; c < d; ++c) o[r * o_stride + c] += w * C::at(v + j * v_stride, sc, c);
    }
  }
}

// Softmax step for one tile over a chunk: s holds n keys' scores as [key][4 rows] (padded to whole
// vectors), ends[r] = keys of the chunk row r sees. Folds them into the running max / sum, leaves
// the weights in s and the factors the rows' outputs must be rescaled by in alpha. Whole vectors:
// a vector's lanes j and j + 4 belong to the same row.
inline void softmax_tile(float* s, int64_t n, const int64_t* ends, float* m, float* l,
                         float* alpha) {
  const int64_t used = n * kTile, padded = (used + kLanes - 1) / kLanes * kLanes;
  bool masked = false;
  for (int r = 0; r < kTile; ++r) masked |= ends[r] < n;
  if (masked)
    for (int64_t j = 0; j < n; ++j)
      for (int r = 0; r < kTile; ++r)
        if (j >= ends[r]) s[j * kTile + r] = kNegInf;
  for (int64_t i = used; i < padded; ++i) s[i] = kNegInf;
  // A NaN score (q, or a K row the row sees) must make the row NaN, but the vector max drops a NaN
  // operand. probe sums the scores scaled down (no overflow): NaN exactly where a row has a
  // NaN score (or +inf beside -inf, a non-finite score too); masked -inf alone stays -inf. Such a
  // row's max and sum are set to NaN (sticky over later chunks).
  Vec mx = S::set1(kNegInf), probe = S::zero();
  const Vec tiny = S::set1(0x1p-100f);
  for (int64_t i = 0; i < padded; i += kLanes) {
    const Vec x = S::load(s + i);
    mx = S::max(mx, x);
    probe = S::fma(x, tiny, probe);
  }
  alignas(64) float lanes[kLanes];
  S::store(lanes, S::fold_groups_sum(probe));
  bool nan[kTile];
  for (int r = 0; r < kTile; ++r) nan[r] = lanes[r] != lanes[r];
  S::store(lanes, S::fold_groups_max(mx));
  float shift[kTile], decay[kTile];
  for (int r = 0; r < kTile; ++r) {
    if (nan[r]) lanes[r] = std::numeric_limits<float>::quiet_NaN();
    const float m_new = lanes[r] > m[r] || lanes[r] != lanes[r] ? lanes[r] : m[r];
    const bool none = m_new == kNegInf;  // no key seen yet: weights 0, nothing to rescale
    shift[r] = none ? 0.0f : m_new;
    decay[r] = none ? 0.0f : m[r] - m_new;  // -inf on the first visible chunk: alpha 0
    m[r] = m_new;
  }
  const Vec sv = S::broadcast4(shift);
  Vec sum = S::zero();
  for (int64_t i = 0; i < padded; i += kLanes) {
    const Vec e = simd::vmath::exp2_nonpositive<S>(S::sub(S::load(s + i), sv));
    S::store(s + i, e);
    sum = S::add(sum, e);
  }
  S::store(lanes, S::fold_groups_sum(sum));
  alignas(64) float factors[kLanes];
  S::store(factors, simd::vmath::exp2_nonpositive<S>(S::broadcast4(decay)));
  for (int r = 0; r < kTile; ++r) {
    alpha[r] = factors[r];
    l[r] = nan[r] ? std::numeric_limits<float>::quiet_NaN() : l[r] * alpha[r] + lanes[r];
  }
}

// dst[c] = scale * src[c] for c < d: a row between storage (float, half, bfloat16) and fp32.
template <class To, class From>
inline void scale_row(const From* src, int64_t d, float scale, To* dst) {
  const Vec sv = S::set1(scale);
  int64_t c = 0;
  for (; c + kLanes <= d; c += kLanes) S::store(dst + c, S::mul(S::load(src + c), sv));
  for (; c < d; ++c) dst[c] = from_float<To>(to_float(src[c]) * scale);
}

// The running state of one KV head's packed query rows (padded to whole tiles).
struct HeadState {
  float* q;  // [rows][dp], pre-scaled by scale * log2(e), zero padded
  float* o;  // [rows][dp], unnormalised
  float* m;  // [rows], running max (base 2)
  float* l;  // [rows], running sum
  float* s;  // [2][tiles][kChunk][4]: a chunk's scores, then its weights (double buffered)
};

template <class C>
void run(const DecodeTask& t) {
  using T = typename C::Code;
  const DecodeParams& p = *t.params;
  const DecodeShape& s = t.shape;
  const int64_t d = s.head_dim, dp = decode_padded_dim(d), g_size = s.group_size();
  const int64_t rows = g_size * s.rows, padded_rows = decode_padded_rows(rows);
  const int64_t tiles = padded_rows / kTile, heads = t.kv_head_end - t.kv_head_begin;
  const float q_scale = s.scale * 1.4426950408889634f;

  float* base = static_cast<float*>(t.scratch);
  const int64_t per_head = padded_rows * (2 * dp + 2 + 2 * kChunk);
  auto state = [&](int64_t h) {
    float* q = base + h * per_head;
    float* o = q + padded_rows * dp;
    float* m = o + padded_rows * dp;
    return HeadState{q, o, m, m + padded_rows, m + 2 * padded_rows};
  };

  // Packed row i of a head is (group member i / R, new row i % R); row r sees keys < end(i).
  auto visible_end = [&](int64_t i) { return i < rows ? t.seq_len - s.rows + i % s.rows + 1 : 0; };
  dispatch_float_dtype(p.q.dtype, [&](auto q_tag) {
    using Q = decltype(q_tag);
    for (int64_t h = 0; h < heads; ++h) {
      const HeadState st = state(h);
      for (int64_t i = 0; i < padded_rows; ++i) {
        for (int64_t c = 0; c < dp; ++c) st.q[i * dp + c] = st.o[i * dp + c] = 0.0f;
        st.m[i] = kNegInf;
        st.l[i] = 0.0f;
        if (i >= rows) continue;
        const int64_t qh = (t.kv_head_begin + h) * g_size + i / s.rows;
        const Q* src = p.q.ptr<const Q>() + p.q.offset(t.b, i % s.rows, qh);
        if constexpr (C::kIntQk) {
          float x[256];
          scale_row(src, d, 1.0f, x);
          int8_t* codes = reinterpret_cast<int8_t*>(st.q + i * dp);
          const float qs = kv_quantize_query(x, d, codes);
          st.q[i * dp + q_scale_at(dp)] = qs * q_scale;
          if constexpr (C::kVnni) {  // -128 * sum(q) over the whole 64-byte vectors of a row
            int32_t sum = 0;
            for (int64_t c = 0; c < d / 64 * 64; ++c) sum += codes[c];
            st.q[i * dp + q_scale_at(dp) + 1] = static_cast<float>(-128 * sum);
          }
        } else {
          scale_row(src, d, q_scale, st.q + i * dp);
        }
      }
    }
  });

  const TensorView& kv_k = p.kv.k;
  const TensorView& kv_v = p.kv.v;
  // Scales (compressed formats): pointers advance with the codes' rows; null and unused otherwise.
  const bool coded = is_compressed(p.kv.format);
  const TensorView& kv_ks = p.kv.k_scales;
  const TensorView& kv_vs = p.kv.v_scales;
  const int64_t ks_row = coded ? kv_ks.stride[1] : 0, ks_head = coded ? kv_ks.stride[2] : 0;
  const int64_t vs_row = coded ? kv_vs.stride[1] : 0, vs_head = coded ? kv_vs.stride[2] : 0;
  const bool paged = p.kv.layout == KvLayout::kPaged;
  const PagedIndexer pager = paged ? paged_indexer(p.kv) : PagedIndexer{};
  const size_t row_bytes = static_cast<size_t>(kv_k.shape[3]) * sizeof(T);
  const int64_t score_buffer = tiles * kChunk * kTile;

  // B for head h of a finished chunk (its first key, length and buffer).
  struct Chunk {
    int64_t j0 = 0, n = 0, buffer = 0;
    const T* v0 = nullptr;      // V row of its first key, first head of the task
    const half* vs0 = nullptr;  // its scales
  };
  auto finish_head = [&](const Chunk& c, int64_t h) {
    const HeadState st = state(h);
    for (int64_t tile = 0; tile < tiles; ++tile) {
      int64_t ends[kTile];
      for (int r = 0; r < kTile; ++r) ends[r] = visible_end(tile * kTile + r) - c.j0;
      float* sc = st.s + c.buffer * score_buffer + tile * kChunk * kTile;
      float* o = st.o + tile * kTile * dp;
      float alpha[kTile];
      softmax_tile(sc, c.n, ends, st.m + tile * kTile, st.l + tile * kTile, alpha);
      // Keys [0, all) are seen by every row of the tile (padding rows aside: never stored).
      const int real = static_cast<int>(rows - tile * kTile < kTile ? rows - tile * kTile : kTile);
      int64_t all = c.n;
      for (int r = 0; r < real; ++r) all = ends[r] < all ? (ends[r] > 0 ? ends[r] : 0) : all;
      const T* v = c.v0 + h * kv_v.stride[2];
      const half* vs = coded ? c.vs0 + h * vs_head : nullptr;
      if constexpr (C::kRowScale)  // the weights take their V row's scale
        for (int64_t j = 0; j < c.n; ++j) {
          const float scale = simd::Simd::load_one(vs + j * vs_row);
          for (int r = 0; r < kTile; ++r) sc[j * kTile + r] *= scale;
        }
      pv_chunk<C>(sc, v, kv_v.stride[1], vs, vs_row, all, d, o, dp, alpha);
      if (all < c.n)
        pv_partial<C>(sc, v, kv_v.stride[1], vs, vs_row, all, c.n, ends, real, d, o, dp);
    }
  };

  // The rows of the chunk that starts at key j0 (within one block when paged).
  struct Rows {
    const T* k = nullptr;  // K and V rows of its first key, first head of the task
    const T* v = nullptr;
    const half* ks = nullptr;  // their scales (compressed formats)
    const half* vs = nullptr;
    int64_t n = 0;  // keys (0: past the task's end)
  };
  auto rows_at = [&](int64_t j0) {
    Rows r;
    if (j0 >= t.key_end) return r;
    r.n = t.key_end - j0 < kChunk ? t.key_end - j0 : kChunk;
    if (paged) r.n = pager.run(j0, r.n);
    const KvSlot slot = paged ? pager.slot(t.b, j0, t.kv_head_begin) : KvSlot{t.b, j0};
    r.k = kv_k.ptr<const T>() + kv_k.offset(slot.major, slot.minor, t.kv_head_begin);
    r.v = kv_v.ptr<const T>() + kv_v.offset(slot.major, slot.minor, t.kv_head_begin);
    if (coded) {
      r.ks = kv_ks.ptr<const half>() + kv_ks.offset(slot.major, slot.minor, t.kv_head_begin);
      r.vs = kv_vs.ptr<const half>() + kv_vs.offset(slot.major, slot.minor, t.kv_head_begin);
    }
    return r;
  };
  // Software prefetch into L2 (prefetcht2) of keys [i0, i1) of a chunk, head h: K and V rows.
  auto prefetch = [&](const Rows& r, int64_t i0, int64_t i1, int64_t h) {
    for (int64_t i = i0; i < i1 && i < r.n; ++i) {
      const char* k_row =
          reinterpret_cast<const char*>(r.k + i * kv_k.stride[1] + h * kv_k.stride[2]);
      const char* v_row =
          reinterpret_cast<const char*>(r.v + i * kv_v.stride[1] + h * kv_v.stride[2]);
      for (size_t at = 0; at < row_bytes; at += 64) {
        prefetch_l2(k_row, at);
        prefetch_l2(v_row, at);
      }
    }
  };
  for (int64_t c = 0; c < kPrefetchChunks;
       ++c) {  // the first chunks at once, as the loop runs behind
    const Rows r = rows_at(t.key_begin + c * kChunk);
    for (int64_t h = 0; h < heads; ++h) prefetch(r, 0, r.n, h);
  }

  Chunk pending;                 // the chunk whose B is spread over this chunk's A
  int64_t pending_head = heads;  // its next head to finish (heads: none left)
  for (int64_t j0 = t.key_begin, buffer = 0; j0 < t.key_end; buffer ^= 1) {
    const Rows now = rows_at(j0), next = rows_at(j0 + kPrefetchChunks * kChunk);
    const int64_t n = now.n;
    for (int64_t j = 0; j < n; j += kKeys) {
      const int64_t nk = n - j < kKeys ? n - j : kKeys;
      for (int64_t h = 0; h < heads; ++h) {  // A, in address order (kKeys rows at a time)
        const HeadState st = state(h);
        const T* k = now.k + j * kv_k.stride[1] + h * kv_k.stride[2];
        const half* ks = coded ? now.ks + j * ks_row + h * ks_head : nullptr;
        float* sc = st.s + buffer * score_buffer + j * kTile;
        for (int64_t tile = 0; tile < tiles; ++tile) {
          if constexpr (C::kIntQk)
            qk_int8<C>(st.q + tile * kTile * dp, dp, k, kv_k.stride[1], ks, ks_row, nk, d,
                       sc + tile * kChunk * kTile);
          else
            qk_keys<C>(st.q + tile * kTile * dp, dp, k, kv_k.stride[1], ks, ks_row, nk, d,
                       sc + tile * kChunk * kTile);
        }
        prefetch(next, j, j + kKeys, h);
      }
      // The previous chunk's heads, evenly spread over this chunk's keys.
      for (const int64_t due = ((j + nk) * heads + n - 1) / n; pending_head < due; ++pending_head)
        finish_head(pending, pending_head);
    }
    for (; pending_head < heads; ++pending_head) finish_head(pending, pending_head);
    pending = Chunk{j0, n, buffer, now.v, now.vs};
    pending_head = 0;
    j0 += n;
  }
  for (; pending_head < heads; ++pending_head) finish_head(pending, pending_head);

  // Normalise; rows that saw no key give 0 and LSE -inf.
  dispatch_float_dtype(p.out.dtype, [&](auto out_tag) {
    using O = decltype(out_tag);
    for (int64_t h = 0; h < heads; ++h) {
      const HeadState st = state(h);
      const int64_t kvh = t.kv_head_begin + h;
      for (int64_t i = 0; i < rows; ++i) {
        const bool empty = st.l[i] == 0.0f;  // NaN (a NaN score was seen) stays NaN
        const float inv = empty ? 0.0f : 1.0f / st.l[i];
        const float lse = empty ? kNegInf : (st.m[i] + std::log2(st.l[i])) * 0.6931471805599453f;
        const float* o = st.o + i * dp;
        if (t.partial_o) {
          scale_row(o, d, inv, t.partial_o + (kvh * rows + i) * d);
          t.partial_lse[kvh * rows + i] = lse;
          continue;
        }
        const int64_t qh = kvh * g_size + i / s.rows, r = i % s.rows;
        scale_row(o, d, inv, p.out.ptr<O>() + p.out.offset(t.b, r, qh));
        if (p.lse.present()) p.lse.ptr<float>()[p.lse.offset(t.b, qh, r)] = lse;
      }
    }
  });
}

}  // namespace

void run_task(const DecodeTask& task) {
  switch (task.params->kv.format) {
    case KvFormat::kInt8:
      if (!task.params->integer_qk) return run<Int8Codec>(task);
#if defined(QWEN3VL_ISA_AVX512)
      if (task.vnni) return run<Int8VnniCodec>(task);
#endif
      return run<Int8QkCodec>(task);
    case KvFormat::kInt4: return run<Int4Codec>(task);
    case KvFormat::kFp8E4M3: return run<Fp8Codec>(task);
    case KvFormat::kFloat: break;
  }
  dispatch_float_dtype(task.params->kv.k.dtype,
                       [&](auto tag) { run<FloatCodec<decltype(tag)>>(task); });
}

}  // namespace qwen3vl::detail::decode::QWEN3VL_ISA_NS

namespace qwen3vl::detail {
QWEN3VL_DEFINE_ISA_TABLE(DecodeKernels, &decode::QWEN3VL_ISA_NS::run_task)
}  // namespace qwen3vl::detail
