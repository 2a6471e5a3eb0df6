// The fused flash forward kernel (FlashAttention-2 schedule, fp32 arithmetic, no tensor cores), one
// template for every tile configuration (flash_traits.cuh). Storage dtype, masks, varlen, GQA,
// soft-cap, LSE, query positions and block-sparse layouts are run-time arguments; only the tile
// shape and head_dim are compiled in. The K/V loop walks the tiles a KeyWalk lists (key_walk.cuh):
// the dense walk, or the column blocks of a block-sparse layout.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common/device_util.cuh"
#include "flash_registry.hpp"
#include "flash_traits.cuh"
#include "key_walk.cuh"

namespace qwen3vl::detail::flash {

// Four storage elements as raw bits: f32 in x..w, f16/bf16 packed two to a word in x, y. Fetched
// one chunk ahead and converted only when stored to shared memory, so the loads stay in flight.
struct Raw4 {
  uint32_t x, y, z, w;
};

// Loads 4 elements at `offset`; `valid` (<= 0: none) of them exist, the rest read as zero.
__device__ inline Raw4 load_raw4(const void* base, int64_t offset, DType t, bool vec, int valid) {
  Raw4 r{0u, 0u, 0u, 0u};
  if (valid <= 0) return r;
  if (t == DType::kF32) {
    const float* p = static_cast<const float*>(base) + offset;
    if (vec && valid >= 4) {
      const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
      return Raw4{u.x, u.y, u.z, u.w};
    }
    r.x = __float_as_uint(__ldg(p));
    if (valid > 1) r.y = __float_as_uint(__ldg(p + 1));
    if (valid > 2) r.z = __float_as_uint(__ldg(p + 2));
    if (valid > 3) r.w = __float_as_uint(__ldg(p + 3));
    return r;
  }
  const unsigned short* p = static_cast<const unsigned short*>(base) + offset;
  if (vec && valid >= 4) {
    const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
    r.x = u.x;
    r.y = u.y;
    return r;
  }
  uint32_t e[4] = {0u, 0u, 0u, 0u};
#pragma unroll
  for (int i = 0; i < 4; ++i)
    if (i < valid) e[i] = __ldg(p + i);
  r.x = e[0] | (e[1] << 16);
  r.y = e[2] | (e[3] << 16);
  return r;
}

__device__ inline float half_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

__device__ inline float4 to_float4(const Raw4& r, DType t) {
  switch (t) {
    case DType::kF16:
      return make_float4(half_bits_to_float(r.x & 0xffffu), half_bits_to_float(r.x >> 16),
                         half_bits_to_float(r.y & 0xffffu), half_bits_to_float(r.y >> 16));
    case DType::kBF16:
      return make_float4(__uint_as_float(r.x << 16), __uint_as_float(r.x & 0xffff0000u),
                         __uint_as_float(r.y << 16), __uint_as_float(r.y & 0xffff0000u));
    default:
      return make_float4(__uint_as_float(r.x), __uint_as_float(r.y), __uint_as_float(r.z),
                         __uint_as_float(r.w));
  }
}

// A Rows x Cols tile (Cols a multiple of 4) moved global -> registers -> shared memory by Threads
// threads, Slots quads each. Rows at or past rows_valid and columns at or past cols_valid are
// zeros.
template <int Rows, int Cols, int Threads>
struct TileIo {
  static constexpr int kQuadsPerRow = Cols / 4;
  static constexpr int kQuads = Rows * kQuadsPerRow;
  static constexpr int kSlots = (kQuads + Threads - 1) / Threads;
  static constexpr bool kExact = kQuads % Threads == 0;
  // A thread's slots then sit kRowStep rows apart in the same column: one base address per tile.
  static constexpr bool kLinear = kExact && Threads % kQuadsPerRow == 0;
  static constexpr int kRowStep = kLinear ? Threads / kQuadsPerRow : 0;

  // Whether fetch_full() may run: vector storage, every row and column of the tile present.
  __device__ static bool full(bool vec, int rows_valid, int cols_valid) {
    return kLinear && vec && rows_valid >= Rows && cols_valid >= Cols;
  }

  // The common case, with no per-element checks: one aligned vector load per slot.
  template <int N>
  __device__ static void fetch_full(Raw4 (&raw)[N], const void* base, int64_t offset,
                                    int64_t row_stride, DType t, int tid) {
    static_assert(N >= kSlots, "register slots");
    if constexpr (kLinear) {
      const int64_t first = offset + (tid / kQuadsPerRow) * row_stride + (tid % kQuadsPerRow) * 4;
      const int64_t step = kRowStep * row_stride;
      if (t == DType::kF32) {
        const float* p = static_cast<const float*>(base) + first;
#pragma unroll
        for (int s = 0; s < kSlots; ++s, p += step) {
          const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
          raw[s] = Raw4{u.x, u.y, u.z, u.w};
        }
      } else {
        const unsigned short* p = static_cast<const unsigned short*>(base) + first;
#pragma unroll
        for (int s = 0; s < kSlots; ++s, p += step) {
          const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
          raw[s] = Raw4{u.x, u.y, 0u, 0u};
        }
      }
    }
  }

  // Any tile: rows at or past rows_valid and columns at or past cols_valid read as zero.
  template <int N>
  __device__ static void fetch(Raw4 (&raw)[N], const void* base, int64_t offset, int64_t row_stride,
                               int rows_valid, int cols_valid, DType t, bool vec, int tid) {
    static_assert(N >= kSlots, "register slots");
    if (full(vec, rows_valid, cols_valid)) {
      fetch_full(raw, base, offset, row_stride, t, tid);
      return;
    }
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const int quad = tid + s * Threads;
      const int row = quad / kQuadsPerRow, col = (quad % kQuadsPerRow) * 4;
      raw[s] = Raw4{0u, 0u, 0u, 0u};
      if ((kExact || quad < kQuads) && row < rows_valid)
        raw[s] = load_raw4(base, offset + row * row_stride + col, t, vec, cols_valid - col);
    }
  }

  // Converts and stores the slots (times `scale`); rows get 4 floats of skew per group of
  // SkewRows rows (0: none). The dtype is decided once, outside the slot loop. With `live`, rows
  // whose live[row] is not `epoch` are stored as zeros.
  template <int SkewRows, int N>
  __device__ static void store(const Raw4 (&raw)[N], float* dst, int ld, DType t, float scale,
                               int tid, const uint32_t* live = nullptr, uint32_t epoch = 0) {
    switch (t) {
      case DType::kF16:
        store_as<DType::kF16, SkewRows>(raw, dst, ld, scale, tid, live, epoch);
        break;
      case DType::kBF16:
        store_as<DType::kBF16, SkewRows>(raw, dst, ld, scale, tid, live, epoch);
        break;
      default: store_as<DType::kF32, SkewRows>(raw, dst, ld, scale, tid, live, epoch); break;
    }
  }

  template <DType T, int SkewRows, int N>
  __device__ static void store_as(const Raw4 (&raw)[N], float* dst, int ld, float scale, int tid,
                                  const uint32_t* live, uint32_t epoch) {
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const int quad = tid + s * Threads;
      if (!kExact && quad >= kQuads) continue;
      const int row = kLinear ? tid / kQuadsPerRow + s * kRowStep : quad / kQuadsPerRow;
      const int col = kLinear ? (tid % kQuadsPerRow) * 4 : (quad % kQuadsPerRow) * 4;
      float4 f = to_float4(raw[s], T);
      if (live != nullptr && live[row] != epoch) f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      f.x *= scale;
      f.y *= scale;
      f.z *= scale;
      f.w *= scale;
      const int skew = SkewRows ? (row / (SkewRows ? SkewRows : 1)) * 4 : 0;
      *reinterpret_cast<float4*>(dst + row * ld + skew + col) = f;
    }
  }
};

// Stores 4 consecutive elements with one aligned vector store.
__device__ inline void store_quad(void* base, int64_t offset, DType t, float x, float y, float z,
                                  float w) {
  if (t == DType::kF32) {
    *reinterpret_cast<float4*>(static_cast<float*>(base) + offset) = make_float4(x, y, z, w);
    return;
  }
  const float f[4] = {x, y, z, w};
  uint32_t e[4];
#pragma unroll
  for (int k = 0; k < 4; ++k)
    e[k] = t == DType::kF16 ? __half_as_ushort(__float2half_rn(f[k])) : to_bf16(f[k]).bits;
  *reinterpret_cast<uint2*>(static_cast<uint16_t*>(base) + offset) =
      make_uint2(e[0] | (e[1] << 16), e[2] | (e[3] << 16));
}

template <int Vw>
__device__ inline void load_shared(const float* p, float (&v)[Vw]) {
  if constexpr (Vw == 4) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
  } else if constexpr (Vw == 2) {
    const float2 f = *reinterpret_cast<const float2*>(p);
    v[0] = f.x, v[1] = f.y;
  } else {
    v[0] = *p;
  }
}

// A compile-time bool for generic lambdas (std::integral_constant needs <type_traits> in device
// code; this is all that is used).
template <bool B>
struct BoolTag {
  static constexpr bool value = B;
};

template <int Tx>
__device__ inline float row_max(float x) {
#pragma unroll
  for (int offset = Tx / 2; offset > 0; offset /= 2)
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

template <int Tx>
__device__ inline float row_sum(float x) {
#pragma unroll
  for (int offset = Tx / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// One block: kBlockM query rows of one (sequence, head).
template <class T>
__device__ __forceinline__ void flash_forward_block(const AttentionArgs& a) {
  constexpr int kTx = T::kThreadsX, kRm = T::kRowsPerThread, kRn = T::kKeysPerThread;
  constexpr int kBm = T::kBlockM, kBn = T::kBlockN, kKc = T::kKChunk, kJc = T::kVChunk;
  constexpr int kVw = T::kVecWidth, kRd = T::kColGroups, kOc = kVw * kRd;
  constexpr bool kStaticD = T::kHeadDim != 0;
  // P V over a V chunk fully unrolled for float4 columns (faster at D=128 on sm_90);
  // scalar-column tiles (D 72, 80) spill when fully unrolled.
  constexpr int kPvUnroll = kJc <= 16 && kVw == 4 ? kJc : 4;
  using KIo = TileIo<kBn, kKc, T::kThreads>;
  using VIo = TileIo<kJc, T::kDo, T::kThreads>;
  using QIo = TileIo<kBm, kKc, T::kThreads>;
  constexpr int kSlots = KIo::kSlots > VIo::kSlots ? KIo::kSlots : VIo::kSlots;
  constexpr int kSlotsAll = kSlots > QIo::kSlots ? kSlots : QIo::kSlots;
  const float kNegInf = -INFINITY;

  extern __shared__ float4 shared_quads[];
  float* const s_q = reinterpret_cast<float*>(shared_quads);
  float* const s_p = s_q + T::kQFloats;
  float* const s_chunk = s_p + T::kPFloats;

  const int tid = threadIdx.x, ty = tid / kTx, tx = tid % kTx;
  const int64_t b = blockIdx.z;
  const int h = blockIdx.x;
  // Heads vary fastest and query tiles run in reverse: under a causal mask every head's longest
  // tiles are dispatched first, so the tail of the grid is short.
  const int64_t i0 = static_cast<int64_t>(gridDim.y - 1 - blockIdx.y) * kBm;
  const DeviceSpan sp = head_span(a, b, h);
  if (i0 >= sp.q_len) return;  // varlen: this sequence is shorter than the grid
  const int head_dim = kStaticD ? T::kHeadDim : a.head_dim;
  const int64_t kv_head = h / a.group;
  const int rows_valid = static_cast<int>(sp.q_len - i0 < kBm ? sp.q_len - i0 : kBm);

  // Keys any row of this block can see: structural masks give each row a contiguous range whose
  // ends never decrease with the row (q_positions are non-decreasing), so the union is
  // [first.begin, last.end). Tiles outside it are never touched; tiles inside [last.begin,
  // first.end) that the layout lists for every row need no per-element mask.
  const KeyRange first = row_keys(a, sp, b, h, i0);
  const KeyRange last = row_keys(a, sp, b, h, i0 + rows_valid - 1);
  const int64_t k_begin = first.begin;
  const int64_t k_end = last.end < sp.k_len ? last.end : sp.k_len;
  const int64_t full_lo = last.begin, full_hi = first.end;
  static_assert(kBm % 16 == 0, "row blocks are multiples of 16 rows");
  __shared__ KeyWalk<kBn, kBm / 16> walk;  // thread 0 walks; tiles n + 1 and n alternate in
  __shared__ KeyTile walked[2];            // walked[] (written at the top of tile n)
  // V rows no query row weighs (every score -inf, e.g. under an additive -inf) are stored as
  // zeros in masked tiles: their p = 0 must not meet a NaN there (0 x NaN). live_keys[j] holds
  // n + 1 when some row of tile n weighs key j.
  __shared__ uint32_t live_keys[kBn];
  if (tid == 0) {
    walk.init(a, b, kv_head, i0, rows_valid, k_begin, k_end);
    walked[0] = walk.next();
  }
  for (int j = tid; j < kBn; j += T::kThreads) live_keys[j] = 0;
  const int first_row_block = a.layout_indptr ? static_cast<int>(i0 / a.block_q) : 0;

  const bool vec = a.vector_io;
  const DType dt = a.dtype;
  const int n_kc = kStaticD ? T::kDq / kKc : (head_dim + kKc - 1) / kKc;
  constexpr int n_vc = kBn / kJc;
  const int64_t k_base = b * a.k.batch + sp.k_start * a.k.token + kv_head * a.k.head;
  const int64_t v_base = b * a.v.batch + sp.k_start * a.v.token + kv_head * a.v.head;

  // Q tile, scaled so that scores come out in log2 units (or pre-divided by the soft-cap).
  const float q_scale = a.softcap > 0.0f ? a.scale / a.softcap : a.scale * kLog2e;
  {
    Raw4 raw[kSlotsAll];
    const int64_t q_base = b * a.q.batch + (sp.q_start + i0) * a.q.token + h * a.q.head;
    for (int c = 0; c < n_kc; ++c) {
      QIo::fetch(raw, a.q.data, q_base + c * kKc, a.q.token, rows_valid, head_dim - c * kKc, dt,
                 vec, tid);
      QIo::template store<kRm>(raw, s_q + c * kKc, T::kQLd, dt, q_scale, tid);
    }
  }

  Raw4 raw[kSlots];
  // Chunk c of a tile: c < n_kc is K columns [c*kKc, (c+1)*kKc), then V rows in steps of kJc.
  auto fetch = [&](const KeyTile& tile, int c) {
    const int64_t t0 = tile.t0;
    const int rows = tile.keys;
    if (c < n_kc) {
      KIo::fetch(raw, a.k.data, k_base + t0 * a.k.token + c * kKc, a.k.token, rows,
                 head_dim - c * kKc, dt, vec, tid);
    } else {
      const int r0 = (c - n_kc) * kJc;
      VIo::fetch(raw, a.v.data, v_base + (t0 + r0) * a.v.token, a.v.token, rows - r0, head_dim, dt,
                 vec, tid);
    }
  };
  auto store = [&](int c, float* buf, bool zero_dead = false, uint32_t epoch = 0) {
    if (c < n_kc)
      KIo::template store<0>(raw, buf, T::kKLd, dt, 1.0f, tid);
    else
      VIo::template store<0>(raw, buf, T::kVLd, dt, 1.0f, tid,
                             zero_dead ? live_keys + (c - n_kc) * kJc : nullptr, epoch);
  };
  auto chunk_buffer = [&](int stage) { return s_chunk + stage * T::kChunkFloats; };

  float o[kRm][kOc];
  float m[kRm], l[kRm];  // running max (log2 units) and this thread's share of the row sum
#pragma unroll
  for (int i = 0; i < kRm; ++i) {
    m[i] = kNegInf;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < kOc; ++c) o[i][c] = 0.0f;
  }

  __syncthreads();  // walked[0]
  if (walked[0].keys > 0) {
    fetch(walked[0], 0);
    store(0, chunk_buffer(0));
  }
  __syncthreads();
  int stage = 0;
  const float* q_rows = s_q + (ty * kRm) * T::kQLd + ty * 4;

  // The tiles are read from shared memory where used (held in registers they cost spills).
  for (int n = 0; walked[n & 1].keys > 0; ++n) {
    const KeyTile& tile = walked[n & 1];
    const int64_t t0 = tile.t0;
    if (tid == 0) walked[(n + 1) & 1] = walk.next();  // read by all after the P barrier

    // S = Q K^T over the K chunks.
    float s[kRm][kRn];
#pragma unroll
    for (int i = 0; i < kRm; ++i)
#pragma unroll
      for (int j = 0; j < kRn; ++j) s[i][j] = 0.0f;
    for (int c = 0; c < n_kc; ++c) {
      fetch(tile, c + 1);  // the next K chunk, or V chunk 0
      const float* kb = chunk_buffer(stage);
      const float* qb = q_rows + c * kKc;
#pragma unroll 2
      for (int kk = 0; kk < kKc; kk += 4) {
        float4 kv[kRn];
#pragma unroll
        for (int j = 0; j < kRn; ++j)
          kv[j] = *reinterpret_cast<const float4*>(kb + (tx + j * kTx) * T::kKLd + kk);
#pragma unroll
        for (int i = 0; i < kRm; ++i) {
          const float4 qv = *reinterpret_cast<const float4*>(qb + i * T::kQLd + kk);
#pragma unroll
          for (int j = 0; j < kRn; ++j) {
            s[i][j] = fmaf(qv.x, kv[j].x, s[i][j]);
            s[i][j] = fmaf(qv.y, kv[j].y, s[i][j]);
            s[i][j] = fmaf(qv.z, kv[j].z, s[i][j]);
            s[i][j] = fmaf(qv.w, kv[j].w, s[i][j]);
          }
        }
      }
      if (c + 1 < n_kc) {  // V chunk 0 is stored after P, under the same barrier
        store(c + 1, chunk_buffer(stage ^ 1));
        __syncthreads();
        stage ^= 1;
      }
    }

    // Online softmax in log2 units; masked entries become -inf (NaN scores of hidden keys too).
    if (a.softcap > 0.0f) {
      const float cap = a.softcap * kLog2e;
#pragma unroll
      for (int i = 0; i < kRm; ++i)
#pragma unroll
        for (int j = 0; j < kRn; ++j) s[i][j] = cap * tanhf(s[i][j]);
    }
    const bool masked =
        a.mask != nullptr || t0 < full_lo || t0 + kBn > full_hi || tile.keys < kBn || !tile.whole;
    if (masked) {
#pragma unroll
      for (int i = 0; i < kRm; ++i) {
        const int64_t row = i0 + ty * kRm + i;
        const KeyRange r = row_keys(a, sp, b, h, row);
        // The granules this row's block lists (bit 4 g); the dense walk lists all.
        const int row_block = a.layout_indptr ? static_cast<int>(row) / a.block_q : 0;
        const uint32_t listed = tile.allow >> ((row_block - first_row_block) & 3);
#pragma unroll
        for (int j = 0; j < kRn; ++j) {
          const int key_in_tile = tx + j * kTx;
          const int64_t key = t0 + key_in_tile;
          const bool visible = key >= r.begin && key < r.end && row < sp.q_len &&
                               key_in_tile < tile.keys && ((listed >> (key_in_tile / 16 * 4)) & 1u);
          float x = s[i][j];
          if (a.mask != nullptr && visible) {  // an additive -inf hides even a NaN score
            const float add = load_mask(a, b, h, row, key);
            x = add == kNegInf ? kNegInf : x + kLog2e * add;
          }
          s[i][j] = visible ? x : kNegInf;
        }
      }
#pragma unroll
      for (int j = 0; j < kRn; ++j) {
        bool weighed = false;
#pragma unroll
        for (int i = 0; i < kRm; ++i) weighed = weighed || s[i][j] != kNegInf;  // NaN: weighed
        if (weighed) atomicMax(live_keys + tx + j * kTx, static_cast<uint32_t>(n + 1));
      }
    }
#pragma unroll
    for (int i = 0; i < kRm; ++i) {
      float mx = s[i][0];
#pragma unroll
      for (int j = 1; j < kRn; ++j) mx = fmaxf(mx, s[i][j]);
      const float m_new = fmaxf(m[i], row_max<kTx>(mx));
      const float m_use = m_new == kNegInf ? 0.0f : m_new;  // nothing visible yet: p = 0, no NaN
      const float alpha = exp2f(m[i] - m_use);
      m[i] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kRn; ++j) {
        // Masked tiles mark a hidden key's p as -0 (exp2 of -inf is +0), which P V skips below.
        const float p = exp2f(s[i][j] - m_use);
        s[i][j] = masked && s[i][j] == kNegInf ? -0.0f : p;
        sum += s[i][j];
      }
      l[i] = l[i] * alpha + sum;
#pragma unroll
      for (int c = 0; c < kOc; ++c) o[i][c] *= alpha;
    }
    // P^T into shared memory: row `key`, the thread's kRm query rows contiguous.
#pragma unroll
    for (int j = 0; j < kRn; ++j)
#pragma unroll
      for (int i = 0; i < kRm; i += 4)
        *reinterpret_cast<float4*>(s_p + (tx + j * kTx) * T::kPLd + ty * kRm + i) =
            make_float4(s[i][j], s[i + 1][j], s[i + 2][j], s[i + 3][j]);
    const uint32_t epoch = static_cast<uint32_t>(n + 1);
    if (masked) __syncthreads();  // live_keys of this tile complete
    store(n_kc, chunk_buffer(stage ^ 1), masked, epoch);
    __syncthreads();
    stage ^= 1;

    // O += P V over the V chunks; the last one fetches the next tile's first K chunk. In masked
    // tiles a key some rows see and others do not is stored, and the zero p of the rows that do
    // not see it must not multiply its V: 0 x Inf = NaN would reach them. Those p are -0 (set
    // above) and skipped there; tiles every row sees fully take the plain FMA.
    const KeyTile& next = walked[(n + 1) & 1];
    auto pv = [&](const float* vb, const float* pb, auto skip_hidden) {
      constexpr bool kSkip = decltype(skip_hidden)::value;
#pragma unroll(kPvUnroll)
      for (int jj = 0; jj < kJc; ++jj) {
        float p[kRm];
#pragma unroll
        for (int i = 0; i < kRm; i += 4) {
          const float4 f = *reinterpret_cast<const float4*>(pb + jj * T::kPLd + i);
          p[i] = f.x, p[i + 1] = f.y, p[i + 2] = f.z, p[i + 3] = f.w;
        }
#pragma unroll
        for (int g = 0; g < kRd; ++g) {
          if (!kStaticD && g * kTx * kVw >= head_dim) break;
          float v[kVw];
          load_shared<kVw>(vb + jj * T::kVLd + g * kTx * kVw + tx * kVw, v);
#pragma unroll
          for (int i = 0; i < kRm; ++i) {
            const bool hidden = kSkip && __float_as_uint(p[i]) == 0x80000000u;
#pragma unroll
            for (int e = 0; e < kVw; ++e)
              o[i][g * kVw + e] = hidden ? o[i][g * kVw + e] : fmaf(p[i], v[e], o[i][g * kVw + e]);
          }
        }
      }
    };
    for (int vc = 0; vc < n_vc; ++vc) {
      const bool next_v = vc + 1 < n_vc;
      const bool has_next = next_v || next.keys > 0;
      if (next_v)
        fetch(tile, n_kc + vc + 1);
      else if (has_next)
        fetch(next, 0);
      const float* vb = chunk_buffer(stage);
      const float* pb = s_p + (vc * kJc) * T::kPLd + ty * kRm;
      if (masked)
        pv(vb, pb, BoolTag<true>{});
      else
        pv(vb, pb, BoolTag<false>{});
      if (next_v)
        store(n_kc + vc + 1, chunk_buffer(stage ^ 1), masked, epoch);
      else if (has_next)
        store(0, chunk_buffer(stage ^ 1));
      __syncthreads();
      stage ^= 1;
    }
  }

  // out = O / l (0 for rows that saw no key), lse = ln(sum exp) (-inf for those rows).
  const int64_t o_base = b * a.out.batch + sp.q_start * a.out.token + h * a.out.head;
#pragma unroll
  for (int i = 0; i < kRm; ++i) {
    const float sum = row_sum<kTx>(l[i]);
    const int64_t row = i0 + ty * kRm + i;
    if (row >= sp.q_len) continue;
    const bool empty = sum == 0.0f;  // a NaN sum (the row saw a NaN) is not empty: NaN out
    const float inv = empty ? 0.0f : 1.0f / sum;
    const int64_t off = o_base + row * a.out.token;
#pragma unroll
    for (int g = 0; g < kRd; ++g) {
      const int col = g * kTx * kVw + tx * kVw;
      if (col >= head_dim) break;
      bool stored = false;
      if constexpr (kVw == 4) {
        if (vec) {
          store_quad(a.out.data, off + col, dt, o[i][g * 4] * inv, o[i][g * 4 + 1] * inv,
                     o[i][g * 4 + 2] * inv, o[i][g * 4 + 3] * inv);
          stored = true;
        }
      }
      if (!stored) {
#pragma unroll
        for (int e = 0; e < kVw; ++e)
          if (col + e < head_dim)
            store_element(a.out.data, off + col + e, dt, o[i][g * kVw + e] * inv);
      }
    }
    if (a.lse != nullptr && tx == 0)
      a.lse[b * a.lse_batch + h * a.lse_head + (sp.q_start + row) * a.lse_token] =
          empty ? kNegInf : (m[i] + log2f(sum)) * kLn2;
  }
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
#define QWEN3VL_FLASH_MIN_BLOCKS(T) T::kMinBlocksSm70
#else
#define QWEN3VL_FLASH_MIN_BLOCKS(T) T::kMinBlocks
#endif

// Grid: x = query heads, y = query tiles of kBlockM rows (last first), z = sequences. With
// gathered rows (AttentionArgs::head_cu_q) a head's tiles cover its own rows of the sequence.
template <class T>
__global__ void __launch_bounds__(T::kThreads, QWEN3VL_FLASH_MIN_BLOCKS(T))
    flash_forward_kernel(const AttentionArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
  // Before Volta a block gets at most 48 KB of shared memory: the host never launches these tiles
  // there, so the sm_6x build carries only a trap for them.
  if constexpr (T::kSmemBytes > 48 * 1024) {
    __trap();
  } else
#endif
  {
    flash_forward_block<T>(a);
  }
}

template <TileConfig C, int D>
KernelInfo kernel_info() {
  using T = Tiles<C, D>;
  KernelInfo info;
  info.kernel = &flash_forward_kernel<T>;
  info.threads = T::kThreads;
  info.block_m = T::kBlockM;
  info.block_n = T::kBlockN;
  info.smem_bytes = T::kSmemBytes;
  info.head_dim = T::kHeadDim;
  info.max_head_dim = T::kHeadDim ? T::kHeadDim : T::kDq;
  return info;
}

}  // namespace qwen3vl::detail::flash

// One translation unit per head_dim instantiates both tile configurations.
#define QWEN3VL_FLASH_INSTANTIATE(D)                          \
  namespace qwen3vl::detail::flash {                          \
  template KernelInfo kernel_info<TileConfig::kGeneric, D>(); \
  template KernelInfo kernel_info<TileConfig::kCompact, D>(); \
  }
