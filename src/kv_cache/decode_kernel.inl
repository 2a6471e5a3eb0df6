// The CPU decode kernel for one task, compiled once per ISA (decode_<isa>.cpp defines
// QWEN3VL_ISA_NS and includes this file). Per chunk of up to kDecodeChunk keys (within one block
// when paged): S = Q K^T for the G * R packed query rows of every KV head of the task (each K row
// is converted once and used by all rows of its group), the causal mask of the new rows, an
// online base-2 softmax per row, then O += P V. Scores are pre-scaled by scale * log2(e), so exp2
// is the only exponential. Keys past the sequence length are never read.
//
// Both passes walk the cache in address order (key by key, every head of a key in turn): the rows
// of one head are Hkv * D elements apart, and reading them head by head defeats the hardware
// prefetchers (measured: half the bandwidth on Zen 4), so the running outputs of all heads stay in
// L1 instead of registers.
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cmath>
#include <limits>
#include <type_traits>

#include "decode_kernels.hpp"

namespace qwen3vl::detail::decode::QWEN3VL_ISA_NS {
namespace {

#include "simd.inl"

constexpr int kRowTile = 4;  // query rows sharing each converted K / V vector
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// s[r * s_stride] = q[r] . k for kRows rows and one key.
template <int kRows, class T>
inline void qk_key(const float* q, int64_t q_stride, const T* k, int64_t d, float* s,
                   int64_t s_stride) {
  const int64_t dv = d / kLanes * kLanes;
  Vec acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = vzero();
  for (int64_t c = 0; c < dv; c += kLanes) {
    const Vec x = vload(k + c);
    for (int r = 0; r < kRows; ++r) acc[r] = vfma(vload(q + r * q_stride + c), x, acc[r]);
  }
  for (int r = 0; r < kRows; ++r) {
    float sum = vsum(acc[r]);
    for (int64_t c = dv; c < d; ++c) sum += q[r * q_stride + c] * to_float(k[c]);
    s[r * s_stride] = sum;
  }
}

// o[r] += p[r * p_stride] * v for kRows rows and one key.
template <int kRows, class T>
inline void pv_key(const float* p, int64_t p_stride, const T* v, int64_t d, float* o,
                   int64_t o_stride) {
  const int64_t dv = d / kLanes * kLanes;
  Vec w[kRows];
  for (int r = 0; r < kRows; ++r) w[r] = vset1(p[r * p_stride]);
  for (int64_t c = 0; c < dv; c += kLanes) {
    const Vec x = vload(v + c);
    for (int r = 0; r < kRows; ++r) {
      float* dst = o + r * o_stride + c;
      vstore(dst, vfma(w[r], x, vload(dst)));
    }
  }
  for (int64_t c = dv; c < d; ++c) {
    const float x = to_float(v[c]);
    for (int r = 0; r < kRows; ++r) o[r * o_stride + c] += p[r * p_stride] * x;
  }
}

// Calls f(std::integral_constant<int, rows>{}, first_row) over row tiles of at most kRowTile.
template <class F>
inline void for_row_tiles(int64_t rows, F&& f) {
  int64_t i = 0;
  for (; i + kRowTile <= rows; i += kRowTile) f(std::integral_constant<int, kRowTile>{}, i);
  switch (rows - i) {
    case 1: f(std::integral_constant<int, 1>{}, i); break;
    case 2: f(std::integral_constant<int, 2>{}, i); break;
    case 3: f(std::integral_constant<int, 3>{}, i); break;
    default: break;
  }
}

// The running state of one KV head's G * R query rows.
struct HeadState {
  float* q;  // [rows][dp], pre-scaled by scale * log2(e), zero padded
  float* o;  // [rows][dp], unnormalised
  float* m;  // [rows], running max (base 2)
  float* l;  // [rows], running sum
  float* s;  // [rows][kDecodeChunk], the chunk's scores, then its weights
};

// Masks row i's scores of the chunk (keys >= end, relative to the chunk, are invisible), folds
// them into the running max and sum, rescales the row's output and leaves the weights in s.
inline void softmax_row(float* s, int64_t n, int64_t end, float* m, float* l, float* o,
                        int64_t dp) {
  const int64_t n_padded = (n + kLanes - 1) / kLanes * kLanes;
  for (int64_t j = end < 0 ? 0 : end; j < n_padded; ++j) s[j] = kNegInf;
  for (int64_t j = n; j < n_padded; ++j) s[j] = kNegInf;
  Vec mx = vset1(kNegInf);
  for (int64_t j = 0; j < n_padded; j += kLanes) mx = vmax(mx, vload(s + j));
  const float chunk_max = vmaxall(mx);
  if (chunk_max == kNegInf) {  // nothing visible in this chunk: weights 0
    for (int64_t j = 0; j < n_padded; ++j) s[j] = 0.0f;
    return;
  }
  const float m_new = chunk_max > *m ? chunk_max : *m;
  const float alpha = std::exp2(*m - m_new);  // 0 on the row's first visible chunk
  Vec sum = vzero();
  const Vec mv = vset1(m_new);
  for (int64_t j = 0; j < n_padded; j += kLanes) {
    const Vec e = vexp2(vsub(vload(s + j), mv));
    vstore(s + j, e);
    sum = vadd(sum, e);
  }
  *l = *l * alpha + vsum(sum);
  *m = m_new;
  if (alpha != 1.0f) {
    const Vec av = vset1(alpha);
    for (int64_t c = 0; c < dp; c += kLanes) vstore(o + c, vmul(vload(o + c), av));
  }
}

template <class T>
void run(const DecodeTask& t) {
  const DecodeParams& p = *t.params;
  const DecodeShape& s = t.shape;
  const int64_t d = s.head_dim, dp = decode_padded_dim(d), g_size = s.group_size();
  const int64_t rows = g_size * s.rows, heads = t.kv_head_end - t.kv_head_begin;
  const float q_scale = s.scale * 1.4426950408889634f;

  float* base = static_cast<float*>(t.scratch);
  auto state = [&](int64_t h) {
    float* q = base + h * rows * (2 * dp + 2 + kDecodeChunk);
    float* o = q + rows * dp;
    return HeadState{q, o, o + rows * dp, o + rows * dp + rows, o + rows * dp + 2 * rows};
  };

  // Query row i of a head is (group member i / R, new row i % R); row r sees keys < end(r).
  auto visible_end = [&](int64_t i) { return t.seq_len - s.rows + i % s.rows + 1; };
  for (int64_t h = 0; h < heads; ++h) {
    const HeadState st = state(h);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t qh = (t.kv_head_begin + h) * g_size + i / s.rows;
      const int64_t off = p.q.offset(t.b, i % s.rows, qh);
      for (int64_t c = 0; c < d; ++c) st.q[i * dp + c] = load_float(p.q, off + c) * q_scale;
      for (int64_t c = d; c < dp; ++c) st.q[i * dp + c] = 0.0f;
      for (int64_t c = 0; c < dp; ++c) st.o[i * dp + c] = 0.0f;
      st.m[i] = kNegInf;
      st.l[i] = 0.0f;
    }
  }

  const TensorView& kv_k = p.kv.k;
  const TensorView& kv_v = p.kv.v;
  const bool paged = p.kv.layout == KvLayout::kPaged;
  const PagedIndexer pager = paged ? paged_indexer(p.kv) : PagedIndexer{};
  for (int64_t j0 = t.key_begin; j0 < t.key_end;) {
    int64_t n = t.key_end - j0 < kDecodeChunk ? t.key_end - j0 : kDecodeChunk;
    if (paged) n = pager.run(j0, n);
    const KvSlot slot = paged ? pager.slot(t.b, j0) : KvSlot{t.b, j0};
    const T* k0 = kv_k.ptr<const T>() + kv_k.offset(slot.major, slot.minor, t.kv_head_begin);
    const T* v0 = kv_v.ptr<const T>() + kv_v.offset(slot.major, slot.minor, t.kv_head_begin);

    for (int64_t j = 0; j < n; ++j)
      for (int64_t h = 0; h < heads; ++h) {
        const HeadState st = state(h);
        const T* k = k0 + j * kv_k.stride[1] + h * kv_k.stride[2];
        for_row_tiles(rows, [&](auto tile, int64_t i) {
          qk_key<decltype(tile)::value>(st.q + i * dp, dp, k, d, st.s + i * kDecodeChunk + j,
                                        kDecodeChunk);
        });
      }
    for (int64_t h = 0; h < heads; ++h) {
      const HeadState st = state(h);
      for (int64_t i = 0; i < rows; ++i)
        softmax_row(st.s + i * kDecodeChunk, n, visible_end(i) - j0, st.m + i, st.l + i,
                    st.o + i * dp, dp);
    }
    for (int64_t j = 0; j < n; ++j)
      for (int64_t h = 0; h < heads; ++h) {
        const HeadState st = state(h);
        const T* v = v0 + j * kv_v.stride[1] + h * kv_v.stride[2];
        for_row_tiles(rows, [&](auto tile, int64_t i) {
          pv_key<decltype(tile)::value>(st.s + i * kDecodeChunk + j, kDecodeChunk, v, d,
                                        st.o + i * dp, dp);
        });
      }
    j0 += n;
  }

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
