// The CPU decode kernel for one task, compiled once per ISA (decode_<isa>.cpp defines
// QWEN3VL_ISA_NS and includes this file). Scores are pre-scaled by scale * log2(e), so exp2 is the
// only exponential. Keys past the sequence length are never read.
//
// Per chunk of up to kDecodeChunk keys (within one block when paged), two kinds of work:
//  A. In address order (key by key, every head of a key in turn): S = Q K^T for the packed G * R
//     query rows of each head (each K row converted once, four rows per tile, the four dot
//     products reduced together) and a prefetch of the V rows. The rows of one head are Hkv * D
//     elements apart; reading them from DRAM head by head defeats the hardware prefetchers
//     (measured: half the bandwidth on Zen 4), so A touches every V row in address order.
//  B. Per head: the causal mask of the new rows, an online base-2 softmax per row, then O += P V
//     straight from the cached V rows (in L1/L2 since A) with the outputs of four rows held in
//     registers across the chunk. (A copy of V into a head-major scratch during A cost 14-16% more
//     CPU time per byte, 1 thread, Zen 4.)
// B of one chunk is spread between the keys of A of the next (two sets of score buffers),
// so the cache keeps streaming: pausing the reads for a whole pass B cost as much again.
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cmath>
#include <limits>

#include "decode_kernels.hpp"

namespace qwen3vl::detail::decode::QWEN3VL_ISA_NS {
namespace {

#include "simd.inl"

constexpr int kTile = kDecodeRowTile;  // query rows sharing each converted K / V vector
constexpr int64_t kChunk = kDecodeChunk;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
static_assert(kLanes % kTile == 0, "a vector holds whole [key][4 rows] score groups");

// out[r] = q[r] . k for the four rows of a tile and one key. Two vectors of the head dimension per
// step give eight independent FMA chains (four would wait on the FMA latency).
template <class T>
inline void qk_key(const float* q, int64_t q_stride, const T* k, int64_t d, float* out) {
  const int64_t dv = d / kLanes * kLanes;
  Vec a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
  Vec b0 = vzero(), b1 = vzero(), b2 = vzero(), b3 = vzero();
  int64_t c = 0;
  for (; c + 2 * kLanes <= dv; c += 2 * kLanes) {
    const Vec x = vload(k + c), y = vload(k + c + kLanes);
    a0 = vfma(vload(q + c), x, a0);
    a1 = vfma(vload(q + q_stride + c), x, a1);
    a2 = vfma(vload(q + 2 * q_stride + c), x, a2);
    a3 = vfma(vload(q + 3 * q_stride + c), x, a3);
    b0 = vfma(vload(q + c + kLanes), y, b0);
    b1 = vfma(vload(q + q_stride + c + kLanes), y, b1);
    b2 = vfma(vload(q + 2 * q_stride + c + kLanes), y, b2);
    b3 = vfma(vload(q + 3 * q_stride + c + kLanes), y, b3);
  }
  for (; c < dv; c += kLanes) {
    const Vec x = vload(k + c);
    a0 = vfma(vload(q + c), x, a0);
    a1 = vfma(vload(q + q_stride + c), x, a1);
    a2 = vfma(vload(q + 2 * q_stride + c), x, a2);
    a3 = vfma(vload(q + 3 * q_stride + c), x, a3);
  }
  vreduce4(vadd(a0, b0), vadd(a1, b1), vadd(a2, b2), vadd(a3, b3), out);
  for (; c < d; ++c) {
    const float x = to_float(k[c]);
    for (int r = 0; r < kTile; ++r) out[r] += q[r * q_stride + c] * x;
  }
}

// o[r] += sum_j p[j][r] v[j] for the four rows of a tile over n keys (p laid out [key][4 rows]).
template <class T>
inline void pv_chunk(const float* p, const T* v, int64_t v_stride, int64_t n, int64_t d, float* o,
                     int64_t o_stride) {
  const int64_t dv = d / kLanes * kLanes;
  int64_t c = 0;
  for (; c + 2 * kLanes <= dv; c += 2 * kLanes) {
    Vec a[kTile][2];
    for (int r = 0; r < kTile; ++r) {
      a[r][0] = vload(o + r * o_stride + c);
      a[r][1] = vload(o + r * o_stride + c + kLanes);
    }
    for (int64_t j = 0; j < n; ++j) {
      const T* vj = v + j * v_stride + c;
      const Vec x0 = vload(vj), x1 = vload(vj + kLanes);
      for (int r = 0; r < kTile; ++r) {
        const Vec w = vset1(p[j * kTile + r]);
        a[r][0] = vfma(w, x0, a[r][0]);
        a[r][1] = vfma(w, x1, a[r][1]);
      }
    }
    for (int r = 0; r < kTile; ++r) {
      vstore(o + r * o_stride + c, a[r][0]);
      vstore(o + r * o_stride + c + kLanes, a[r][1]);
    }
  }
  for (; c < dv; c += kLanes) {
    Vec a[kTile];
    for (int r = 0; r < kTile; ++r) a[r] = vload(o + r * o_stride + c);
    for (int64_t j = 0; j < n; ++j) {
      const Vec x = vload(v + j * v_stride + c);
      for (int r = 0; r < kTile; ++r) a[r] = vfma(vset1(p[j * kTile + r]), x, a[r]);
    }
    for (int r = 0; r < kTile; ++r) vstore(o + r * o_stride + c, a[r]);
  }
  for (; c < d; ++c)
    for (int64_t j = 0; j < n; ++j) {
      const float x = to_float(v[j * v_stride + c]);
      for (int r = 0; r < kTile; ++r) o[r * o_stride + c] += p[j * kTile + r] * x;
    }
}

// Softmax step for one tile over a chunk: s holds n keys' scores as [key][4 rows] (padded to whole
// vectors), ends[r] = keys of the chunk row r sees. Folds them into the running max / sum, rescales
// the rows' outputs and leaves the weights in s.
inline void softmax_tile(float* s, int64_t n, const int64_t* ends, float* m, float* l, float* o,
                         int64_t dp) {
  const int64_t used = n * kTile, padded = (used + kLanes - 1) / kLanes * kLanes;
  for (int64_t j = 0; j < n; ++j)
    for (int r = 0; r < kTile; ++r)
      if (j >= ends[r]) s[j * kTile + r] = kNegInf;
  for (int64_t i = used; i < padded; ++i) s[i] = kNegInf;
  float mx[kTile] = {kNegInf, kNegInf, kNegInf, kNegInf};
  for (int64_t j = 0; j < n; ++j)
    for (int r = 0; r < kTile; ++r) mx[r] = s[j * kTile + r] > mx[r] ? s[j * kTile + r] : mx[r];
  alignas(64) float shift[kLanes];
  float alpha[kTile];
  for (int r = 0; r < kTile; ++r) {
    const float m_new = mx[r] > m[r] ? mx[r] : m[r];
    alpha[r] = m_new == kNegInf ? 1.0f : std::exp2(m[r] - m_new);  // 0 on the first visible chunk
    m[r] = m_new;
    for (int i = r; i < kLanes; i += kTile) shift[i] = m_new == kNegInf ? 0.0f : m_new;
  }
  const Vec sv = vload(shift);
  Vec sum = vzero();
  for (int64_t i = 0; i < padded; i += kLanes) {
    const Vec e = vexp2(vsub(vload(s + i), sv));
    vstore(s + i, e);
    sum = vadd(sum, e);
  }
  alignas(64) float sums[kLanes];
  vstore(sums, sum);
  for (int r = 0; r < kTile; ++r) {
    float row_sum = 0.0f;
    for (int i = r; i < kLanes; i += kTile) row_sum += sums[i];
    l[r] = l[r] * alpha[r] + row_sum;
    if (alpha[r] != 1.0f) {
      const Vec av = vset1(alpha[r]);
      for (int64_t c = 0; c < dp; c += kLanes) vstore(o + r * dp + c, vmul(vload(o + r * dp + c), av));
    }
  }
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
  for (int64_t h = 0; h < heads; ++h) {
    const HeadState st = state(h);
    for (int64_t i = 0; i < padded_rows; ++i) {
      for (int64_t c = 0; c < dp; ++c) st.q[i * dp + c] = st.o[i * dp + c] = 0.0f;
      st.m[i] = kNegInf;
      st.l[i] = 0.0f;
      if (i >= rows) continue;
      const int64_t qh = (t.kv_head_begin + h) * g_size + i / s.rows;
      const int64_t off = p.q.offset(t.b, i % s.rows, qh);
      for (int64_t c = 0; c < d; ++c) st.q[i * dp + c] = load_float(p.q, off + c) * q_scale;
    }
  }

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
      softmax_tile(sc, c.n, ends, st.m + tile * kTile, st.l + tile * kTile, o, dp);
      pv_chunk(sc, c.v0 + h * kv_v.stride[2], kv_v.stride[1], c.n, d, o, dp);
    }
  };

  Chunk pending;           // the chunk whose B is spread over this chunk's A
  int64_t pending_head = heads;  // its next head to finish (heads: none left)
  for (int64_t j0 = t.key_begin, buffer = 0; j0 < t.key_end; buffer ^= 1) {
    int64_t n = t.key_end - j0 < kChunk ? t.key_end - j0 : kChunk;
    if (paged) n = pager.run(j0, n);
    const KvSlot slot = paged ? pager.slot(t.b, j0) : KvSlot{t.b, j0};
    const T* k0 = kv_k.ptr<const T>() + kv_k.offset(slot.major, slot.minor, t.kv_head_begin);
    const T* v0 = kv_v.ptr<const T>() + kv_v.offset(slot.major, slot.minor, t.kv_head_begin);
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t h = 0; h < heads; ++h) {  // A, in address order
        const HeadState st = state(h);
        const T* k = k0 + j * kv_k.stride[1] + h * kv_k.stride[2];
        float* sc = st.s + buffer * score_buffer + j * kTile;
        for (int64_t tile = 0; tile < tiles; ++tile)
          qk_key(st.q + tile * kTile * dp, dp, k, d, sc + tile * kChunk * kTile);
        // V: only fetched here, in address order, and read from the cache (L1/L2) by B.
        const char* v_row = reinterpret_cast<const char*>(v0 + j * kv_v.stride[1] + h * kv_v.stride[2]);
        for (size_t at = 0; at < row_bytes; at += 64) __builtin_prefetch(v_row + at, 0, 3);
      }
      // The previous chunk's heads, evenly spread over this chunk's keys.
      for (const int64_t due = ((j + 1) * heads + n - 1) / n; pending_head < due; ++pending_head)
        finish_head(pending, pending_head);
    }
    for (; pending_head < heads; ++pending_head) finish_head(pending, pending_head);
    pending = Chunk{j0, n, buffer, v0};
    pending_head = 0;
    j0 += n;
  }
  for (; pending_head < heads; ++pending_head) finish_head(pending, pending_head);

  // Normalise; rows that saw no key give 0 and LSE -inf.
  for (int64_t h = 0; h < heads; ++h) {
    const HeadState st = state(h);
    const int64_t kvh = t.kv_head_begin + h;
    for (int64_t i = 0; i < rows; ++i) {
      const bool empty = !(st.l[i] > 0.0f);
      const float inv = empty ? 0.0f : 1.0f / st.l[i];
      const float lse = empty ? kNegInf : (st.m[i] + std::log2(st.l[i])) * 0.6931471805599453f;
      const float* o = st.o + i * dp;
      if (t.partial_o) {
        float* dst = t.partial_o + (kvh * rows + i) * d;
        for (int64_t c = 0; c < d; ++c) dst[c] = o[c] * inv;
        t.partial_lse[kvh * rows + i] = lse;
        continue;
      }
      const int64_t qh = kvh * g_size + i / s.rows, r = i % s.rows;
      const int64_t off = p.out.offset(t.b, r, qh);
      for (int64_t c = 0; c < d; ++c) store_float(p.out, off + c, o[c] * inv);
      if (p.lse.present()) p.lse.ptr<float>()[p.lse.offset(t.b, qh, r)] = lse;
    }
  }
}

}  // namespace

void run_task(const DecodeTask& task) {
  dispatch_float_dtype(task.params->kv.k.dtype, [&](auto tag) { run<decltype(tag)>(task); });
}

}  // namespace qwen3vl::detail::decode::QWEN3VL_ISA_NS
