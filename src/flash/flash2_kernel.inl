// FlashAttention-2 forward for one task (a block of query positions times every query head of
// one KV head, or times a run of heads' gathered rows: gathered_rows.hpp), compiled once per ISA:
// include it after defining QWEN3VL_ISA_NS and including that ISA's simd_<isa>.hpp and
// vector_math.inl.
//
// The tile works transposed: S^T = K Q^T and O^T += V^T P^T, so SIMD lanes run over query rows.
// Online-softmax statistics (running max, sum, rescale factor) are then plain vectors, with no
// horizontal reductions, and masks act on whole key rows of S^T (a causal or window mask hides a
// contiguous range of query rows from each key). Rows are ordered (position, head in group), so
// one K/V block, converted and packed once, serves all G query heads of its KV head.
//
// Per K/V block: K as contiguous fp32 rows, S^T = K Q^T, softcap and masks (skipped for blocks
// every row sees fully), block max, exp2 (log2(e) is folded into the scale), rescale factors
// (applied inside the P V micro-kernel, and only where the max moved), V as fp32 rows,
// O^T += V^T P^T. The output is normalised once at the end. Blocks no row sees are skipped. The
// K/V loop walks the task's key intervals: the hull of its rows' keys for dense attention, the
// listed column runs of a block-sparse layout (one kernel for both).
//
// Only this ISA's namespace may define symbols here: <math.h> log2f, not std::log2, whose inline
// wrapper an -O0 build would emit compiled with this ISA's flags.
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "gathered_rows.hpp"
#include "src/core/workspace_carver.hpp"
#include "src/cpu/kernels.hpp"
#include "src/cpu/simd/simd.hpp"

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS {
namespace {

using V = Simd::V;
constexpr int kW = Simd::kWidth;
constexpr int kKeys = Simd::kQkKeys;      // keys per S^T micro-tile
constexpr int kCols = Simd::kPvCols;      // output columns (of head_dim) per O^T micro-tile
constexpr int kRowVecs = Simd::kRowVecs;  // query-row vectors per micro-tile
constexpr int64_t kRows = int64_t{kRowVecs} * kW;  // query rows per micro-tile: a "row panel"
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Unrolls a register-block loop. Without it GCC keeps the accumulator arrays in memory and stores
// every accumulator on every iteration (clang reads the GCC spelling too).
#define QWEN3VL_UNROLL _Pragma("GCC unroll 16")

struct Geometry {
  int64_t d = 0;         // head_dim
  int64_t dim_pad = 0;   // head_dim rounded up to kCols
  int64_t rows_pad = 0;  // tile rows (group x positions) rounded up to kRows
  int64_t rows = 0;      // the task's tile rows (set per task; the plan sizes rows_pad only)
  int64_t block_k = 0;   // keys per K/V block, a multiple of kKeys
};

// Row vectors of the panel at tile row rp that hold task rows: kRowVecs except in a short last
// panel (64 rows of a block-sparse row block are 48 + 16 on AVX-512), whose empty vectors the
// panel kernels skip instead of computing padding.
int panel_vecs(const Geometry& g, int64_t rp) {
  const int64_t vecs = (g.rows - rp + kW - 1) / kW;
  return vecs < kRowVecs ? static_cast<int>(vecs) : kRowVecs;
}

// Calls f(PanelVecs<nv>{}) for 1 <= nv <= kRowVecs: panel kernels are compiled for each vector
// count, so the full panel's register blocks stay fully unrolled. (A local tag, not
// std::integral_constant, whose members an -O0 build would emit with this ISA's flags.)
template <int N>
struct PanelVecs {
  static constexpr int value = N;
};
template <int NV = kRowVecs, class F>
void with_panel_vecs(int nv, F&& f) {
  if constexpr (NV > 1)
    if (nv < NV) return with_panel_vecs<NV - 1>(nv, f);
  f(PanelVecs<NV>{});
}

Geometry plan_geometry(const AttentionShape& s, const Flash2Plan& plan) {
  Geometry g;
  g.d = s.head_dim;
  g.dim_pad = round_up(s.head_dim, kCols);
  g.rows_pad = round_up(s.heads / s.kv_heads * plan.block_q, kRows);
  g.block_k = plan.block_k;
  return g;
}

// The thread's scratch; layout() carves it (or, with base == nullptr, only sizes it).
struct Scratch {
  float* qt;         // [rows_pad / kRows][d][kRows]        Q^T, scaled, one panel per kRows rows
  float* ot;         // [rows_pad / kRows][dim_pad][kRows]  unnormalised O^T
  float* kp;         // [block_k][d]                         K block
  float* vp;         // [block_k][dim_pad]                   V block
  float* st;         // [block_k][rows_pad]                  S^T, then P^T
  float* m;          // [rows_pad] running max (log2 units)
  float* l;          // [rows_pad] running sum
  float* alpha;      // [rows_pad] this block's rescale factor
  float* row;        // [dim_pad] one converted row
  uint8_t* live;     // [block_k] kDead, kLive or kLiveNonFinite (see pack_v)
  uint8_t* rescale;  // [rows_pad / kRows] the panel's max moved in this block
};

size_t layout(const Geometry& g, char* base, Scratch* s) {
  Carver c(base);  // the slot is 64-byte aligned (the carver's slot array)
  Scratch w;
  w.qt = c.take<float>(g.rows_pad * g.d);
  w.ot = c.take<float>(g.rows_pad * g.dim_pad);
  w.kp = c.take<float>(g.block_k * g.d);
  w.vp = c.take<float>(g.block_k * g.dim_pad);
  w.st = c.take<float>(g.block_k * g.rows_pad);
  w.m = c.take<float>(g.rows_pad);
  w.l = c.take<float>(g.rows_pad);
  w.alpha = c.take<float>(g.rows_pad);
  w.row = c.take<float>(g.dim_pad);
  w.live = c.take<uint8_t>(g.block_k);
  w.rescale = c.take<uint8_t>(g.rows_pad / kRows);
  if (s) *s = w;
  return c.used();
}

void fill(float* p, int64_t n, float x) {
  for (int64_t i = 0; i < n; ++i) p[i] = x;
}

// --- loading and packing ----------------------------------------------------------------------

template <class T>
const T* row_ptr(const TensorView& t, const Flash2Task& task, int64_t start, int64_t i, int64_t h) {
  const int64_t off = task.shape.varlen ? (start + i) * t.stride[0] + h * t.stride[1]
                                        : task.b * t.stride[0] + i * t.stride[1] + h * t.stride[2];
  return static_cast<const T*>(t.data) + off;
}

// The sequence row of the task's row i: i itself, or gathered row i's index in its sequence.
int64_t sequence_row(const Flash2Task& t, int64_t i) {
  return t.gathered ? t.gathered->row[t.head * t.gathered->rows + i] : i;
}

// n elements of any storage type -> fp32, times scale.
template <class T>
void convert_row(const T* src, int64_t n, float scale, float* dst) {
  const V s = Simd::set1(scale);
  int64_t c = 0;
  for (; c + kW <= n; c += kW) Simd::store(dst + c, Simd::mul(Simd::load(src + c), s));
  for (; c < n; ++c) dst[c] = Simd::load_one(src + c) * scale;
}

template <class T>
void store_row(const float* src, int64_t n, T* dst) {
  int64_t c = 0;
  for (; c + kW <= n; c += kW) Simd::store(dst + c, Simd::load(src + c));
  for (; c < n; ++c) Simd::store_one(dst + c, src[c]);
}

// Q^T of the tile's rows (row r = position r / heads, head r % heads of the task's heads);
// padding rows are 0.
template <class T>
void pack_q(const Flash2Task& t, const Geometry& g, int64_t rows, float scale, const Scratch& w) {
  for (int64_t r = 0; r < g.rows_pad; ++r) {
    if (r < rows)
      convert_row(row_ptr<T>(t.params->q, t, t.span.q_start,
                             sequence_row(t, t.q_begin + r / t.heads), t.head + r % t.heads),
                  g.d, scale, w.row);
    else
      fill(w.row, g.d, 0.0f);
    float* dst = w.qt + (r / kRows) * g.d * kRows + r % kRows;
    for (int64_t c = 0; c < g.d; ++c) dst[c * kRows] = w.row[c];
  }
}

// Calls f(j, run, element offset of row k0 + j in K / V) for keys [k0, k0 + kn) of the task's
// sequence and KV head in the cache, in runs of consecutive rows (one table lookup a run: a run
// ends with its block). Spelled out, not through the view's indexer: an inline helper of a header,
// emitted here, would carry this ISA's flags.
template <class F>
void for_cache_runs(const Flash2Task& t, const TensorView& src, int64_t k0, int64_t kn, F&& f) {
  const KvCacheView& kv = *t.cache;
  const bool paged = kv.layout == KvLayout::kPaged;
  const int64_t bs = paged ? src.shape[1] : 0;
  for (int64_t j = 0; j < kn;) {
    const int64_t key = k0 + j;
    int64_t major = t.b, minor = key, run = kn - j;
    if (paged) {
      const int64_t blk = key / bs;
      major = static_cast<const int32_t*>(
          kv.block_table.data)[t.b * kv.block_table.stride[0] + blk * kv.block_table.stride[1]];
      minor = key - blk * bs;
      run = run < bs - minor ? run : bs - minor;
    }
    f(j, run, major * src.stride[0] + minor * src.stride[1] + t.kv_head * src.stride[2]);
    j += run;
  }
}

// Rows [k0, k0 + kn) of K (or V) as fp32 rows `ld` apart at dst, skipping rows whose live[] is
// kDead (live null: every row): from params k / v, or from the cache in its dtype. The tile
// copies every K/V row into its fp32 block anyway, so a block table costs a lookup per run.
template <class T>
void load_kv_rows(const Flash2Task& t, bool value, int64_t k0, int64_t kn, int64_t n, float* dst,
                  int64_t ld, const uint8_t* live) {
  if (t.cache == nullptr) {
    const TensorView& src = value ? t.params->v : t.params->k;
    for (int64_t j = 0; j < kn; ++j)
      if (!live || live[j])
        convert_row(row_ptr<T>(src, t, t.span.k_start, k0 + j, t.kv_head), n, 1.0f, dst + j * ld);
    return;
  }
  const TensorView& src = value ? t.cache->v : t.cache->k;
  for_cache_runs(t, src, k0, kn, [&](int64_t j, int64_t run, int64_t off) {
    const auto convert = [&](auto* base) {
      for (int64_t i = 0; i < run; ++i)
        if (!live || live[j + i])
          convert_row(base + off + i * src.stride[1], n, 1.0f, dst + (j + i) * ld);
    };
    switch (src.dtype) {
      case DType::kF16: convert(static_cast<const half*>(src.data)); break;
      case DType::kBF16: convert(static_cast<const bfloat16*>(src.data)); break;
      default: convert(static_cast<const float*>(src.data)); break;
    }
  });
}

// Software prefetch into L2 of rows [k0, k0 + kn) of K (or V) in the cache. A task reads one KV
// head's rows, Hkv * D elements apart: too sparse for the hardware prefetchers, so without this
// the tile waits on every row (a fifth of a shared-prefix pass at Hkv 8, D 128, f16).
void prefetch_kv_rows(const Flash2Task& t, bool value, int64_t k0, int64_t kn, int64_t n) {
  const TensorView& src = value ? t.cache->v : t.cache->k;
  const int64_t es = src.dtype == DType::kF32 ? 4 : 2;  // f32, or f16 / bf16
  const size_t row_bytes = static_cast<size_t>(n * es);
  for_cache_runs(t, src, k0, kn, [&](int64_t, int64_t run, int64_t off) {
    const char* base = static_cast<const char*>(src.data) + off * es;
    for (int64_t i = 0; i < run; ++i)
      for (size_t at = 0; at < row_bytes; at += 64) prefetch_l2(base + i * src.stride[1] * es, at);
  });
}

// Keys [k0, k0 + kn) as fp32 rows, then zero keys up to a multiple of kKeys.
template <class T>
void pack_k(const Flash2Task& t, const Geometry& g, int64_t k0, int64_t kn, const Scratch& w) {
  load_kv_rows<T>(t, false, k0, kn, g.d, w.kp, g.d, nullptr);
  fill(w.kp + kn * g.d, (round_up(kn, kKeys) - kn) * g.d, 0.0f);
}

// live[] states of a block's keys.
constexpr uint8_t kDead = 0;  // no row of the tile sees the key
constexpr uint8_t kLive = 1;  // some row sees it
constexpr uint8_t kLiveNonFinite =
    2;  // some row sees it, its V holds Inf/NaN, the block is partial

// Does a row of n floats hold Inf or NaN? (x * 0 is NaN exactly for those.)
bool has_non_finite(const float* x, int64_t n) {
  V acc = Simd::zero();
  int64_t c = 0;
  for (; c + kW <= n; c += kW) acc = Simd::add(acc, Simd::mul(Simd::load(x + c), Simd::zero()));
  float tail = 0.0f;
  for (; c < n; ++c) tail += x[c] * 0.0f;
  return !Simd::all(Simd::eq(acc, acc)) || tail != tail;
}

// Values [k0, k0 + kn) as fp32 rows of dim_pad (zero tail). Keys no row sees are stored as 0, not
// read: 0 x NaN would otherwise leak their NaN through a zero probability. In a block where some
// rows do not see some keys (`partial`), the same holds for a seen key whose V row holds Inf or
// NaN: the rows that do not see it multiply it by a zero probability. Such a row is stored as 0
// too and marked kLiveNonFinite; add_non_finite() adds it to the rows that see it after the P V
// micro-kernel. Blocks that every row sees fully need neither the check nor the pass.
template <class T>
void pack_v(const Flash2Task& t, const Geometry& g, int64_t k0, int64_t kn, bool partial,
            const Scratch& w) {
  load_kv_rows<T>(t, true, k0, kn, g.d, w.vp, g.dim_pad, w.live);
  for (int64_t j = 0; j < kn; ++j) {
    float* dst = w.vp + j * g.dim_pad;
    if (!w.live[j] || (partial && has_non_finite(dst, g.d))) {
      if (w.live[j]) w.live[j] = kLiveNonFinite;
      fill(dst, g.d, 0.0f);
    }
    fill(dst + g.d, g.dim_pad - g.d, 0.0f);
  }
}

// --- micro-kernels ----------------------------------------------------------------------------

// S^T[kKeys x NV vectors] = K[kKeys x d] Q^T[d x NV vectors] (of a kRows panel): keys broadcast
// (rows of K, ldk apart), query rows in vectors.
template <int NV>
void micro_qk(const float* k, int64_t ldk, const float* qt, int64_t d, float* st, int64_t ld) {
  V acc[kKeys][NV];
  QWEN3VL_UNROLL
  for (int a = 0; a < kKeys; ++a) {
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) acc[a][v] = Simd::zero();
  }
  for (int64_t x = 0; x < d; ++x, ++k, qt += kRows) {
    V q[NV];
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) q[v] = Simd::load(qt + v * kW);
    QWEN3VL_UNROLL
    for (int a = 0; a < kKeys; ++a) {
      const V kb = Simd::broadcast(k + a * ldk);
      QWEN3VL_UNROLL
      for (int v = 0; v < NV; ++v) acc[a][v] = Simd::fma(kb, q[v], acc[a][v]);
    }
  }
  QWEN3VL_UNROLL
  for (int a = 0; a < kKeys; ++a) {
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) Simd::store(st + a * ld + v * kW, acc[a][v]);
  }
}

// O^T[kCols x NV vectors] = O^T (* alpha if kRescale) + V^T[kCols x kn] P^T[kn x NV vectors], V
// rows ldv apart. The old O^T joins after the loop: accumulators that start from memory make GCC
// spill them on every iteration.
template <bool kRescale, int NV>
void micro_pv(const float* pt, int64_t ld, const float* vp, int64_t ldv, int64_t kn, float* ot,
              const float* alpha) {
  V acc[kCols][NV];
  QWEN3VL_UNROLL
  for (int c = 0; c < kCols; ++c) {
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) acc[c][v] = Simd::zero();
  }
  for (int64_t j = 0; j < kn; ++j, pt += ld, vp += ldv) {
    V p[NV];
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) p[v] = Simd::load(pt + v * kW);
    QWEN3VL_UNROLL
    for (int c = 0; c < kCols; ++c) {
      const V vb = Simd::broadcast(vp + c);
      QWEN3VL_UNROLL
      for (int v = 0; v < NV; ++v) acc[c][v] = Simd::fma(vb, p[v], acc[c][v]);
    }
  }
  QWEN3VL_UNROLL
  for (int c = 0; c < kCols; ++c) {
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) {
      float* o = ot + c * kRows + v * kW;
      const V old = Simd::load(o);
      Simd::store(o, kRescale ? Simd::fma(old, Simd::load(alpha + v * kW), acc[c][v])
                              : Simd::add(old, acc[c][v]));
    }
  }
}

// --- one K/V block --------------------------------------------------------------------------

void scores(const Geometry& g, int64_t kn, const Scratch& w) {
  const int64_t kn_pad = round_up(kn, kKeys);
  for (int64_t rp = 0; rp < g.rows_pad; rp += kRows)
    with_panel_vecs(panel_vecs(g, rp), [&](auto nv) {
      for (int64_t j = 0; j < kn_pad; j += kKeys)
        micro_qk<decltype(nv)::value>(w.kp + j * g.d, g.d, w.qt + rp * g.d, g.d,
                                      w.st + j * g.rows_pad + rp, g.rows_pad);
    });
}

// s = cap * tanh(s / cap), then to log2 units (Q carried only the scale).
void apply_softcap(const Geometry& g, int64_t kn, float cap, const Scratch& w) {
  const V inv = Simd::set1(1.0f / cap), outer = Simd::set1(cap * kLog2e);
  for (int64_t j = 0; j < kn; ++j)
    for (int64_t r = 0; r < g.rows; r += kW) {  // vectors of task rows (panel kernels read those)
      float* s = w.st + j * g.rows_pad + r;
      Simd::store(s, Simd::mul(vmath::tanh(Simd::mul(Simd::load(s), inv)), outer));
    }
}

// Causal / window / padding: key k0 + j is seen by positions [lo, hi) of the tile, where lo counts
// the rows whose range ends at or before the key and hi those whose range begins at or before it
// (both bounds are non-decreasing in the row). Every other row gets -inf (assigned, so NaN scores
// of hidden keys vanish).
void mask_structural(const Flash2Task& t, const Geometry& g, int64_t k0, int64_t kn,
                     const Scratch& w) {
  const int64_t nq = t.q_end - t.q_begin, group = t.heads;
  int64_t lo = 0, hi = 0;
  for (int64_t j = 0; j < kn; ++j) {
    const int64_t key = k0 + j;
    while (lo < nq && t.rows[lo].end <= key) ++lo;
    while (hi < nq && t.rows[hi].begin <= key) ++hi;
    float* s = w.st + j * g.rows_pad;
    const int64_t first = lo * group, last = (hi > lo ? hi : lo) * group;
    fill(s, first, kNegInf);
    fill(s + last, g.rows_pad - last, kNegInf);
  }
}

// Offset of additive_mask[b, h, i, j] with size-1 dimensions broadcast.
int64_t mask_offset(const TensorView& m, int64_t b, int64_t h, int64_t i, int64_t j) {
  const int64_t idx[4] = {b, h, i, j};
  int64_t off = 0;
  for (int d = 0; d < m.rank; ++d) off += (m.shape[d] == 1 ? 0 : idx[4 - m.rank + d]) * m.stride[d];
  return off;
}

template <class M>
void add_mask(const Flash2Task& t, const Geometry& g, int64_t rows, int64_t k0, int64_t kn,
              const Scratch& w) {
  const TensorView& mv = t.params->additive_mask;  // problem rows only (never gathered)
  const int64_t group = t.heads;
  const int64_t step = mv.shape[mv.rank - 1] == 1 ? 0 : mv.stride[mv.rank - 1];
  for (int64_t r = 0; r < rows; ++r) {
    const M* src = static_cast<const M*>(mv.data) +
                   mask_offset(mv, t.b, t.head + r % group, t.q_begin + r / group, k0);
    float* s = w.st + r;
    for (int64_t j = 0; j < kn; ++j) {
      const float add = Simd::load_one(src + j * step);
      float& x = s[j * g.rows_pad];
      x = add == kNegInf ? kNegInf : x + add * kLog2e;
    }
  }
}

void mark_live(const Geometry& g, int64_t rows, int64_t kn, const Scratch& w) {
  for (int64_t j = 0; j < kn; ++j) {
    const float* s = w.st + j * g.rows_pad;
    int64_t r = 0;
    while (r < rows && s[r] == kNegInf) ++r;
    w.live[j] = r < rows ? kLive : kDead;
  }
}

// Block max, new running max, rescale factors, P = exp2(S - max) and the running sums of the
// panel at tile row rp (its first NV vectors).
template <int NV>
void softmax_panel(const Geometry& g, int64_t kn, int64_t rp, const Scratch& w) {
  V top[NV];
  QWEN3VL_UNROLL
  for (int v = 0; v < NV; ++v) top[v] = Simd::set1(kNegInf);
  for (int64_t j = 0; j < kn; ++j) {
    const float* s = w.st + j * g.rows_pad + rp;
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) top[v] = Simd::max(top[v], Simd::load(s + v * kW));
  }
  bool moved = false;
  V base[NV], alpha[NV], sum[NV];
  QWEN3VL_UNROLL
  for (int v = 0; v < NV; ++v) {
    const int64_t r = rp + v * kW;
    const V old = Simd::load(w.m + r);
    const V now = Simd::max(old, top[v]);
    moved = moved || !Simd::all(Simd::eq(old, now));
    // A row that has seen no key yet keeps max -inf; subtract 0 so exp2 gives 0, never NaN.
    base[v] = Simd::select(Simd::eq(now, Simd::set1(kNegInf)), Simd::zero(), now);
    alpha[v] = vmath::exp2_nonpositive(Simd::sub(old, base[v]));
    Simd::store(w.m + r, now);
    Simd::store(w.alpha + r, alpha[v]);
    sum[v] = Simd::zero();
  }
  for (int64_t j = 0; j < kn; ++j) {
    float* s = w.st + j * g.rows_pad + rp;
    QWEN3VL_UNROLL
    for (int v = 0; v < NV; ++v) {
      const V p = vmath::exp2_nonpositive(Simd::sub(Simd::load(s + v * kW), base[v]));
      Simd::store(s + v * kW, p);
      sum[v] = Simd::add(sum[v], p);
    }
  }
  QWEN3VL_UNROLL
  for (int v = 0; v < NV; ++v) {
    float* l = w.l + rp + v * kW;
    Simd::store(l, Simd::fma(Simd::load(l), alpha[v], sum[v]));
  }
  w.rescale[rp / kRows] = moved;
}

void softmax_block(const Geometry& g, int64_t kn, const Scratch& w) {
  for (int64_t rp = 0; rp < g.rows_pad; rp += kRows)
    with_panel_vecs(panel_vecs(g, rp),
                    [&](auto nv) { softmax_panel<decltype(nv)::value>(g, kn, rp, w); });
}

void accumulate(const Geometry& g, int64_t kn, const Scratch& w) {
  for (int64_t rp = 0; rp < g.rows_pad; rp += kRows)
    with_panel_vecs(panel_vecs(g, rp), [&](auto nv) {
      constexpr int kNv = decltype(nv)::value;
      const auto kernel = w.rescale[rp / kRows] ? &micro_pv<true, kNv> : &micro_pv<false, kNv>;
      float* ot = w.ot + rp * g.dim_pad;
      for (int64_t c = 0; c < g.dim_pad; c += kCols)
        kernel(w.st + rp, g.rows_pad, w.vp + c, g.dim_pad, kn, ot + c * kRows, w.alpha + rp);
    });
}

// Additive mask value [b, h, i, j] as float.
float mask_value(const TensorView& mv, int64_t b, int64_t h, int64_t i, int64_t j) {
  const int64_t off = mask_offset(mv, b, h, i, j);
  switch (mv.dtype) {
    case DType::kF16: return Simd::load_one(static_cast<const half*>(mv.data) + off);
    case DType::kBF16: return Simd::load_one(static_cast<const bfloat16*>(mv.data) + off);
    default: return static_cast<const float*>(mv.data)[off];
  }
}

// O^T += p v for the keys pack_v left out (kLiveNonFinite), over the rows that see them only: the
// structural range of the row's position and, with an additive mask, an entry other than -inf.
// Runs after accumulate(), so O^T is already rescaled to this block's max, as p is.
template <class T>
void add_non_finite(const Flash2Task& t, const Geometry& g, int64_t rows, int64_t k0, int64_t kn,
                    const Scratch& w) {
  const TensorView& mv = t.params->additive_mask;
  const int64_t group = t.heads;
  for (int64_t j = 0; j < kn; ++j) {
    if (w.live[j] != kLiveNonFinite) continue;
    const int64_t key = k0 + j;
    load_kv_rows<T>(t, true, key, 1, g.d, w.row, g.d, nullptr);
    for (int64_t r = 0; r < rows; ++r) {
      const KeyRange& range = t.rows[r / group];
      if (key < range.begin || key >= range.end) continue;
      if (mv.rank > 0 &&
          mask_value(mv, t.b, t.head + r % group, t.q_begin + r / group, key) == kNegInf)
        continue;
      const float p = w.st[j * g.rows_pad + r];
      float* o = w.ot + (r / kRows) * g.dim_pad * kRows + r % kRows;
      for (int64_t c = 0; c < g.d; ++c) o[c * kRows] += p * w.row[c];
    }
  }
}

// --- the task ---------------------------------------------------------------------------------

// out = O / l once at the end (gathered rows: gate x O / l); LSE in natural log. Rows that saw no
// key get 0 and -inf.
template <class T>
void finish(const Flash2Task& t, const Geometry& g, int64_t rows, const Scratch& w) {
  const AttentionParams& p = *t.params;
  const int64_t group = t.heads;
  const Flash2GatheredRows* gathered = t.gathered;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = t.q_begin + r / group, h = t.head + r % group, i = sequence_row(t, j);
    const float scale = gathered ? gathered->gate[h * gathered->rows + j] : 1.0f;
    const float sum = w.l[r];
    const bool empty = sum == 0.0f;  // NaN (the row saw a NaN) is not empty: it stays NaN
    const float inv = empty ? 0.0f : scale / sum;
    const float* src = w.ot + (r / kRows) * g.dim_pad * kRows + r % kRows;
    for (int64_t c = 0; c < g.d; ++c) w.row[c] = src[c * kRows] * inv;
    if (t.partial_o) {
      const int64_t at = (t.span.q_start + i) * t.shape.heads + h;
      for (int64_t c = 0; c < g.d; ++c) t.partial_o[at * g.d + c] = w.row[c];
      t.partial_lse[at] = empty ? kNegInf : (w.m[r] + log2f(sum)) * kLn2;
      continue;
    }
    store_row(w.row, g.d, const_cast<T*>(row_ptr<T>(p.out, t, t.span.q_start, i, h)));
    if (p.lse.rank > 0) {
      const TensorView& lse = p.lse;
      const int64_t off = t.shape.varlen
                              ? h * lse.stride[0] + (t.span.q_start + i) * lse.stride[1]
                              : t.b * lse.stride[0] + h * lse.stride[1] + i * lse.stride[2];
      static_cast<float*>(lse.data)[off] = empty ? kNegInf : (w.m[r] + log2f(sum)) * kLn2;
    }
  }
}

template <class T>
void run(const Flash2Task& t) {
  const AttentionParams& p = *t.params;
  Geometry g = plan_geometry(t.shape, t.plan);
  Scratch w;
  layout(g, static_cast<char*>(t.scratch), &w);
  const int64_t nq = t.q_end - t.q_begin;
  const int64_t rows = nq * t.heads;
  g.rows_pad = round_up(rows, kRows);  // a short last block computes only the panels it needs
  g.rows = rows;

  // Keys every row sees, [all_lo, all_hi): blocks inside it skip the structural mask.
  int64_t all_lo = 0, all_hi = std::numeric_limits<int64_t>::max();
  for (int64_t i = 0; i < nq; ++i) {
    const KeyRange& r = t.rows[i];
    all_lo = r.begin > all_lo ? r.begin : all_lo;
    all_hi = r.end < all_hi ? r.end : all_hi;
  }

  const bool softcap = p.softcap > 0.0f;
  const bool additive = p.additive_mask.rank > 0;
  pack_q<T>(t, g, rows, softcap ? t.shape.scale : t.shape.scale * kLog2e, w);
  fill(w.ot, g.rows_pad * g.dim_pad, 0.0f);
  fill(w.m, g.rows_pad, kNegInf);
  fill(w.l, g.rows_pad, 0.0f);

  // The K/V loop walks the task's key intervals (one for dense attention) in block_k steps.
  for (int64_t iv = 0; iv < t.interval_count; ++iv) {
    const int64_t hi = t.intervals[iv].end;
    for (int64_t k0 = t.intervals[iv].begin; k0 < hi; k0 += g.block_k) {
      const int64_t kn = hi - k0 < g.block_k ? hi - k0 : g.block_k;
      const bool full = k0 >= all_lo && k0 + kn <= all_hi;
      bool seen = full;
      for (int64_t i = 0; i < nq && !seen; ++i)
        seen = t.rows[i].begin < k0 + kn && t.rows[i].end > k0;
      if (!seen) continue;  // the mask hides the whole block

      // K and V are always copied into contiguous fp32 rows, fp32 too: read in place, their rows
      // (a page apart in BSHD) made the whole kernel about 7% slower.
      if (t.cache) {  // this block's V (read after the scores), the next block's K
        prefetch_kv_rows(t, true, k0, kn, g.d);
        if (k0 + kn < hi)
          prefetch_kv_rows(t, false, k0 + kn, hi - k0 - kn < kn ? hi - k0 - kn : kn, g.d);
      }
      pack_k<T>(t, g, k0, kn, w);
      scores(g, kn, w);
      if (softcap) apply_softcap(g, kn, p.softcap, w);
      if (!full) mask_structural(t, g, k0, kn, w);
      if (additive) {
        switch (p.additive_mask.dtype) {
          case DType::kF16: add_mask<half>(t, g, rows, k0, kn, w); break;
          case DType::kBF16: add_mask<bfloat16>(t, g, rows, k0, kn, w); break;
          default: add_mask<float>(t, g, rows, k0, kn, w); break;
        }
      }
      const bool partial = !full || additive;
      if (partial)
        mark_live(g, rows, kn, w);
      else
        std::memset(w.live, kLive, static_cast<size_t>(kn));
      softmax_block(g, kn, w);
      pack_v<T>(t, g, k0, kn, partial, w);
      accumulate(g, kn, w);
      if (partial) add_non_finite<T>(t, g, rows, k0, kn, w);
    }
  }
  finish<T>(t, g, rows, w);
}

}  // namespace

void flash2_plan(const AttentionShape& s, int64_t cache_bytes, Flash2Plan* plan) {
  // More tile rows read each K/V block for more queries (K/V come from L3 at long N), but Q^T and
  // O^T grow with them and must stay in L2: take the most rows, up to kMaxTileRows, whose scratch
  // fits in 3/4 of the L2 (the rest holds the K/V lines in flight). Unknown L2: kTileRows.
  const int64_t group = s.heads / s.kv_heads;
  const int64_t positions = s.max_q < 1 ? 1 : s.max_q;
  plan->block_k = s.head_dim > 128 ? 32 : 64;
  const auto fit = [&](int64_t rows) {
    int64_t block_q = rows / group;
    block_q = block_q < 1 ? 1 : (block_q > positions ? positions : block_q);
    plan->block_q = block_q;
    plan->scratch_bytes = layout(plan_geometry(s, *plan), nullptr, nullptr);
  };
  fit(Simd::kTileRows);
  if (cache_bytes > 0)
    for (int64_t rows = kRows; rows <= Simd::kMaxTileRows; rows += kRows) {
      const Flash2Plan before = *plan;
      fit(rows);
      if (rows > kRows && static_cast<int64_t>(plan->scratch_bytes) > cache_bytes / 4 * 3) {
        *plan = before;
        break;
      }
    }
  plan->register_keys = kKeys;
  plan->register_rows = static_cast<int>(kRows);
}

void flash2_tile(const Flash2Task& task) {
  switch (task.params->q.dtype) {
    case DType::kF16: run<half>(task); break;
    case DType::kBF16: run<bfloat16>(task); break;
    default: run<float>(task); break;
  }
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS

namespace qwen3vl::detail {
QWEN3VL_DEFINE_ISA_TABLE(Flash2Kernels, &cpu::QWEN3VL_ISA_NS::flash2_plan,
                         &cpu::QWEN3VL_ISA_NS::flash2_tile)
}  // namespace qwen3vl::detail
