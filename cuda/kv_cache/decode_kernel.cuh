// The CUDA decode kernel. One block = one (key split, chunk of KV heads, tile of 4 packed query
// rows, sequence); its 4 warps serve hpb KV heads (warp % hpb) and, when Hkv < 4, several slots of
// the same head (warp / hpb), which take turns over the split's warp-iterations.
//
// Within a warp, kLanes lanes own one key (one 16-byte piece of the head dimension each: 8 elements
// of 2-byte storage, 4 of f32; two pieces for f32 with D > 128), so a warp-iteration covers 32 /
// kLanes consecutive keys of its head; a block-iteration reads the heads' rows of those keys
// together. Each lane group keeps its own online softmax per row (fp32, base 2): the score is
// reduced with log2(kLanes) xor shuffles and the running max only moves when a score exceeds it by
// more than kRescaleSlack (lazy rescale, warp-uniform branch), so a typical key costs one exp2 per
// row and no rescale of the outputs. Each lane copies its own K / V pieces of the next kStages - 1
// warp-iterations into a per-warp ring in shared memory with cp.async (sm_80+; 32 KiB in flight per
// block, where a register ring of 3 stages, all that 128 registers held, left HBM at ~0.5-0.7 of
// its copy rate) and reads back only what it copied, so a wait_group is the only synchronisation.
// Below sm_80 the copies are plain loads and stores (correct, not fast). At the end the lane groups
// are merged with shuffles, the slots of a head through shared memory, and the block writes the
// output or its split's partial (o, lse) for the merge kernel. No tensor cores, so it compiles for
// sm_61.
#pragma once

#include <cuda_fp16.h>

#include <climits>
#include <cmath>

#include "cuda/common/device_util.cuh"
#include "decode_launch.hpp"
#include "qwen3vl/cuda/check.cuh"

namespace qwen3vl::detail::decode_cuda {

// Warp-iterations in a warp's ring (stages of one 16-byte K and V piece a lane: 1 KiB a warp).
template <int kVecs>
constexpr int kStages = 8 / kVecs;
constexpr float kRescaleSlack = 8.0f;  // weights stay <= 2^8 between rescales
constexpr int kWarps = kDecodeWarps;

// Resident blocks per SM the register budget is sized for (128 registers a thread).
#define QWEN3VL_DECODE_MIN_BLOCKS 4

__device__ inline void to_floats(const uint4& raw, float* f, float) {
  f[0] = __uint_as_float(raw.x);
  f[1] = __uint_as_float(raw.y);
  f[2] = __uint_as_float(raw.z);
  f[3] = __uint_as_float(raw.w);
}
__device__ inline void to_floats(const uint4& raw, float* f, qwen3vl::half) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}
__device__ inline void to_floats(const uint4& raw, float* f, qwen3vl::bfloat16) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// 16 bytes of storage at p (valid elements of them: `valid`, the rest read as 0).
template <class T>
__device__ inline uint4 load16(const T* p, int valid, bool vector_ok) {
  constexpr int kElems = 16 / sizeof(T);
  if (vector_ok && valid == kElems) return __ldg(reinterpret_cast<const uint4*>(p));
  union {
    uint4 raw;
    T t[kElems];
  } u;
  u.raw = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int i = 0; i < kElems; ++i)
    if (i < valid) u.t[i] = p[i];
  return u.raw;
}

// kN query elements of type Q from p as floats (`valid` of them, the rest 0): whole 16-byte (or,
// for kN * sizeof(Q) == 8, 8-byte) vectors when `whole` (aligned, all kN valid), else element by
// element. The loads are independent and straight-line, so they are all in flight together.
template <class Q, int kN>
__device__ inline void load_q_run(const Q* p, int valid, bool whole, float* f) {
  constexpr int kBytes = kN * static_cast<int>(sizeof(Q));
  if (whole && valid >= kN) {
    if constexpr (kBytes >= 16) {
      constexpr int kPerVec = 16 / static_cast<int>(sizeof(Q));
#pragma unroll
      for (int c = 0; c < kBytes / 16; ++c)
        to_floats(__ldg(reinterpret_cast<const uint4*>(p) + c), f + c * kPerVec, Q{});
    } else {  // 8 bytes: four 2-byte elements
      const uint2 raw = __ldg(reinterpret_cast<const uint2*>(p));
      float both[8];
      to_floats(make_uint4(raw.x, raw.y, 0u, 0u), both, Q{});
#pragma unroll
      for (int x = 0; x < kN; ++x) f[x] = both[x];
    }
    return;
  }
#pragma unroll
  for (int x = 0; x < kN; ++x) f[x] = x < valid ? load_element(p, x, dtype_of<Q>::value) : 0.0f;
}

// 2^x in one MUFU instruction (flush-to-zero: weights below 2^-126 are 0 either way).
__device__ inline float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// 16 bytes from global to shared memory, asynchronously where the GPU can: `bytes` of them read
// (16 or 0), the rest zero-filled.
__device__ inline void copy16_async(uint4* dst, const void* src, int bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(bytes));
#else
  *dst = bytes > 0 ? __ldg(static_cast<const uint4*>(src)) : make_uint4(0, 0, 0, 0);
#endif
}
__device__ inline void commit_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int kPending>
__device__ inline void wait_copies() {  // all but the newest kPending groups have landed
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
#endif
}

// A lane's K and V pieces of key j into its slots of one ring stage (zeros for a key past the
// split or behind a bad block id, which is never read); returns whether the key is valid.
template <class T, int kLanes, int kVecs, bool kPaged>
__device__ inline bool load_stage(const DecodeArgs& a, int b, int kvh, int sub, int j, int ke,
                                  uint4* k_dst, uint4* v_dst) {
  constexpr int kElems = 16 / sizeof(T);
  int64_t major = b;
  int minor = j;
  bool ok = j < ke;
  if (kPaged && ok) {
    const int blk = a.block_shift >= 0 ? j >> a.block_shift : j / static_cast<int>(a.block_size);
    major = __ldg(a.table + b * a.table_stride[0] + kvh * a.table_stride_head +
                  blk * a.table_stride[1]);
    minor = j - blk * static_cast<int>(a.block_size);
    ok = major >= 0 && major < a.num_blocks;
  }
  if (!ok) major = minor = 0;  // a harmless address for the zero-byte copies
  const T* kp = static_cast<const T*>(a.k) + major * a.k_stride[0] + minor * a.k_stride[1] +
                kvh * a.k_stride[2];
  const T* vp = static_cast<const T*>(a.v) + major * a.v_stride[0] + minor * a.v_stride[1] +
                kvh * a.v_stride[2];
#pragma unroll
  for (int v = 0; v < kVecs; ++v) {
    const int e0 = (v * kLanes + sub) * kElems;
    const int valid = ok ? min(a.head_dim - e0, kElems) : 0;
    if (a.vector_loads) {  // whole aligned pieces (D a multiple of them): asynchronous
      copy16_async(k_dst + v * 32, kp + (valid > 0 ? e0 : 0), valid > 0 ? 16 : 0);
      copy16_async(v_dst + v * 32, vp + (valid > 0 ? e0 : 0), valid > 0 ? 16 : 0);
    } else {
      k_dst[v * 32] = valid > 0 ? load16(kp + e0, valid, false) : make_uint4(0, 0, 0, 0);
      v_dst[v * 32] = valid > 0 ? load16(vp + e0, valid, false) : make_uint4(0, 0, 0, 0);
    }
  }
  commit_copies();
  return ok;
}

template <class T, int kLanes, int kVecs, bool kPaged>
__global__ void __launch_bounds__(kDecodeThreads, QWEN3VL_DECODE_MIN_BLOCKS)
    decode_kernel(const DecodeArgs a) {
  constexpr int kElems = 16 / sizeof(T);
  constexpr int kPer = kVecs * kElems;  // head-dim elements per lane
  constexpr int kKeys = 32 / kLanes;    // keys per warp-iteration
  constexpr int kPadded = kLanes * kPer;
  constexpr int kRows = kDecodeRowTile;
  constexpr float kNegInf = -INFINITY;
  static_assert(kRows == 4 && kLanes >= 4, "the score reduce-scatter splits 4 rows over 4+ lanes");

  const int hpb = a.heads_per_block, slots = kWarps / hpb;
  const int split = blockIdx.x;
  const int chunk = blockIdx.y / a.row_tiles, tile = blockIdx.y % a.row_tiles;
  const int b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane % kLanes, key_in_step = lane / kLanes;
  const int local_head = warp % hpb, slot = warp / hpb;
  const int kvh = chunk * hpb + local_head;
  const bool head_ok = kvh < a.kv_heads;

  // This warp's head's length (per-head pages: the heads of a block may differ).
  int len = a.seq_lens[b * a.lens_stride + (head_ok ? kvh : 0) * a.lens_stride_head];
  len = len < 0 ? 0 : (len > a.capacity ? static_cast<int>(a.capacity) : len);
  const int per_split = (len + a.splits - 1) / a.splits;
  const int kb =
      static_cast<int>(min(static_cast<int64_t>(split) * per_split, static_cast<int64_t>(len)));
  const int ke =
      static_cast<int>(min(static_cast<int64_t>(kb) + per_split, static_cast<int64_t>(len)));
  // This warp's warp-iterations: it = slot, slot + slots, ...; iteration n covers keys
  // kb + it * kKeys + [0, kKeys).
  const int total_it = (ke - kb + kKeys - 1) / kKeys;
  const int my_it = total_it > slot ? (total_it - slot + slots - 1) / slots : 0;
  auto key_of = [&](int n) { return kb + (n * slots + slot) * kKeys + key_in_step; };

  // The ring: [warp][stage][K, V][vector][lane] 16-byte pieces; the merge reuses it at the end.
  constexpr int kStage = kStages<kVecs>;
  constexpr int kRingBytes = kWarps * kStage * 2 * kVecs * 32 * 16;
  constexpr int kMergeBytes = kWarps * kRows * (kPadded + 4) * 4;
  __shared__ uint4 smem[(kRingBytes > kMergeBytes ? kRingBytes : kMergeBytes) / 16];
  auto k_slot = [&](int stage) { return smem + ((warp * kStage + stage) * 2 * kVecs) * 32 + lane; };
  auto v_slot = [&](int stage) { return k_slot(stage) + kVecs * 32; };

  // Warp-iteration n into stage s; past the warp's last one an empty group holds its place
  // (zero-byte copies there cost ~1 us of issue at the end of every warp).
  auto refill = [&](int n, int s) {
    if (!head_ok || n >= my_it) return commit_copies(), false;
    return load_stage<T, kLanes, kVecs, kPaged>(a, b, kvh, sub, key_of(n), ke, k_slot(s),
                                                v_slot(s));
  };
  // The first stages' copies go out before anything else, then the queries are read.
  unsigned ok_bits = 0;  // bit s: stage s holds a valid key
#pragma unroll 1
  for (int s = 0; s < kStage; ++s) ok_bits |= static_cast<unsigned>(refill(s, s)) << s;

  // This tile's query rows: head (kvh * G + gi / R), new row gi % R, visible keys [0, end).
  // The dtype switch sits outside the loads (one straight-line run of vector loads per dtype);
  // with a per-element switch the 2-byte loads went out one at a time.
  float q[kRows][kPer];
  int end[kRows];
  int64_t q_off[kRows];
  bool q_live[kRows];
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    const int gi = tile * kRows + i;
    const bool active = head_ok && gi < a.group_rows;
    const int head = kvh * (a.heads / a.kv_heads) + gi / a.rows, r = gi % a.rows;
    end[i] = active ? len - a.rows + r + 1 : 0;
    q_live[i] = active;
    q_off[i] = active ? b * a.q_stride[0] + r * a.q_stride[1] + head * a.q_stride[2] : 0;
  }
  auto read_q = [&](auto tag) {
    using Q = decltype(tag);
#pragma unroll
    for (int i = 0; i < kRows; ++i)
#pragma unroll
      for (int v = 0; v < kVecs; ++v) {
        const int e0 = (v * kLanes + sub) * kElems;
        const int valid = !q_live[i] ? 0 : max(0, min(a.head_dim - e0, kElems));
        load_q_run<Q, kElems>(static_cast<const Q*>(a.q) + (valid > 0 ? q_off[i] + e0 : 0), valid,
                              a.q_vector, q[i] + v * kElems);
      }
  };
  switch (a.q_dtype) {
    case DType::kF16: read_q(qwen3vl::half{}); break;
    case DType::kBF16: read_q(qwen3vl::bfloat16{}); break;
    default: read_q(0.0f); break;
  }
#pragma unroll
  for (int i = 0; i < kRows; ++i)
#pragma unroll
    for (int x = 0; x < kPer; ++x) q[i][x] *= a.scale_log2;
  // Keys below all_end are seen by every live row of the tile; past it (the last R - 1 keys of a
  // sequence with R new rows) some rows do not see a key, and their zero weight must not multiply
  // its V (0 x Inf = NaN): those keys take the masked P V below.
  int all_end = INT_MAX;
#pragma unroll
  for (int i = 0; i < kRows; ++i) all_end = q_live[i] && end[i] < all_end ? end[i] : all_end;

  // After the score reduce-scatter, lane `sub` of a group holds the full score of one row, its
  // own: row_of(sub); the softmax state of row i lives in the lanes of that row (lane_of(i) is
  // one of them).
  constexpr int kHalf = kLanes / 2, kQuarter = kLanes / 4;
  const int own_row = (sub & kHalf ? 2 : 0) + (sub & kQuarter ? 1 : 0);
  auto lane_of = [](int i) { return (i >> 1) * kHalf + (i & 1) * kQuarter; };
  int own_end = end[0];
#pragma unroll
  for (int i = 1; i < kRows; ++i) own_end = own_row == i ? end[i] : own_end;
  float own_m = kNegInf, own_l = 0.0f, o[kRows][kPer];
#pragma unroll
  for (int i = 0; i < kRows; ++i)
#pragma unroll
    for (int x = 0; x < kPer; ++x) o[i][x] = 0.0f;

      // One copy of the loop body, not kStage: unrolled over the ring the kernel's code was ~130
      // KiB, past the SM's instruction cache, and warps stalled on instruction fetch.
#pragma unroll 1
  for (int n = 0; n < my_it; ++n) {
    {
      const int s = n & (kStage - 1);
      const int j = key_of(n);
      const bool ok = ok_bits >> s & 1u;
      wait_copies<kStage - 1>();  // this stage's group is the oldest

      float kf[kPer], vf[kPer];
#pragma unroll
      for (int v = 0; v < kVecs; ++v) {
        to_floats(k_slot(s)[v * 32], kf + v * kElems, T{});
        to_floats(v_slot(s)[v * 32], vf + v * kElems, T{});
      }
      // Partial dot products of the four rows, then a reduce-scatter over the group's lanes: the
      // first two xor steps halve the rows each lane carries, the rest finish its own row's sum.
      float dot[kRows];
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        float d0 = 0.0f, d1 = 0.0f;
#pragma unroll
        for (int x = 0; x < kPer; x += 2) {
          d0 = fmaf(q[i][x], kf[x], d0);
          d1 = fmaf(q[i][x + 1], kf[x + 1], d1);
        }
        dot[i] = d0 + d1;
      }
      const bool upper = sub & kHalf, odd = sub & kQuarter;
      float keep0 = upper ? dot[2] : dot[0], keep1 = upper ? dot[3] : dot[1];
      keep0 += __shfl_xor_sync(0xffffffffu, upper ? dot[0] : dot[2], kHalf);
      keep1 += __shfl_xor_sync(0xffffffffu, upper ? dot[1] : dot[3], kHalf);
      float score =
          (odd ? keep1 : keep0) + __shfl_xor_sync(0xffffffffu, odd ? keep0 : keep1, kQuarter);
#pragma unroll
      for (int off = kQuarter / 2; off > 0; off /= 2)
        score += __shfl_xor_sync(0xffffffffu, score, off);
      score = ok && j < own_end ? score : kNegInf;

      // Lazy rescale: the running max moves only when a score passes it by the slack; every lane
      // then scales its outputs by each row's factor.
      const bool grow = score > own_m + kRescaleSlack;
      if (__any_sync(0xffffffffu, grow)) {
        const float alpha = grow ? exp2_approx(own_m - score) : 1.0f;  // 0 from -inf
        own_m = grow ? score : own_m;
        own_l *= alpha;
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          const float row_alpha = __shfl_sync(0xffffffffu, alpha, lane_of(i), kLanes);
#pragma unroll
          for (int x = 0; x < kPer; ++x) o[i][x] *= row_alpha;
        }
      }
      const float p = score == kNegInf ? 0.0f : exp2_approx(score - own_m);
      own_l += p;
      if (__any_sync(0xffffffffu, ok && j >= all_end)) {  // warp-uniform: rare, last keys only
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          const float row_p = __shfl_sync(0xffffffffu, p, lane_of(i), kLanes);
          const bool hidden = !ok || j >= end[i];
#pragma unroll
          for (int x = 0; x < kPer; ++x) o[i][x] = hidden ? o[i][x] : fmaf(row_p, vf[x], o[i][x]);
        }
      } else {
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          const float row_p = __shfl_sync(0xffffffffu, p, lane_of(i), kLanes);
#pragma unroll
          for (int x = 0; x < kPer; ++x) o[i][x] = fmaf(row_p, vf[x], o[i][x]);
        }
      }
      // Refill this stage kStage warp-iterations ahead (an empty group past the end keeps the
      // count of groups per iteration fixed).
      const bool next_ok = refill(n + kStage, s);
      ok_bits = (ok_bits & ~(1u << s)) | static_cast<unsigned>(next_ok) << s;
    }
  }

  // Every lane gets each row's state, then the warp's lane groups are merged (xor over the group
  // bits): every group ends with the warp's state.
  float m[kRows], l[kRows];
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    m[i] = __shfl_sync(0xffffffffu, own_m, lane_of(i), kLanes);
    l[i] = __shfl_sync(0xffffffffu, own_l, lane_of(i), kLanes);
  }
#pragma unroll
  for (int off = kLanes; off < 32; off *= 2)
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const float m_o = __shfl_xor_sync(0xffffffffu, m[i], off);
      const float l_o = __shfl_xor_sync(0xffffffffu, l[i], off);
      const float mx = fmaxf(m[i], m_o);
      const float w = m[i] == kNegInf ? 0.0f : exp2f(m[i] - mx);
      const float w_o = m_o == kNegInf ? 0.0f : exp2f(m_o - mx);
      l[i] = l[i] * w + l_o * w_o;
#pragma unroll
      for (int x = 0; x < kPer; ++x) {
        const float o_o = __shfl_xor_sync(0xffffffffu, o[i][x], off);
        o[i][x] = o[i][x] * w + o_o * w_o;
      }
      m[i] = mx;
    }

  // Merge the slots of each head: per row, each slot's weight exp2(m - max) once, then the outputs.
  wait_copies<0>();
  __syncthreads();  // every warp is done with its ring
  using RowFloats = float[kWarps][kRows];
  auto& sm_o = *reinterpret_cast<float(*)[kWarps][kRows][kPadded]>(smem);
  RowFloats* tail =
      reinterpret_cast<RowFloats*>(reinterpret_cast<float*>(smem) + kWarps * kRows * kPadded);
  RowFloats &sm_m = tail[0], &sm_l = tail[1], &sm_inv = tail[2], &sm_lse = tail[3];
  if (key_in_step == 0) {
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
#pragma unroll
      for (int v = 0; v < kVecs; ++v)
#pragma unroll
        for (int x = 0; x < kElems; ++x)
          sm_o[warp][i][(v * kLanes + sub) * kElems + x] = o[i][v * kElems + x];
      if (sub == 0) {
        sm_m[warp][i] = m[i];
        sm_l[warp][i] = l[i];
      }
    }
  }
  __syncthreads();
  if (threadIdx.x < hpb * kRows) {  // one thread per (head, row): weights and LSE
    const int h = threadIdx.x / kRows, i = threadIdx.x % kRows;
    float mx = kNegInf;
    for (int sl = 0; sl < slots; ++sl) mx = fmaxf(mx, sm_m[sl * hpb + h][i]);
    float sum = 0.0f;
    for (int sl = 0; sl < slots; ++sl) {
      const float ms = sm_m[sl * hpb + h][i];
      const float w = mx == kNegInf || ms == kNegInf ? 0.0f : exp2f(ms - mx);
      sm_m[sl * hpb + h][i] = w;  // from here on: the slot's weight
      sum += sm_l[sl * hpb + h][i] * w;
    }
    const bool empty = sum == 0.0f;  // NaN (the row saw a NaN score) stays NaN
    sm_inv[h][i] = empty ? 0.0f : 1.0f / sum;
    sm_lse[h][i] = empty ? kNegInf : (mx + log2f(sum)) * kLn2;
  }
  __syncthreads();
  const int d = a.head_dim;
  const int heads_per_group = a.heads / a.kv_heads;
  for (int idx = threadIdx.x; idx < hpb * kRows * d; idx += kDecodeThreads) {
    const int h = idx / (kRows * d), i = idx / d % kRows, e = idx % d;
    const int gi = tile * kRows + i, out_kvh = chunk * hpb + h;
    if (gi >= a.group_rows || out_kvh >= a.kv_heads) continue;
    float acc = 0.0f;
    for (int sl = 0; sl < slots; ++sl)
      acc = fmaf(sm_m[sl * hpb + h][i], sm_o[sl * hpb + h][i][e], acc);
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

// Lanes per key from decode_lanes (one 16-byte piece a lane, two for f32 with D > 128), paged or
// contiguous, then launches.
template <class T>
Status launch_decode(const DecodeArgs& a, cudaStream_t stream) {
  using namespace decode_cuda;
  constexpr int kElems = 16 / sizeof(T);
  const dim3 grid(static_cast<unsigned>(a.splits),
                  static_cast<unsigned>(a.head_chunks * a.row_tiles),
                  static_cast<unsigned>(a.batch));
  const bool paged = a.table != nullptr;
  auto go = [&](auto kernel) {
    kernel<<<grid, kDecodeThreads, 0, stream>>>(a);
    return cuda_status(cudaGetLastError(), "launch of decode_kernel");
  };
#define QWEN3VL_DECODE_LAUNCH(lanes, vecs) \
  return paged ? go(decode_kernel<T, lanes, vecs, true>) : go(decode_kernel<T, lanes, vecs, false>)
  if constexpr (kElems == 4) {
    if (a.head_dim > 32 * kElems) QWEN3VL_DECODE_LAUNCH(32, 2);  // f32, D > 128
  }
  switch (decode_lanes(a.head_dim, kElems)) {
    case 4: QWEN3VL_DECODE_LAUNCH(4, 1);
    case 8: QWEN3VL_DECODE_LAUNCH(8, 1);
    case 16: QWEN3VL_DECODE_LAUNCH(16, 1);
    default: QWEN3VL_DECODE_LAUNCH(32, 1);
  }
#undef QWEN3VL_DECODE_LAUNCH
}

}  // namespace qwen3vl::detail
