// The CUDA decode kernel. One block = one (key split, chunk of KV heads, tile of 4 packed query
// rows, sequence). The block's threads form groups of kLanes lanes; group g serves head
// (chunk * hpb + g % hpb) and owns every slots-th key of the split (slot g / hpb), kDecodeUnroll
// keys per step. With Hkv >= 8 a whole token row (every head of one key: Hkv * D contiguous
// elements in the NHD cache) is read by the block at once: reading 256-byte pieces of one head at
// 2 KiB strides, head by head, left HBM at about half its bandwidth. Lanes hold interleaved 16-byte
// pieces of the head dimension (coalesced loads, a shuffle reduction per score); each group keeps
// an online softmax per row in registers, K/V loads of the next step are in flight while a step
// computes, and the groups of one head are merged through shared memory at the end. The block
// writes the output or its split's partial (o, lse) for the merge kernel. fp32 arithmetic on
// f32 / f16 / bf16 storage, no tensor cores and no cp.async, so it compiles for sm_61.
#pragma once

#include <cuda_fp16.h>

#include <cmath>

#include "../common/device_util.cuh"
#include "decode_launch.hpp"
#include "qwen3vl/cuda/check.cuh"

namespace qwen3vl::detail::decode_cuda {

constexpr int kDecodeUnroll = 4;  // keys per slot per step: their K and V loads are in flight together

// Resident blocks per SM the register budget is sized for: 3 (12 warps) where registers allow,
// 2 on Pascal, whose 255-register cap would otherwise make the f16 kernels spill.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
#define QWEN3VL_DECODE_MIN_BLOCKS 2
#else
#define QWEN3VL_DECODE_MIN_BLOCKS 3
#endif

template <class T>
struct Vec16 {
  static constexpr int kElems = 16 / sizeof(T);
};

__device__ inline void to_floats(const uint4& raw, float* f, float) {
  f[0] = __uint_as_float(raw.x);
  f[1] = __uint_as_float(raw.y);
  f[2] = __uint_as_float(raw.z);
  f[3] = __uint_as_float(raw.w);
}
__device__ inline void to_floats(const uint4& raw, float* f, qwen3vl::half) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}
__device__ inline void to_floats(const uint4& raw, float* f, qwen3vl::bfloat16) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// 16 bytes of storage at p (valid elements of them: `valid`, the rest read as 0).
template <class T>
__device__ inline uint4 load16(const T* p, int valid, bool vector_ok) {
  constexpr int kElems = Vec16<T>::kElems;
  if (vector_ok && valid == kElems) return __ldg(reinterpret_cast<const uint4*>(p));
  union {
    uint4 raw;
    T t[kElems];
  } u;
  u.raw = make_uint4(0, 0, 0, 0);
  for (int i = 0; i < kElems; ++i)
    if (i < valid) u.t[i] = p[i];
  return u.raw;
}

// K and V rows of the kDecodeUnroll keys a slot handles in one step (zeros for keys past the split
// or behind a bad block id, which are then masked).
template <class T, int kVecs>
struct KeyStep {
  static constexpr int kUnroll = kDecodeUnroll / kVecs;  // the same registers for any width
  uint4 k[kUnroll][kVecs], v[kUnroll][kVecs];
  bool ok[kUnroll];
};

template <class T, int kLanes, int kVecs, bool kPaged>
__device__ inline void load_step(const DecodeArgs& a, int b, int kvh, bool head_ok, int lane,
                                 int slot, int slots, int jb, int ke, KeyStep<T, kVecs>& st) {
  constexpr int kElems = Vec16<T>::kElems;
  const T* kbase = static_cast<const T*>(a.k);
  const T* vbase = static_cast<const T*>(a.v);
  for (int u = 0; u < KeyStep<T, kVecs>::kUnroll; ++u) {
    const int j = jb + u * slots + slot;
    int64_t major = b;
    int minor = j;
    st.ok[u] = head_ok && j < ke;
    if (kPaged && st.ok[u]) {
      const int blk = j / static_cast<int>(a.block_size);  // 32-bit: keys are < 2^31
      major = a.table[b * a.table_stride[0] + blk * a.table_stride[1]];
      minor = j - blk * static_cast<int>(a.block_size);
      st.ok[u] = major >= 0 && major < a.num_blocks;  // a bad id masks the key, never read
    }
    const int64_t k_off = major * a.k_stride[0] + minor * a.k_stride[1] + kvh * a.k_stride[2];
    const int64_t v_off = major * a.v_stride[0] + minor * a.v_stride[1] + kvh * a.v_stride[2];
    for (int v = 0; v < kVecs; ++v) {
      const int e0 = (v * kLanes + lane) * kElems;
      const int valid = st.ok[u] ? (a.head_dim - e0 < kElems ? a.head_dim - e0 : kElems) : 0;
      st.k[u][v] = valid > 0 ? load16(kbase + k_off + e0, valid, a.vector_loads) : make_uint4(0, 0, 0, 0);
      st.v[u][v] = valid > 0 ? load16(vbase + v_off + e0, valid, a.vector_loads) : make_uint4(0, 0, 0, 0);
    }
  }
}

template <class T, int kLanes, int kVecs, bool kPaged>
__global__ void __launch_bounds__(kDecodeThreads, QWEN3VL_DECODE_MIN_BLOCKS) decode_kernel(const DecodeArgs a) {
  constexpr int kElems = Vec16<T>::kElems;  // per 16-byte vector
  constexpr int kPer = kVecs * kElems;      // head-dim elements per lane
  constexpr int kGroups = kDecodeThreads / kLanes;
  constexpr int kPadded = kLanes * kPer;    // head dim covered by a group
  constexpr int kUnroll = KeyStep<T, kVecs>::kUnroll;
  constexpr float kNegInf = -INFINITY;

  const int hpb = a.heads_per_block, slots = kGroups / hpb;
  const int split = blockIdx.x;
  const int chunk = blockIdx.y / a.row_tiles, tile = blockIdx.y % a.row_tiles;
  const int b = blockIdx.z;
  const int lane = threadIdx.x % kLanes, group = threadIdx.x / kLanes;
  const int local_head = group % hpb, slot = group / hpb;
  const int kvh = chunk * hpb + local_head;
  const bool head_ok = kvh < a.kv_heads;
  const int d = a.head_dim;
  const int step = slots * kUnroll;

  int len = a.seq_lens[b * a.lens_stride];
  len = len < 0 ? 0 : (len > a.capacity ? static_cast<int>(a.capacity) : len);
  const int per_split = (len + a.splits - 1) / a.splits;
  const int kb = static_cast<int>(min(static_cast<int64_t>(split) * per_split, static_cast<int64_t>(len)));
  const int ke = static_cast<int>(min(static_cast<int64_t>(kb) + per_split, static_cast<int64_t>(len)));

  // The first step's K / V loads go out before anything else, then the queries are read.
  KeyStep<T, kVecs> cur;
  load_step<T, kLanes, kVecs, kPaged>(a, b, kvh, head_ok, lane, slot, slots, kb, ke, cur);

  // This tile's query rows: head (kvh * G + gi / R), new row gi % R, visible keys [0, end).
  float q[kDecodeRowTile][kPer];
  int end[kDecodeRowTile];
  for (int i = 0; i < kDecodeRowTile; ++i) {
    const int gi = tile * kDecodeRowTile + i;
    const bool active = head_ok && gi < a.group_rows;
    const int head = kvh * (a.heads / a.kv_heads) + gi / a.rows, r = gi % a.rows;
    end[i] = active ? len - a.rows + r + 1 : 0;
    const int64_t q_off = b * a.q_stride[0] + r * a.q_stride[1] + head * a.q_stride[2];
    for (int v = 0; v < kVecs; ++v)
      for (int x = 0; x < kElems; ++x) {
        const int e = (v * kLanes + lane) * kElems + x;
        q[i][v * kElems + x] =
            active && e < d ? load_element(a.q, q_off + e, a.q_dtype) * a.scale_log2 : 0.0f;
      }
  }

  float m[kDecodeRowTile], l[kDecodeRowTile], o[kDecodeRowTile][kPer];
  for (int i = 0; i < kDecodeRowTile; ++i) {
    m[i] = kNegInf;
    l[i] = 0.0f;
    for (int x = 0; x < kPer; ++x) o[i][x] = 0.0f;
  }

  for (int jb = kb; jb < ke; jb += step) {
    // The next step's loads are in flight while this step computes (register double buffer).
    KeyStep<T, kVecs> next;
    if (jb + step < ke)
      load_step<T, kLanes, kVecs, kPaged>(a, b, kvh, head_ok, lane, slot, slots, jb + step, ke, next);

    // Scores: every lane of a slot ends with the full dot products (xor shuffles within the slot).
    float s[kUnroll][kDecodeRowTile];
    for (int u = 0; u < kUnroll; ++u) {
      float kf[kPer];
      for (int v = 0; v < kVecs; ++v) to_floats(cur.k[u][v], kf + v * kElems, T{});
      const int j = jb + u * slots + slot;
      for (int i = 0; i < kDecodeRowTile; ++i) {
        float d0 = 0.0f, d1 = 0.0f;  // two chains
        for (int x = 0; x < kPer; x += 2) {
          d0 = fmaf(q[i][x], kf[x], d0);
          d1 = fmaf(q[i][x + 1], kf[x + 1], d1);
        }
        float dot = d0 + d1;
        for (int off = kLanes / 2; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        s[u][i] = cur.ok[u] && j < end[i] ? dot : kNegInf;
      }
    }

    // Online softmax per row: one rescale per step, weights back into s.
    for (int i = 0; i < kDecodeRowTile; ++i) {
      float mx = kNegInf;
      for (int u = 0; u < kUnroll; ++u) mx = fmaxf(mx, s[u][i]);
      if (mx == kNegInf) {
        for (int u = 0; u < kUnroll; ++u) s[u][i] = 0.0f;
        continue;
      }
      const float m_new = fmaxf(m[i], mx);
      const float alpha = exp2f(m[i] - m_new);
      float sum = 0.0f;
      for (int u = 0; u < kUnroll; ++u) {
        s[u][i] = exp2f(s[u][i] - m_new);
        sum += s[u][i];
      }
      l[i] = l[i] * alpha + sum;
      m[i] = m_new;
      for (int x = 0; x < kPer; ++x) o[i][x] *= alpha;
    }

    for (int u = 0; u < kUnroll; ++u) {
      if (!cur.ok[u]) continue;  // weight 0 for every row; its V was not loaded
      float vf[kPer];
      for (int v = 0; v < kVecs; ++v) to_floats(cur.v[u][v], vf + v * kElems, T{});
      for (int i = 0; i < kDecodeRowTile; ++i)
        for (int x = 0; x < kPer; ++x) o[i][x] = fmaf(s[u][i], vf[x], o[i][x]);
    }
    cur = next;
  }

  // Merge the groups of each head (its slots): per row, each slot's weight exp2(m - max) once,
  // then the outputs.
  __shared__ float sm_o[kGroups][kDecodeRowTile][kPadded];
  __shared__ float sm_m[kGroups][kDecodeRowTile], sm_l[kGroups][kDecodeRowTile];
  __shared__ float sm_inv[kGroups][kDecodeRowTile], sm_lse[kGroups][kDecodeRowTile];
  for (int i = 0; i < kDecodeRowTile; ++i) {
    for (int v = 0; v < kVecs; ++v)
      for (int x = 0; x < kElems; ++x)
        sm_o[group][i][(v * kLanes + lane) * kElems + x] = o[i][v * kElems + x];
    if (lane == 0) {
      sm_m[group][i] = m[i];
      sm_l[group][i] = l[i];
    }
  }
  __syncthreads();
  if (threadIdx.x < hpb * kDecodeRowTile) {  // one thread per (head, row): weights and LSE
    const int h = threadIdx.x / kDecodeRowTile, i = threadIdx.x % kDecodeRowTile;
    float mx = kNegInf;
    for (int sl = 0; sl < slots; ++sl) mx = fmaxf(mx, sm_m[sl * hpb + h][i]);
    float sum = 0.0f;
    for (int sl = 0; sl < slots; ++sl) {
      const float ms = sm_m[sl * hpb + h][i];
      const float w = mx == kNegInf || ms == kNegInf ? 0.0f : exp2f(ms - mx);
      sm_m[sl * hpb + h][i] = w;  // from here on: the slot's weight
      sum += sm_l[sl * hpb + h][i] * w;
    }
    const bool empty = !(sum > 0.0f);
    sm_inv[h][i] = empty ? 0.0f : 1.0f / sum;
    sm_lse[h][i] = empty ? kNegInf : (mx + log2f(sum)) * kLn2;
  }
  __syncthreads();
  const int heads_per_group = a.heads / a.kv_heads;
  for (int idx = threadIdx.x; idx < hpb * kDecodeRowTile * d; idx += kDecodeThreads) {
    const int h = idx / (kDecodeRowTile * d), i = idx / d % kDecodeRowTile, e = idx % d;
    const int gi = tile * kDecodeRowTile + i, out_kvh = chunk * hpb + h;
    if (gi >= a.group_rows || out_kvh >= a.kv_heads) continue;
    float acc = 0.0f;
    for (int sl = 0; sl < slots; ++sl) acc = fmaf(sm_m[sl * hpb + h][i], sm_o[sl * hpb + h][i][e], acc);
    const float value = acc * sm_inv[h][i];
    const int head = out_kvh * heads_per_group + gi / a.rows, r = gi % a.rows;
    if (a.splits > 1) {
      const int64_t row = (static_cast<int64_t>(b) * a.heads + head) * a.rows + r;
      a.partial_o[(row * a.splits + split) * d + e] = value;
      if (e == 0) a.partial_lse[row * a.splits + split] = sm_lse[h][i];
      continue;
    }
    store_element(a.out, b * a.out_stride[0] + r * a.out_stride[1] + head * a.out_stride[2] + e,
                  a.q_dtype, value);
    if (e == 0 && a.lse)
      a.lse[b * a.lse_stride[0] + head * a.lse_stride[1] + r * a.lse_stride[2]] = sm_lse[h][i];
  }
}

}  // namespace qwen3vl::detail::decode_cuda

namespace qwen3vl::detail {

// Picks lanes per key row (8, 16 or 32) and 16-byte vectors per lane (1, or 2 for f32 with
// D > 128) so that one group covers the head dimension, then launches.
template <class T>
Status launch_decode(const DecodeArgs& a, cudaStream_t stream) {
  using namespace decode_cuda;
  constexpr int kElems = Vec16<T>::kElems;
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.head_chunks * a.row_tiles),
                  static_cast<unsigned>(a.batch));
  const int vectors = (a.head_dim + kElems - 1) / kElems;
  const bool paged = a.table != nullptr;
  auto go = [&](auto kernel) {
    kernel<<<grid, kDecodeThreads, 0, stream>>>(a);
    return cuda_status(cudaGetLastError(), "launch of decode_kernel");
  };
#define QWEN3VL_DECODE_LAUNCH(lanes, vecs)                                              \
  return paged ? go(decode_kernel<T, lanes, vecs, true>) : go(decode_kernel<T, lanes, vecs, false>)
  switch (decode_lanes<T>(a.head_dim)) {  // the host planned head chunks with the same choice
    case 8: QWEN3VL_DECODE_LAUNCH(8, 1);
    case 16: QWEN3VL_DECODE_LAUNCH(16, 1);
    default:
      if constexpr (kElems == 4) {
        if (vectors > 32) QWEN3VL_DECODE_LAUNCH(32, 2);
      }
      QWEN3VL_DECODE_LAUNCH(32, 1);
  }
#undef QWEN3VL_DECODE_LAUNCH
}

}  // namespace qwen3vl::detail
