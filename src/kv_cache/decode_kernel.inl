// The CPU decode kernel for one task, compiled once per ISA (decode_<isa>.cpp defines
// QWEN3VL_ISA_NS and includes this file). For each chunk of up to kDecodeChunk contiguous keys and
// each KV head of the task: S = Q K^T over the head's G * R packed query rows (each K row is
// converted once and used by every row), the causal mask of the new rows, an online base-2
// softmax, then O += P V. Scores are pre-scaled by scale * log2(e) so that exp2 is the only
// exponential. Keys past the sequence length are never read.
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

constexpr int kRowTile = 4;  // query rows sharing each K / V load
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// s[r][j] = q[r] . k[j] for kRows rows and n keys (two keys at a time for independent FMA chains).
template <int kRows, class T>
void qk_tile(const float* q, int64_t q_stride, const T* k, int64_t k_stride, int64_t n, int64_t d,
             float* s, int64_t s_stride) {
  const int64_t dv = d / kLanes * kLanes;
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const T* k0 = k + j * k_stride;
    const T* k1 = k0 + k_stride;
    Vec a0[kRows], a1[kRows];
    for (int r = 0; r < kRows; ++r) a0[r] = a1[r] = vzero();
    for (int64_t c = 0; c < dv; c += kLanes) {
      const Vec x0 = vload(k0 + c), x1 = vload(k1 + c);
      for (int r = 0; r < kRows; ++r) {
        const Vec qv = vload(q + r * q_stride + c);
        a0[r] = vfma(qv, x0, a0[r]);
        a1[r] = vfma(qv, x1, a1[r]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      float s0 = vsum(a0[r]), s1 = vsum(a1[r]);
      for (int64_t c = dv; c < d; ++c) {
        s0 += q[r * q_stride + c] * to_float(k0[c]);
        s1 += q[r * q_stride + c] * to_float(k1[c]);
      }
      s[r * s_stride + j] = s0;
      s[r * s_stride + j + 1] = s1;
    }
  }
  for (; j < n; ++j) {
    const T* k0 = k + j * k_stride;
    Vec a0[kRows];
    for (int r = 0; r < kRows; ++r) a0[r] = vzero();
    for (int64_t c = 0; c < dv; c += kLanes) {
      const Vec x0 = vload(k0 + c);
      for (int r = 0; r < kRows; ++r) a0[r] = vfma(vload(q + r * q_stride + c), x0, a0[r]);
    }
    for (int r = 0; r < kRows; ++r) {
      float s0 = vsum(a0[r]);
      for (int64_t c = dv; c < d; ++c) s0 += q[r * q_stride + c] * to_float(k0[c]);
      s[r * s_stride + j] = s0;
    }
  }
}

// o[r] += sum_j p[r][j] v[j] for kRows rows, two vectors of the head dimension at a time.
template <int kRows, class T>
void pv_tile(const float* p, int64_t p_stride, const T* v, int64_t v_stride, int64_t n, int64_t d,
             float* o, int64_t o_stride) {
  const int64_t dv = d / kLanes * kLanes;
  int64_t c = 0;
  for (; c + 2 * kLanes <= dv; c += 2 * kLanes) {
    Vec a0[kRows], a1[kRows];
    for (int r = 0; r < kRows; ++r) {
      a0[r] = vload(o + r * o_stride + c);
      a1[r] = vload(o + r * o_stride + c + kLanes);
    }
    for (int64_t j = 0; j < n; ++j) {
      const T* vj = v + j * v_stride + c;
      const Vec x0 = vload(vj), x1 = vload(vj + kLanes);
      for (int r = 0; r < kRows; ++r) {
        const Vec pj = vset1(p[r * p_stride + j]);
        a0[r] = vfma(pj, x0, a0[r]);
        a1[r] = vfma(pj, x1, a1[r]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      vstore(o + r * o_stride + c, a0[r]);
      vstore(o + r * o_stride + c + kLanes, a1[r]);
    }
  }
  for (; c < dv; c += kLanes) {
    Vec a0[kRows];
    for (int r = 0; r < kRows; ++r) a0[r] = vload(o + r * o_stride + c);
    for (int64_t j = 0; j < n; ++j) {
      const Vec x0 = vload(v + j * v_stride + c);
      for (int r = 0; r < kRows; ++r) a0[r] = vfma(vset1(p[r * p_stride + j]), x0, a0[r]);
    }
    for (int r = 0; r < kRows; ++r) vstore(o + r * o_stride + c, a0[r]);
  }
  for (; c < d; ++c)
    for (int64_t j = 0; j < n; ++j) {
      const float x = to_float(v[j * v_stride + c]);
      for (int r = 0; r < kRows; ++r) o[r * o_stride + c] += p[r * p_stride + j] * x;
    }
}

// Calls f(std::integral_constant<int, rows>{}, first_row) over row tiles of at most kRowTile.
template <class F>
void for_row_tiles(int64_t rows, F&& f) {
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
};

template <class T>
void run(const DecodeTask& t) {
  const DecodeParams& p = *t.params;
  const DecodeShape& s = t.shape;
  const int64_t d = s.head_dim, dp = decode_padded_dim(d), g_size = s.group_size();
  const int64_t rows = g_size * s.rows, heads = t.kv_head_end - t.kv_head_begin;
  const float q_scale = s.scale * 1.4426950408889634f;

  // Scratch: per head q, o, m, l, then one score tile shared by all heads.
  float* base = static_cast<float*>(t.scratch);
  auto state = [&](int64_t h) {
    float* q = base + h * rows * (2 * dp + 2);
    return HeadState{q, q + rows * dp, q + 2 * rows * dp, q + 2 * rows * dp + rows};
  };
  float* scores = base + heads * rows * (2 * dp + 2);

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
    const KvSlot slot = paged ? pager.slot(t.b, j0) : KvSlot{t.b, j0};
    if (paged) n = pager.run(j0, n);
    const int64_t n_padded = (n + kLanes - 1) / kLanes * kLanes;
    for (int64_t h = 0; h < heads; ++h) {
      const HeadState st = state(h);
      const int64_t kvh = t.kv_head_begin + h;
      const T* k = kv_k.ptr<const T>() + kv_k.offset(slot.major, slot.minor, kvh);
      const T* v = kv_v.ptr<const T>() + kv_v.offset(slot.major, slot.minor, kvh);
      for_row_tiles(rows, [&](auto tile, int64_t i) {
        qk_tile<decltype(tile)::value>(st.q + i * dp, dp, k, kv_k.stride[1], n, d,
                                       scores + i * kDecodeChunk, kDecodeChunk);
      });
      for (int64_t i = 0; i < rows; ++i) {
        float* row = scores + i * kDecodeChunk;
        const int64_t end = visible_end(i) - j0;  // row i sees chunk keys [0, end)
        for (int64_t j = end < 0 ? 0 : end; j < n_padded; ++j) row[j] = kNegInf;
        for (int64_t j = n; j < n_padded; ++j) row[j] = kNegInf;
        Vec mx = vset1(kNegInf);
        for (int64_t j = 0; j < n_padded; j += kLanes) mx = vmax(mx, vload(row + j));
        const float chunk_max = vmaxall(mx);
        if (chunk_max == kNegInf) {  // nothing visible in this chunk: weights 0
          for (int64_t j = 0; j < n_padded; ++j) row[j] = 0.0f;
          continue;
        }
        const float m_new = chunk_max > st.m[i] ? chunk_max : st.m[i];
        const float alpha = std::exp2(st.m[i] - m_new);  // 0 on the first visible chunk
        Vec sum = vzero();
        const Vec mv = vset1(m_new);
        for (int64_t j = 0; j < n_padded; j += kLanes) {
          const Vec e = vexp2(vsub(vload(row + j), mv));
          vstore(row + j, e);
          sum = vadd(sum, e);
        }
        st.l[i] = st.l[i] * alpha + vsum(sum);
        st.m[i] = m_new;
        if (alpha != 1.0f) {
          float* o = st.o + i * dp;
          const Vec av = vset1(alpha);
          for (int64_t c = 0; c < dp; c += kLanes) vstore(o + c, vmul(vload(o + c), av));
        }
      }
      for_row_tiles(rows, [&](auto tile, int64_t i) {
        pv_tile<decltype(tile)::value>(scores + i * kDecodeChunk, kDecodeChunk, v, kv_v.stride[1],
                                       n, d, st.o + i * dp, dp);
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
