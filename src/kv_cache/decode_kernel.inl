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

// out[i * 4 + r] = q[r] . k_i for the four rows of a tile and the nk <= kKeys keys at k, k_stride
// apart (missing keys repeat the last one; their scores are masked later). Each column chunk of
// the four q rows is loaded once for all the keys, the kKeys x 4 accumulators are independent FMA
// chains, and one transpose-reduce turns them into a whole vector of scores.
template <class T>
inline void qk_keys(const float* q, int64_t q_stride, const T* k, int64_t k_stride, int64_t nk,
                    int64_t d, float* out) {
  const T* key[kKeys];
  for (int i = 0; i < kKeys; ++i) key[i] = k + (i < nk ? i : nk - 1) * k_stride;
  const int64_t dv = d / kLanes * kLanes;
  Vec acc[kKeys][kTile];
  for (int i = 0; i < kKeys; ++i)
    for (int r = 0; r < kTile; ++r) acc[i][r] = S::zero();
  for (int64_t c = 0; c < dv; c += kLanes) {
    Vec qc[kTile];
    for (int r = 0; r < kTile; ++r) qc[r] = S::load(q + r * q_stride + c);
    for (int i = 0; i < kKeys; ++i) {
      const Vec x = S::load(key[i] + c);
      for (int r = 0; r < kTile; ++r) acc[i][r] = S::fma(qc[r], x, acc[i][r]);
    }
  }
  S::store(out, S::reduce_groups(acc));
  for (int64_t c = dv; c < d; ++c)
    for (int i = 0; i < kKeys; ++i) {
      const float x = to_float(key[i][c]);
      for (int r = 0; r < kTile; ++r) out[i * kTile + r] += q[r * q_stride + c] * x;
    }
}

// o[r] = alpha[r] o[r] + sum_j p[j][r] v[j] for the four rows of a tile over n keys (p laid out
// [key][4 rows]). One column vector at a time, so each weight feeds a single FMA per pass and the
// compiler folds its broadcast into the FMA (AVX-512 {1to16}: a separate broadcast costs a shuffle
// uop per two FMAs on Zen 4); even and odd keys go to separate accumulators (8 FMA chains).
template <class T>
inline void pv_chunk(const float* p, const T* v, int64_t v_stride, int64_t n, int64_t d, float* o,
                     int64_t o_stride, const float* alpha) {
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
      const Vec x = S::load(v + j * v_stride + c), y = S::load(v + (j + 1) * v_stride + c);
      for (int r = 0; r < kTile; ++r) {
        a[r] = S::fma(S::set1(p[j * kTile + r]), x, a[r]);
        b[r] = S::fma(S::set1(p[(j + 1) * kTile + r]), y, b[r]);
      }
    }
    if (j < n) {
      const Vec x = S::load(v + j * v_stride + c);
      for (int r = 0; r < kTile; ++r) a[r] = S::fma(S::set1(p[j * kTile + r]), x, a[r]);
    }
    for (int r = 0; r < kTile; ++r) S::store(o + r * o_stride + c, S::add(a[r], b[r]));
  }
  for (int64_t c = dv; c < d; ++c)
    for (int r = 0; r < kTile; ++r) {
      float acc = o[r * o_stride + c] * alpha[r];
      for (int64_t j = 0; j < n; ++j) acc += p[j * kTile + r] * to_float(v[j * v_stride + c]);
      o[r * o_stride + c] = acc;
    }
}

// o[r] += p[j][r] v[j] for keys j in [from, n) and the rows r that see them (j < ends[r]): the
// keys some rows of the tile do not see. pv_chunk would multiply their zero weights by V, and
// 0 x Inf = NaN would reach those rows; only the last few keys of a sequence (R new rows) are
// here, so a plain loop does.
template <class T>
inline void pv_partial(const float* p, const T* v, int64_t v_stride, int64_t from, int64_t n,
                       const int64_t* ends, int rows, int64_t d, float* o, int64_t o_stride) {
  for (int64_t j = from; j < n; ++j)
    for (int r = 0; r < rows; ++r) {
      if (j >= ends[r]) continue;
      const float w = p[j * kTile + r];
      for (int64_t c = 0; c < d; ++c) o[r * o_stride + c] += w * to_float(v[j * v_stride + c]);
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

template <class T>
void run(const DecodeTask& t) {
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
        scale_row(p.q.ptr<const Q>() + p.q.offset(t.b, i % s.rows, qh), d, q_scale, st.q + i * dp);
      }
    }
  });

  const TensorView& kv_k = p.kv.k;
  const TensorView& kv_v = p.kv.v;
  const bool paged = p.kv.layout == KvLayout::kPaged;
  const PagedIndexer pager = paged ? paged_indexer(p.kv) : PagedIndexer{};
  const size_t row_bytes = static_cast<size_t>(d) * sizeof(T);
  const int64_t score_buffer = tiles * kChunk * kTile;

  // B for head h of a finished chunk (its first key, length and buffer).
  struct Chunk {
    int64_t j0 = 0, n = 0, buffer = 0;
    const T* v0 = nullptr;  // V row of its first key, first head of the task
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
      pv_chunk(sc, v, kv_v.stride[1], all, d, o, dp, alpha);
      if (all < c.n) pv_partial(sc, v, kv_v.stride[1], all, c.n, ends, real, d, o, dp);
    }
  };

  // The rows of the chunk that starts at key j0 (within one block when paged).
  struct Rows {
    const T* k = nullptr;  // K and V rows of its first key, first head of the task
    const T* v = nullptr;
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
        float* sc = st.s + buffer * score_buffer + j * kTile;
        for (int64_t tile = 0; tile < tiles; ++tile)
          qk_keys(st.q + tile * kTile * dp, dp, k, kv_k.stride[1], nk, d,
                  sc + tile * kChunk * kTile);
        prefetch(next, j, j + kKeys, h);
      }
      // The previous chunk's heads, evenly spread over this chunk's keys.
      for (const int64_t due = ((j + nk) * heads + n - 1) / n; pending_head < due; ++pending_head)
        finish_head(pending, pending_head);
    }
    for (; pending_head < heads; ++pending_head) finish_head(pending, pending_head);
    pending = Chunk{j0, n, buffer, now.v};
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
  dispatch_float_dtype(task.params->kv.k.dtype, [&](auto tag) { run<decltype(tag)>(task); });
}

}  // namespace qwen3vl::detail::decode::QWEN3VL_ISA_NS

namespace qwen3vl::detail {
QWEN3VL_DEFINE_ISA_TABLE(DecodeKernels, &decode::QWEN3VL_ISA_NS::run_task)
}  // namespace qwen3vl::detail
