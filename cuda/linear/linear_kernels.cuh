// Linear attention kernels (CUDA): the chunked form in four launches, each parallel over chunks:
//   1. features:    phi(Q) [rows, Hq, F] and phi(K) [rows, Hkv, F] into the workspace (f32; padded
//                   keys 0). Performer: a block per (row, head) projects with omega; keys keep
//                   a - |x'|^2/2 and the per-(sequence, KV head) max of a, applied by 1b.
//   2. chunk_state: T_n = phi(K_n)^T [V_n | 1] per (sequence, KV head, chunk): F x (D + 1).
//   3. scan:        T_n <- sum of T_m, m < n (exclusive), from the initial state (or 0); the total
//                   is the final state (and the non-causal state).
//   4. output:      per (sequence, query head, chunk): O = phi(Q_n) S_n + tril(phi(Q_n) phi(K_n)^T)
//                   [V_n | 1] (causal) or phi(Q_n) S_total; o = num / (den + eps).
// Static shared memory <= 34 KB per block (sm_61 allows 48 KB); fp32 throughout; D <= 256.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common/device_util.cuh"
#include "qwen3vl/variants/linear.hpp"

namespace qwen3vl::detail::linear {

constexpr int kChunk = 64;  // tokens per chunk (the output kernel's tile rows)
constexpr int kThreads = 256;
constexpr int kTileF = 32;  // features per step of the F reductions

// Where the workspace's buffers are and what shapes they have.
struct LinearArgs {
  AttentionArgs a;
  int64_t features = 0;            // F
  int64_t chunks = 0;              // chunks per sequence (of the longest one)
  int64_t rows_q = 0, rows_k = 0;  // packed rows of phi(Q), phi(K) (varlen: tokens; else B * L)
  float* phi_q = nullptr;          // [rows_q, Hq, F]
  float* phi_k = nullptr;          // [rows_k, Hkv, F]
  float* chunk_state = nullptr;    // [B, Hkv, chunks, F, D + 1]
  float* total = nullptr;          // [B, Hkv, F, D + 1]
  unsigned* key_max = nullptr;     // [B, Hkv] ordered-int encoding of the Performer key stabiliser
  const float* omega = nullptr;    // Performer [F, D], else null
  float query_scale = 1.0f;        // sqrt(scale) for the Performer
  float eps = 0.0f;
  bool causal = false;
  float* state_s = nullptr;  // optional state [B, Hkv, F, D] / [B, Hkv, F] (strides in elements)
  float* state_z = nullptr;
  int64_t s_stride[3] = {0, 0, 0};  // b, g, f
  int64_t z_stride[2] = {0, 0};     // b, g
  bool load_state = false;
};

__device__ inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
__device__ inline int kv_heads(const LinearArgs& l) { return l.a.heads / l.a.group; }
__device__ inline int64_t packed_row(const LinearArgs& l, int64_t b, int64_t start, int64_t i,
                                     int64_t len) {
  return l.a.cu_q ? start + i : b * len + i;
}
__device__ inline float* state_block(const LinearArgs& l, float* base, int64_t b, int64_t g) {
  return base + (b * kv_heads(l) + g) * l.chunks * l.features * (l.a.head_dim + 1);
}

// Floats ordered as unsigned ints, for atomicMax.
__device__ inline unsigned ordered(float x) {
  const unsigned u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ inline float unordered(unsigned u) {
  return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

template <class Op>
__device__ inline float block_reduce(float x, float* scratch, Op op) {
  for (int o = 16; o > 0; o /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = scratch[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) x = op(x, scratch[w]);
  return x;
}

// elu+1 features: one thread per element; padded keys 0. grid.y: 0 queries, 1 keys.
__global__ void elu_features_kernel(LinearArgs l) {
  const bool keys = blockIdx.y == 1;
  const int heads = keys ? kv_heads(l) : l.a.heads;
  const int64_t rows = keys ? l.rows_k : l.rows_q;
  const int64_t d = l.a.head_dim;
  const int64_t n = rows * heads * d;
  const RowTensor& t = keys ? l.a.k : l.a.q;
  float* dst = keys ? l.phi_k : l.phi_q;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t c = e % d, h = (e / d) % heads, r = e / (d * heads);
    if (keys && !l.a.cu_q &&
        l.a.key_lengths) {  // fixed length: row r is key r % L of sequence r / L
      const int64_t b = r / l.a.seq_k;
      const int64_t valid = clamp64(l.a.key_lengths[b * l.a.key_lengths_stride], 0, l.a.seq_k);
      if (r % l.a.seq_k >= valid) {
        dst[e] = 0.0f;
        continue;
      }
    }
    const int64_t off = l.a.cu_q ? r * t.token + h * t.head
                                 : (r / (keys ? l.a.seq_k : l.a.seq_q)) * t.batch +
                                       (r % (keys ? l.a.seq_k : l.a.seq_q)) * t.token + h * t.head;
    const float x = load_element(t.data, off + c, l.a.dtype);
    dst[e] = x > 0.0f ? x + 1.0f : expf(x);
  }
}

// Performer projections: a block per (row, head); grid.y: 0 queries, 1 keys. Queries are final
// here; keys keep a - |x'|^2 / 2 and raise key_max, which performer_keys_kernel applies.
__global__ void performer_features_kernel(LinearArgs l) {
  __shared__ float x[256];
  __shared__ float scratch[32];
  const bool keys = blockIdx.y == 1;
  const int heads = keys ? kv_heads(l) : l.a.heads;
  const int64_t rows = keys ? l.rows_k : l.rows_q;
  const int64_t d = l.a.head_dim, f = l.features;
  const int64_t r = blockIdx.x / heads, h = blockIdx.x % heads;
  if (r >= rows) return;
  const RowTensor& t = keys ? l.a.k : l.a.q;
  float* dst = (keys ? l.phi_k : l.phi_q) + (r * heads + h) * f;
  const int64_t len = keys ? l.a.seq_k : l.a.seq_q;
  const int64_t b = l.a.cu_q ? 0 : r / len;
  bool padded = false;
  if (keys && !l.a.cu_q && l.a.key_lengths)
    padded = r % len >= clamp64(l.a.key_lengths[b * l.a.key_lengths_stride], 0, len);
  if (padded) {  // the whole block agrees, so returning here is safe
    for (int64_t e = threadIdx.x; e < f; e += blockDim.x) dst[e] = -INFINITY;
    return;
  }
  const int64_t off =
      l.a.cu_q ? r * t.token + h * t.head : b * t.batch + (r % len) * t.token + h * t.head;
  float sq = 0.0f;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    x[c] = load_element(t.data, off + c, l.a.dtype) * l.query_scale;
    sq += x[c] * x[c];
  }
  const float half_sq = 0.5f * block_reduce(sq, scratch, [](float p, float q) { return p + q; });
  float mx = -INFINITY;
  for (int64_t e = threadIdx.x; e < f; e += blockDim.x) {
    const float* w = l.omega + e * d;
    float acc = 0.0f;
    for (int64_t c = 0; c < d; ++c) acc += w[c] * x[c];
    dst[e] = acc;
    // The key stabiliser is shared by every row: a key's Inf or NaN must not reach rows that do
    // not see the key through it, so keys count finite projections only.
    mx = keys && !isfinite(acc) ? mx : fmaxf(mx, acc);
  }
  mx = block_reduce(mx, scratch, [](float p, float q) { return fmaxf(p, q); });
  const float norm = rsqrtf(static_cast<float>(f));
  if (!keys) {
    for (int64_t e = threadIdx.x; e < f; e += blockDim.x)
      dst[e] = norm * (expf(dst[e] - half_sq - mx) + kPerformerEpsilon);
    return;
  }
  for (int64_t e = threadIdx.x; e < f; e += blockDim.x) dst[e] -= half_sq;
  if (threadIdx.x == 0) {
    int64_t seq = b;
    if (l.a.cu_q) {  // the sequence of packed key row r
      seq = 0;
      while (seq + 1 < l.a.batch && l.a.cu_k[(seq + 1) * l.a.cu_k_stride] <= r) ++seq;
    }
    atomicMax(&l.key_max[seq * kv_heads(l) + h], ordered(mx));
  }
}

// Applies the key stabiliser: phi = m^-1/2 (exp(a - |x'|^2/2 - c) + eps); padded keys (-inf) 0.
__global__ void performer_keys_kernel(LinearArgs l) {
  const int hkv = kv_heads(l);
  const int64_t f = l.features, n = l.rows_k * hkv * f;
  const float norm = rsqrtf(static_cast<float>(f));
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t h = (e / f) % hkv, r = e / (f * hkv);
    const float v = l.phi_k[e];
    if (v == -INFINITY) {
      l.phi_k[e] = 0.0f;
      continue;
    }
    int64_t seq = 0;
    if (l.a.cu_q) {
      while (seq + 1 < l.a.batch && l.a.cu_k[(seq + 1) * l.a.cu_k_stride] <= r) ++seq;
    } else {
      seq = r / l.a.seq_k;
    }
    const float c = unordered(l.key_max[seq * hkv + h]);
    l.phi_k[e] = norm * (expf(v - c) + kPerformerEpsilon);
  }
}

// T_n tile: rows f0..f0+31 of F, columns c0..c0+31 of [V | 1]. grid (chunks, tiles, B * Hkv).
__global__ void chunk_state_kernel(LinearArgs l) {
  __shared__ float pk[kChunk][kTileF + 1];
  __shared__ float vv[kChunk][kTileF + 1];
  const int hkv = kv_heads(l);
  const int64_t b = blockIdx.z / hkv, g = blockIdx.z % hkv, n = blockIdx.x;
  const int64_t d = l.a.head_dim, f = l.features, cols = d + 1;
  const int64_t col_tiles = (cols + kTileF - 1) / kTileF;
  const int64_t f0 = (blockIdx.y / col_tiles) * kTileF, c0 = (blockIdx.y % col_tiles) * kTileF;
  const DeviceSpan span = sequence_span(l.a, b);
  const int64_t n0 = n * kChunk;
  const int64_t cn = n0 < span.k_full ? min64(kChunk, span.k_full - n0) : 0;
  const int tx = threadIdx.x % kTileF, ty = threadIdx.x / kTileF;  // 32 x 8
  for (int64_t idx = threadIdx.x; idx < kChunk * kTileF; idx += blockDim.x) {
    const int64_t j = idx / kTileF, e = idx % kTileF;
    const int64_t row = packed_row(l, b, span.k_start, n0 + j, l.a.seq_k);
    pk[j][e] = (j < cn && f0 + e < f) ? l.phi_k[(row * hkv + g) * f + f0 + e] : 0.0f;
    float v = 0.0f;
    if (j < cn && n0 + j < span.k_len && c0 + e < cols)
      v = c0 + e == d ? 1.0f
                      : load_element(l.a.v.data,
                                     row_offset(l.a.v, l.a.cu_q ? 0 : b,
                                                l.a.cu_q ? span.k_start + n0 + j : n0 + j, g) +
                                         c0 + e,
                                     l.a.dtype);
    vv[j][e] = v;
  }
  __syncthreads();
  float acc[4] = {0, 0, 0, 0};  // rows ty, ty + 8, ty + 16, ty + 24; column tx
  for (int j = 0; j < cn; ++j) {
    const float v = vv[j][tx];
    for (int m = 0; m < 4; ++m) acc[m] += pk[j][ty + 8 * m] * v;
  }
  float* out = state_block(l, l.chunk_state, b, g) + n * f * cols;
  for (int m = 0; m < 4; ++m) {
    const int64_t fr = f0 + ty + 8 * m, c = c0 + tx;
    if (fr < f && c < cols) out[fr * cols + c] = acc[m];
  }
}

// Exclusive prefix over chunks per element of F x (D + 1); grid (elements / threads, B * Hkv).
__global__ void scan_kernel(LinearArgs l) {
  const int hkv = kv_heads(l);
  const int64_t b = blockIdx.y / hkv, g = blockIdx.y % hkv;
  const int64_t d = l.a.head_dim, cols = d + 1, per = l.features * cols;
  const int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (e >= per) return;
  const int64_t fr = e / cols, c = e % cols;
  float acc = 0.0f;
  if (l.load_state)
    acc = c == d ? l.state_z[b * l.z_stride[0] + g * l.z_stride[1] + fr]
                 : l.state_s[b * l.s_stride[0] + g * l.s_stride[1] + fr * l.s_stride[2] + c];
  float* t = state_block(l, l.chunk_state, b, g) + e;
  for (int64_t n = 0; n < l.chunks; ++n) {
    const float x = t[n * per];
    t[n * per] = acc;
    acc += x;
  }
  l.total[(b * hkv + g) * per + e] = acc;
  if (l.state_s) {
    if (c == d)
      l.state_z[b * l.z_stride[0] + g * l.z_stride[1] + fr] = acc;
    else
      l.state_s[b * l.s_stride[0] + g * l.s_stride[1] + fr * l.s_stride[2] + c] = acc;
  }
}

// Output of query rows n0..n0+63 of head h. grid (chunks, Hq, B); 256 threads as 16 x 16, each
// 4 x 4 of a 64 x 64 tile (rows ty + 16 m, columns tx + 16 k).
__global__ void output_kernel(LinearArgs l) {
  __shared__ float a_tile[kChunk][kChunk + 1];
  __shared__ float pool[kChunk * (kTileF + 1) * 2];  // phi(Q) + phi(K) or S tiles; or a V tile
  __shared__ float den[kChunk];
  const int hkv = kv_heads(l);
  const int64_t b = blockIdx.z, h = blockIdx.y, g = h / l.a.group, n = blockIdx.x;
  const int64_t d = l.a.head_dim, f = l.features, cols = d + 1;
  const DeviceSpan span = sequence_span(l.a, b);
  const int64_t n0 = n * kChunk;
  if (n0 >= span.q_len) return;
  const int64_t cn = min64(kChunk, span.q_len - n0);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float(*tq)[kTileF + 1] = reinterpret_cast<float(*)[kTileF + 1]>(pool);
  float(*tk)[kTileF + 1] = reinterpret_cast<float(*)[kTileF + 1]>(pool + kChunk * (kTileF + 1));
  float(*ts)[kChunk] = reinterpret_cast<float(*)[kChunk]>(pool + kChunk * (kTileF + 1));
  float(*tv)[kChunk] = reinterpret_cast<float(*)[kChunk]>(pool);
  const float* s = l.causal ? state_block(l, l.chunk_state, b, g) + n * f * cols
                            : l.total + (b * hkv + g) * f * cols;
  auto phi_q = [&](int64_t i, int64_t e) {
    return l.phi_q[(packed_row(l, b, span.q_start, n0 + i, l.a.seq_q) * l.a.heads + h) * f + e];
  };
  auto load_q_tile = [&](int64_t e0) {
    for (int idx = threadIdx.x; idx < kChunk * kTileF; idx += blockDim.x) {
      const int i = idx / kTileF, e = idx % kTileF;
      tq[i][e] = (i < cn && e0 + e < f) ? phi_q(i, e0 + e) : 0.0f;
    }
  };

  // Denominators, inter-chunk part: phi(q_i) . z_n.
  if (threadIdx.x < kChunk) {
    float z = 0.0f;
    if (threadIdx.x < cn)
      for (int64_t e = 0; e < f; ++e) z += phi_q(threadIdx.x, e) * s[e * cols + d];
    den[threadIdx.x] = z;
  }
  // A = tril(phi(Q_n) phi(K_n)^T); keys of chunk n are the rows of chunk n (Lq == Lk).
  if (l.causal) {
    float acc[4][4] = {};
    for (int64_t e0 = 0; e0 < f; e0 += kTileF) {
      __syncthreads();
      load_q_tile(e0);
      for (int idx = threadIdx.x; idx < kChunk * kTileF; idx += blockDim.x) {
        const int j = idx / kTileF, e = idx % kTileF;
        tk[j][e] = (j < cn && e0 + e < f)
                       ? l.phi_k[(packed_row(l, b, span.k_start, n0 + j, l.a.seq_k) * hkv + g) * f +
                                 e0 + e]
                       : 0.0f;
      }
      __syncthreads();
      for (int e = 0; e < kTileF; ++e)
        for (int m = 0; m < 4; ++m)
          for (int k = 0; k < 4; ++k) acc[m][k] += tq[ty + 16 * m][e] * tk[tx + 16 * k][e];
    }
    for (int m = 0; m < 4; ++m)
      for (int k = 0; k < 4; ++k) {
        const int i = ty + 16 * m, j = tx + 16 * k;
        a_tile[i][j] = j <= i ? acc[m][k] : 0.0f;
      }
    __syncthreads();
    if (threadIdx.x < kChunk) {
      float sum = 0.0f;
      for (int j = 0; j <= static_cast<int>(threadIdx.x); ++j) sum += a_tile[threadIdx.x][j];
      den[threadIdx.x] += sum;
    }
  }

  for (int64_t c0 = 0; c0 < d; c0 += kChunk) {
    float acc[4][4] = {};
    for (int64_t e0 = 0; e0 < f; e0 += kTileF) {
      __syncthreads();
      load_q_tile(e0);
      for (int idx = threadIdx.x; idx < kTileF * kChunk; idx += blockDim.x) {
        const int e = idx / kChunk, c = idx % kChunk;
        ts[e][c] = (e0 + e < f && c0 + c < d) ? s[(e0 + e) * cols + c0 + c] : 0.0f;
      }
      __syncthreads();
      for (int e = 0; e < kTileF; ++e)
        for (int m = 0; m < 4; ++m)
          for (int k = 0; k < 4; ++k) acc[m][k] += tq[ty + 16 * m][e] * ts[e][tx + 16 * k];
    }
    if (l.causal) {
      __syncthreads();
      bool non_finite = false;
      for (int idx = threadIdx.x; idx < kChunk * kChunk; idx += blockDim.x) {
        const int j = idx / kChunk, c = idx % kChunk;
        float v = 0.0f;
        if (j < cn && n0 + j < span.k_len && c0 + c < d)
          v = load_element(
              l.a.v.data,
              row_offset(l.a.v, l.a.cu_q ? 0 : b, l.a.cu_q ? span.k_start + n0 + j : n0 + j, g) +
                  c0 + c,
              l.a.dtype);
        tv[j][c] = v;
        non_finite = non_finite || !isfinite(v);
      }
      // The zeros above A's diagonal times a later key's Inf/NaN V would give NaN in earlier rows
      // (0 x Inf): a tile holding one skips those products; the others take the plain loop.
      if (__syncthreads_or(non_finite)) {
        for (int j = 0; j < cn; ++j)
          for (int m = 0; m < 4; ++m)
            for (int k = 0; k < 4; ++k)
              acc[m][k] = j <= ty + 16 * m
                              ? fmaf(a_tile[ty + 16 * m][j], tv[j][tx + 16 * k], acc[m][k])
                              : acc[m][k];
      } else {
        for (int j = 0; j < cn; ++j)
          for (int m = 0; m < 4; ++m)
            for (int k = 0; k < 4; ++k) acc[m][k] += a_tile[ty + 16 * m][j] * tv[j][tx + 16 * k];
      }
    }
    __syncthreads();  // den is complete
    for (int m = 0; m < 4; ++m) {
      const int i = ty + 16 * m;
      if (i >= cn) continue;
      const float dn = den[i] + l.eps;
      const float inv = dn == 0.0f ? 0.0f : 1.0f / dn;  // a NaN den (the row saw a NaN) stays NaN
      const int64_t token = l.a.cu_q ? span.q_start + n0 + i : n0 + i;
      const int64_t off = row_offset(l.a.out, l.a.cu_q ? 0 : b, token, h);
      for (int k = 0; k < 4; ++k) {
        const int64_t c = c0 + tx + 16 * k;
        if (c < d) store_element(l.a.out.data, off + c, l.a.dtype, acc[m][k] * inv);
      }
    }
  }
}

}  // namespace qwen3vl::detail::linear
