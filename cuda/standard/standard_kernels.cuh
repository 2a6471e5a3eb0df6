// Standard attention on CUDA, the obvious way in three kernels: scores S = scale * Q K^T (soft-cap,
// additive mask, -inf where masked) into a [B, Hq, Lq, Lk] fp32 buffer; a row softmax in place (and
// the LSE); then O = P V, reading only keys some row of the tile can see and skipping zero weights
// so NaN in hidden V rows cannot leak. Simple 32x32 shared-memory tiles: this is the baseline and
// the weights provider, not the fast path.
#pragma once

#include <cuda_runtime.h>

#include "cuda/common/device_util.cuh"

namespace qwen3vl::detail::standard {

constexpr int kTile = 32;  // rows and columns per block
constexpr int kRowsY = 8;  // threadIdx.y extent: each thread covers kTile / kRowsY rows

// The score / weight buffer [B, Hq, Lq, Lk], last dimension contiguous.
struct ScoreBuffer {
  float* data = nullptr;
  int64_t batch = 0, head = 0, row = 0;
  __device__ float* at(int64_t b, int64_t h, int64_t i) const {
    return data + b * batch + h * head + i * row;
  }
};

__device__ inline KeyRange row_keys(const AttentionArgs& a, const DeviceSpan& sp, int64_t i) {
  return visible_keys(a.mask_kind, a.window_left, a.window_right, i, sp.q_len, sp.k_len);
}

// Grid: (key tiles, query tiles, B * Hq); block (kTile, kRowsY).
__global__ void scores_kernel(const AttentionArgs a, const ScoreBuffer w, int64_t max_k) {
  __shared__ float sq[kTile][kTile + 1], sk[kTile][kTile + 1];
  const int64_t b = blockIdx.z / a.heads;
  const int h = blockIdx.z % a.heads;
  const int64_t kh = h / a.group;
  const DeviceSpan sp = sequence_span(a, b);
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTile,
                j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  if (i0 >= sp.q_len) return;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int d = a.head_dim;
  float acc[kTile / kRowsY] = {};
  for (int d0 = 0; d0 < d; d0 += kTile) {
    for (int r = ty; r < kTile; r += kRowsY) {
      const int64_t i = i0 + r, j = j0 + r;
      const bool col = d0 + tx < d;
      sq[r][tx] =
          col && i < sp.q_len
              ? load_element(a.q.data, row_offset(a.q, b, sp.q_start + i, h) + d0 + tx, a.dtype)
              : 0.0f;
      sk[r][tx] =
          col && j < sp.k_full
              ? load_element(a.k.data, row_offset(a.k, b, sp.k_start + j, kh) + d0 + tx, a.dtype)
              : 0.0f;
    }
    __syncthreads();
    for (int c = 0; c < kTile; ++c)
#pragma unroll
      for (int r = 0; r < kTile / kRowsY; ++r)
        acc[r] = fmaf(sq[ty + r * kRowsY][c], sk[tx][c], acc[r]);
    __syncthreads();
  }
  const int64_t j = j0 + tx;
#pragma unroll
  for (int r = 0; r < kTile / kRowsY; ++r) {
    const int64_t i = i0 + ty + r * kRowsY;
    if (i >= sp.q_len || j >= max_k) continue;
    const KeyRange keys = row_keys(a, sp, i);
    const bool visible = j >= keys.begin && j < keys.end;
    float x = acc[r] * a.scale;
    if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
    if (visible && a.mask != nullptr) {  // -inf hides the key even where its score is NaN
      const float add = load_mask(a, b, h, i, j);
      x = add == -INFINITY ? -INFINITY : x + add;
    }
    w.at(b, h, i)[j] = visible ? x : -INFINITY;
  }
}

// One warp per query row; rows = B * Hq * max_q. Writes probabilities (0 where masked) and the LSE.
__global__ void softmax_kernel(const AttentionArgs a, const ScoreBuffer w, int64_t max_q,
                               int64_t max_k) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int64_t rows = a.batch * a.heads * max_q;
  if (warp >= rows) return;
  const int64_t i = warp % max_q, bh = warp / max_q;
  const int64_t b = bh / a.heads;
  const int h = static_cast<int>(bh % a.heads);
  const DeviceSpan sp = sequence_span(a, b);
  if (i >= sp.q_len) return;
  float* row = w.at(b, h, i);
  float mx = -INFINITY;
  for (int64_t j = lane; j < max_k; j += 32) mx = fmaxf(mx, row[j]);
  for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  const float m_use = mx == -INFINITY ? 0.0f : mx;
  float sum = 0.0f;
  for (int64_t j = lane; j < max_k; j += 32) sum += expf(row[j] - m_use);
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  // A NaN score (q, or a K row the row sees) gives a NaN sum: the row's weights, output and LSE
  // are NaN (fmaxf skipped it in the max). Only a sum of 0 is a row that sees no key.
  const bool empty = sum == 0.0f;
  const float inv = empty ? 0.0f : 1.0f / sum;
  for (int64_t j = lane; j < max_k; j += 32) row[j] = expf(row[j] - m_use) * inv;
  if (a.lse != nullptr && lane == 0)
    a.lse[b * a.lse_batch + h * a.lse_head + (sp.q_start + i) * a.lse_token] =
        empty ? -INFINITY : m_use + logf(sum);
}

// Grid: (column tiles, query tiles, B * Hq); block (kTile, kRowsY).
__global__ void pv_kernel(const AttentionArgs a, const ScoreBuffer w) {
  __shared__ float sp_[kTile][kTile + 1], sv[kTile][kTile + 1];
  const int64_t b = blockIdx.z / a.heads;
  const int h = blockIdx.z % a.heads;
  const int64_t kh = h / a.group;
  const DeviceSpan sp = sequence_span(a, b);
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int c0 = blockIdx.x * kTile;
  if (i0 >= sp.q_len) return;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t rows = sp.q_len - i0 < kTile ? sp.q_len - i0 : kTile;
  // Keys any row of the tile sees (contiguous per row, ends non-decreasing with the row).
  const int64_t k_begin = row_keys(a, sp, i0).begin;
  const int64_t k_end_raw = row_keys(a, sp, i0 + rows - 1).end;
  const int64_t k_end = k_end_raw < sp.k_len ? k_end_raw : sp.k_len;
  float acc[kTile / kRowsY] = {};
  for (int64_t j0 = k_begin; j0 < k_end; j0 += kTile) {
    for (int r = ty; r < kTile; r += kRowsY) {
      const int64_t i = i0 + r, jp = j0 + tx, jv = j0 + r;
      sp_[r][tx] = i < sp.q_len && jp < k_end ? w.at(b, h, i)[jp] : 0.0f;
      sv[r][tx] =
          jv < k_end && c0 + tx < a.head_dim
              ? load_element(a.v.data, row_offset(a.v, b, sp.k_start + jv, kh) + c0 + tx, a.dtype)
              : 0.0f;
    }
    __syncthreads();
    for (int jj = 0; jj < kTile; ++jj)
#pragma unroll
      for (int r = 0; r < kTile / kRowsY; ++r) {
        const float p = sp_[ty + r * kRowsY][jj];
        if (p != 0.0f) acc[r] = fmaf(p, sv[jj][tx], acc[r]);  // hidden keys never touch V
      }
    __syncthreads();
  }
  const int c = c0 + tx;
  if (c >= a.head_dim) return;
#pragma unroll
  for (int r = 0; r < kTile / kRowsY; ++r) {
    const int64_t i = i0 + ty + r * kRowsY;
    if (i < sp.q_len)
      store_element(a.out.data, row_offset(a.out, b, sp.q_start + i, h) + c, a.dtype, acc[r]);
  }
}

}  // namespace qwen3vl::detail::standard
