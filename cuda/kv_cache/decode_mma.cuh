// The tensor-core CUDA decode kernel (sm_80+, f16 / bf16 caches and queries of the same type, D a
// multiple of 16 up to 128, 16-byte aligned rows); everything else takes decode_kernel.cuh's
// CUDA-core path. The default where it applies (CudaDecodeOptions::tensor_cores = false turns it
// off, for comparisons); its times are in docs/performance.md "Decode".
//
// One block = one (key split, chunk of hpb KV heads, tile of 16 packed query rows, sequence); warp
// w of kWarps (8, or 4 with two blocks a SM) serves head w % hpb, and the kWarps / hpb warps of a
// head (its slots) take turns over the split's 16-key tiles. hpb is 1 by default (a block's warps
// read 8 consecutive tiles of one head); 8 heads a block (whole token rows) measured slower. Each
// warp streams its tiles through its own ring of kMmaStages tiles (tile 0 first, see below) in
// shared memory filled by cp.async, 16 lanes per 256-byte key row (load_tile). Per tile, with
// mma.sync m16n8k16 (f32 accumulation): S = Q K^T (Q: the 16 rows as the A operand, kept in
// registers; K through ldmatrix), the online softmax on S's accumulator fragments (base 2, lazy
// rescale: the running max moves only when a score passes it by kMmaRescaleSlack), P rounded to the
// cache's type as the A operand of O += P V (V through ldmatrix.trans). That is 32 MMAs and 16
// ldmatrix per 8 KiB of K/V at D 128 where the CUDA-core kernel issues ~140 instructions per KiB.
// The query has the cache's type (f32 queries take the CUDA-core path, which keeps them exact). For
// bf16, whose 8 significant bits would cost ~1e-3 of relative error in P, P is split into a high
// and a low bf16 part (two P V MMAs), so P keeps ~16 bits as f16's P does 11. Rows are padded with
// ldmatrix-friendly 16 bytes (an odd count of 16-byte pieces a row: the 8 rows an ldmatrix phase
// reads fall in 8 different bank groups). At the end the slots of a head are merged through shared
// memory (one warp a live row) and the block writes the output or its split's partial, the [B, Hq,
// R, splits, D] layout the merge kernel reads. (Merging the splits inside this kernel, by its last
// block or through a thread-block cluster, measured slower than the separate merge kernel:
// docs/perf-log/code-notes.md.)
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/common/device_util.cuh"
#include "decode_kernel.cuh"  // copy16_async, commit_copies, wait_copies, exp2_approx
#include "decode_launch.hpp"

namespace qwen3vl::detail::decode_mma {

using decode_cuda::commit_copies;
using decode_cuda::copy16_async;
using decode_cuda::exp2_approx;
using decode_cuda::wait_copies;

constexpr int kKeys = 16;  // keys per tile (the MMA's K for P V, 2 x its N for Q K^T)
constexpr float kMmaRescaleSlack = 8.0f;  // P <= 2^8: exact enough in f16 / bf16, no overflow

__host__ __device__ inline constexpr int row_halves(int head_dim) {
  return head_dim + 8;
}  // padded row, 2-byte elements

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800

template <class T>
__device__ inline uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, qwen3vl::bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}
template <class T>
__device__ inline float round_trip(float x) {  // x rounded to T and back
  if constexpr (std::is_same_v<T, qwen3vl::bfloat16>)
    return __bfloat162float(__float2bfloat16_rn(x));
  else
    return __half2float(__float2half_rn(x));
}

// A 2-byte element of T (f16 or bf16) by its bits: Inf or NaN (all-ones exponent), and its value.
template <class T>
__device__ inline bool non_finite_bits(uint16_t x) {
  if constexpr (std::is_same_v<T, qwen3vl::bfloat16>)
    return (x & 0x7f80u) == 0x7f80u;
  else
    return (x & 0x7c00u) == 0x7c00u;
}
template <class T>
__device__ inline float bits_to_float(uint16_t x) {
  if constexpr (std::is_same_v<T, qwen3vl::bfloat16>)
    return __uint_as_float(static_cast<uint32_t>(x) << 16);
  else
    return __half2float(__ushort_as_half(x));
}

// d += a * b for one m16n8k16 tile (a: 4 registers of the 16x16 A operand, b: 2 of the 16x8 B).
template <class T>
__device__ inline void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, qwen3vl::bfloat16>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 matrices of 2-byte elements from shared memory; lane L gives matrix L / 8's row L % 8.
template <bool kTrans>
__device__ inline void ldmatrix4(uint32_t (&r)[4], const void* row) {
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(p));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(p));
}

#endif

// The warp copies the tile of keys [start, start + 16) into the K and V tiles, 16-byte piece
// lane + 32 i of the tile's flattened [key][piece] order per copy instruction: at D 128 the 16
// lanes of a key read its whole 256-byte row, so one instruction reads 4 whole 128-byte lines
// (a lane per key read 32 bytes of each of 16 rows, ~17% slower at long caches).
// Block sizes are multiples of 16 (validated) and tiles start at multiples of 16, so a tile lies
// in one page: one block-table entry a tile (TilePages). Keys past `ke` or behind a bad block id
// are zero-filled (P V then adds exact zeros). Returns the tile's valid keys, bit k for key k.
template <bool kPaged>
__device__ inline int tile_page(const DecodeArgs& a, int b, int kvh, bool live, int start, int ke) {
  if (!kPaged || !live || start >= ke) return b;  // contiguous: the sequence is the major index
  const int blk =
      a.block_shift >= 0 ? start >> a.block_shift : start / static_cast<int>(a.block_size);
  return __ldg(a.table + b * a.table_stride[0] + kvh * a.table_stride_head +
               blk * a.table_stride[1]);
}

// A warp's page of each of its tiles, 32 tiles a batch (lane j: tile 32 k + j), the next batch
// read while the current one serves, so no copy waits on a block-table read (one read a tile,
// even issued a tile ahead, queued behind the stream in L2 and made paged caches ~20% slower).
template <bool kPaged, class StartOf>
struct TilePages {
  const DecodeArgs& a;
  int b, kvh, my_tiles, ke;
  StartOf start_of;
  int now = 0, next = 0, batch = -1;  // `now` holds tiles 32 batch ..
  __device__ int read(int first) const {
    const int n = first + static_cast<int>(threadIdx.x % 32);
    return tile_page<kPaged>(a, b, kvh, n < my_tiles, start_of(n), ke);
  }
  // Tile n's page; n never decreases between calls and moves by at most one batch.
  __device__ int operator()(int n) {
    if (!kPaged) return b;
    if (n >> 5 != batch) {  // warp-uniform
      now = batch < 0 ? read(n & ~31) : next;
      batch = n >> 5;
      next = read((batch + 1) * 32);
    }
    return __shfl_sync(0xffffffffu, now, n & 31);
  }
};

template <class T, int kMaxSteps, bool kPaged>
__device__ inline unsigned load_tile(const DecodeArgs& a, int page, int kvh, int start, int ke,
                                     T* k_tile, T* v_tile) {
  const int lane = threadIdx.x % 32;
  const int pieces = a.head_dim / 8, stride = row_halves(a.head_dim);  // even: D % 16 == 0
  const int count = ke - start;
  unsigned valid = count <= 0 ? 0u : count >= kKeys ? 0xffffu : (1u << count) - 1u;
  int64_t major = page;
  int minor0 = start;
  if (kPaged && valid) {
    const int size = static_cast<int>(a.block_size);
    minor0 = a.block_shift >= 0 ? start & (size - 1) : start % size;
    if (major < 0 || major >= a.num_blocks) valid = 0u;
  }
  if (!valid) major = minor0 = 0;  // a harmless address for the zero-byte copies
  const T* k_row = static_cast<const T*>(a.k) + major * a.k_stride[0] + minor0 * a.k_stride[1] +
                   kvh * a.k_stride[2];
  const T* v_row = static_cast<const T*>(a.v) + major * a.v_stride[0] + minor0 * a.v_stride[1] +
                   kvh * a.v_stride[2];
  const int key_step = 32 / pieces, piece_step = 32 % pieces;
  int key = lane / pieces, c = lane % pieces;
#pragma unroll
  for (int i = 0; i < kMaxSteps; ++i) {  // pieces / 2 = D / 16 copy instructions, straight-line
    if (i >= pieces / 2) break;
    const int bytes = valid >> key & 1u ? 16 : 0;
    const int64_t at = bytes ? key * a.k_stride[1] + c * 8 : 0,
                  v_at = bytes ? key * a.v_stride[1] + c * 8 : 0;
    copy16_async(reinterpret_cast<uint4*>(k_tile + key * stride + c * 8), k_row + at, bytes);
    copy16_async(reinterpret_cast<uint4*>(v_tile + key * stride + c * 8), v_row + v_at, bytes);
    key += key_step;
    c += piece_step;
    if (c >= pieces) c -= pieces, ++key;
  }
  commit_copies();
  return valid;
}

template <class T, int kWarps, int kMaxSteps, bool kPaged>
__global__ void __launch_bounds__(32 * kWarps, mma_blocks_per_sm(kWarps))
    decode_mma_kernel(const DecodeArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kStages = kMmaStages;
  constexpr float kNegInf = -INFINITY;
  const int d = a.head_dim, steps = d / 16, stride = row_halves(d);
  const int split = blockIdx.x;
  const int chunk = a.row_tiles == 1 ? blockIdx.y : blockIdx.y / a.row_tiles;
  const int tile = blockIdx.y - chunk * a.row_tiles;
  const int b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // hpb and slots are powers of two: shifts and masks, not divisions (the prologue is on the
  // critical path of short caches).
  const int hpb = a.heads_per_block, hpb_shift = __ffs(hpb) - 1, slots = kWarps >> hpb_shift,
            slot = warp >> hpb_shift;
  const int kvh = chunk * hpb + (warp & (hpb - 1));
  const bool head_ok = kvh < a.kv_heads;
  const int g = lane >> 2, t = lane & 3;  // the MMA fragments' row group and thread-in-group

  // This warp's head's length (per-head pages: the heads of a block may differ).
  int len = a.seq_lens[b * a.lens_stride + (head_ok ? kvh : 0) * a.lens_stride_head];
  len = len < 0 ? 0 : (len > a.capacity ? static_cast<int>(a.capacity) : len);
  // Splits of whole tiles, so every tile starts at a multiple of 16 keys.
  const int per_split = ((len + a.splits - 1) / a.splits + kKeys - 1) / kKeys * kKeys;
  const int kb =
      static_cast<int>(min(static_cast<int64_t>(split) * per_split, static_cast<int64_t>(len)));
  const int ke =
      static_cast<int>(min(static_cast<int64_t>(kb) + per_split, static_cast<int64_t>(len)));
  const int tiles = (ke - kb + kKeys - 1) / kKeys;
  const int my_tiles =
      head_ok && tiles > slot ? (tiles - slot + slots - 1) >> (__ffs(slots) - 1) : 0;
  auto start_of = [&](int n) { return kb + (n * slots + slot) * kKeys; };

  extern __shared__ uint4 smem_raw[];
  T* ring = reinterpret_cast<T*>(smem_raw) + warp * kStages * 2 * kKeys * stride;
  auto k_tile = [&](int s) { return ring + s * 2 * kKeys * stride; };
  auto v_tile = [&](int s) { return k_tile(s) + kKeys * stride; };

  // valid[0] is the oldest stage's (tile n's) key mask; the masks rotate as the ring does, so the
  // loop needs no runtime index into a register array. Tile 0 is copied first and tiles 1 ..
  // kStages - 1 once it has landed (empty groups hold their places meanwhile): issued all at once,
  // every warp's first tile landed only when the whole first wave had (the memory system
  // interleaves the requests), so at short caches no tile's work overlapped the reads.
  unsigned valid[kStages];
  TilePages<kPaged, decltype(start_of)> page_of{a, b, kvh, my_tiles, ke, start_of};
  // A tile past the warp's last is never computed: an empty group holds its place (zero-byte
  // copies for it cost ~1 us of issue at the end of every warp).
  auto load = [&](int n, int stage) {
    if (n >= my_tiles) return commit_copies(), 0u;
    return load_tile<T, kMaxSteps, kPaged>(a, page_of(n), kvh, start_of(n), ke, k_tile(stage),
                                           v_tile(stage));
  };
  valid[0] = load(0, 0);
#pragma unroll
  for (int s = 1; s < kStages; ++s) commit_copies();

  // The rows this lane's fragments touch: g and g + 8 of the tile.
  const int heads_per_group = a.heads / a.kv_heads;
  int end[2];
  int all_end = INT_MAX;      // keys below it are seen by every live row of the warp's tile
  uint32_t qa[kMaxSteps][4];  // Q as A fragments
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int gi = tile * 16 + g + 8 * h;
    const bool active = head_ok && gi < a.group_rows;
    const int head = kvh * heads_per_group + gi / a.rows, r = gi % a.rows;
    end[h] = active ? len - a.rows + r + 1 : 0;
    all_end = active && end[h] < all_end ? end[h] : all_end;
    const int64_t q_off = b * a.q_stride[0] + r * a.q_stride[1] + head * a.q_stride[2];
    // The query has the cache's type, so a pair of columns is already a packed fragment register:
    // one independent 4-byte load each when aligned (the element-wise path went through
    // load_element's dtype switch, 2 bytes at a time).
    const T* q_row = static_cast<const T*>(a.q) + (active ? q_off : 0);
#pragma unroll
    for (int ks = 0; ks < kMaxSteps; ++ks)
#pragma unroll
      for (int half = 0; half < 2; ++half) {  // columns 16 ks + 8 half + 2t, + 1
        const int col = 16 * ks + 8 * half + 2 * t;
        if (!active || ks >= steps) {
          qa[ks][h + 2 * half] = 0u;
        } else if (a.q_vector) {
          qa[ks][h + 2 * half] = __ldg(reinterpret_cast<const unsigned*>(q_row + col));
        } else {
          qa[ks][h + 2 * half] = pack2<T>(load_element(a.q, q_off + col, dtype_of<T>::value),
                                          load_element(a.q, q_off + col + 1, dtype_of<T>::value));
        }
      }
  }

#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    all_end = min(all_end, __shfl_xor_sync(0xffffffffu, all_end, off));

  float o[2 * kMaxSteps][4];
#pragma unroll
  for (int n = 0; n < 2 * kMaxSteps; ++n)
#pragma unroll
    for (int c = 0; c < 4; ++c) o[n][c] = 0.0f;
  float m[2] = {kNegInf, kNegInf}, l[2] = {0.0f, 0.0f};

  // One copy of the loop body (unrolled over the ring the code outgrew the instruction cache:
  // "no instruction" was the top stall under Nsight Compute at KV 4096).
#pragma unroll 1
  for (int n = 0, s = 0; n < my_tiles; ++n, s = s + 1 == kStages ? 0 : s + 1) {
    {
      wait_copies<kStages - 1>();
      __syncwarp();  // every lane's copies of this tile have landed
      if (n == 0)
#pragma unroll
        for (int t1 = 1; t1 < kStages; ++t1) valid[t1] = load(t1, t1);
      const T* kt = k_tile(s);
      const T* vt = v_tile(s);

      // S = Q K^T: two 8-key accumulator tiles; the ldmatrix gives both tiles' B fragments.
      float sc[2][4] = {};
#pragma unroll
      for (int ks = 0; ks < kMaxSteps; ++ks) {
        if (ks >= steps) break;
        uint32_t kf[4];
        ldmatrix4<false>(
            kf, kt + ((lane >> 4) * 8 + (lane & 7)) * stride + (2 * ks + ((lane >> 3) & 1)) * 8);
        mma<T>(sc[0], qa[ks], kf[0], kf[1]);
        mma<T>(sc[1], qa[ks], kf[2], kf[3]);
      }
      // Scale and mask: sc[nt][c] is row g + 8 (c / 2), key 8 nt + 2t + c % 2 of the tile.
      const int start = start_of(n);
      float mx[2] = {kNegInf, kNegInf};
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int key = 8 * nt + 2 * t + (c & 1);
          const bool ok = (valid[0] >> key & 1u) && start + key < end[c >> 1];
          sc[nt][c] = ok ? sc[nt][c] * a.scale_log2 : kNegInf;
          mx[c >> 1] = fmaxf(mx[c >> 1], sc[nt][c]);
        }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      }
      const bool grow0 = mx[0] > m[0] + kMmaRescaleSlack, grow1 = mx[1] > m[1] + kMmaRescaleSlack;
      if (__any_sync(0xffffffffu, grow0 || grow1)) {
        const float alpha0 = grow0 ? exp2_approx(m[0] - mx[0]) : 1.0f;  // 0 from -inf
        const float alpha1 = grow1 ? exp2_approx(m[1] - mx[1]) : 1.0f;
        m[0] = grow0 ? mx[0] : m[0];
        m[1] = grow1 ? mx[1] : m[1];
        l[0] *= alpha0;
        l[1] *= alpha1;
#pragma unroll
        for (int nt = 0; nt < 2 * kMaxSteps; ++nt) {
          o[nt][0] *= alpha0;
          o[nt][1] *= alpha0;
          o[nt][2] *= alpha1;
          o[nt][3] *= alpha1;
        }
      }
      float p[2][4];
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          p[nt][c] = sc[nt][c] == kNegInf ? 0.0f : exp2_approx(sc[nt][c] - m[c >> 1]);
          l[c >> 1] += p[nt][c];
        }
      // P as the A operand (rows g, g + 8; keys 2t.. and 8 + 2t..): the S fragments as they are.
      constexpr bool kSplitP = std::is_same_v<T, qwen3vl::bfloat16>;
      const uint32_t pa[4] = {pack2<T>(p[0][0], p[0][1]), pack2<T>(p[0][2], p[0][3]),
                              pack2<T>(p[1][0], p[1][1]), pack2<T>(p[1][2], p[1][3])};
      uint32_t pl[4] = {};
      if constexpr (kSplitP) {
        auto rest = [](float x) { return x - round_trip<T>(x); };
        pl[0] = pack2<T>(rest(p[0][0]), rest(p[0][1]));
        pl[1] = pack2<T>(rest(p[0][2]), rest(p[0][3]));
        pl[2] = pack2<T>(rest(p[1][0]), rest(p[1][1]));
        pl[3] = pack2<T>(rest(p[1][2]), rest(p[1][3]));
      }
      // Keys of a tile past all_end (the last R - 1 of a sequence with R new rows) are hidden from
      // some live rows, whose p = 0 the MMA would multiply by the key's V: 0 x Inf = NaN. Their
      // non-finite V elements are added here to the rows that see them (p from the lanes holding
      // it), then zeroed in the ring before the MMA. Warp-uniform, and only such tiles pay.
      if (start + kKeys > all_end) {
        uint16_t* vb = reinterpret_cast<uint16_t*>(const_cast<T*>(vt));
#pragma unroll
        for (int k = 0; k < kKeys; ++k) {
          const int src = (lane & ~3) | ((k & 7) >> 1);  // holds key k of rows g and g + 8
          const float p0 = __shfl_sync(0xffffffffu, p[k >> 3][k & 1], src);
          const float p1 = __shfl_sync(0xffffffffu, p[k >> 3][2 + (k & 1)], src);
          if (start + k < all_end || !(valid[0] >> k & 1u)) continue;
#pragma unroll
          for (int nt = 0; nt < 2 * kMaxSteps; ++nt) {
            if (nt >= 2 * steps) break;
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const uint16_t x = vb[k * stride + 8 * nt + 2 * t + (c & 1)];
              if (non_finite_bits<T>(x) && start + k < end[c >> 1])
                o[nt][c] += (c < 2 ? p0 : p1) * bits_to_float<T>(x);
            }
          }
        }
        __syncwarp();
        for (int idx = lane; idx < kKeys * d; idx += 32) {
          const int k = idx / d, col = idx - k * d;
          if (start + k >= all_end && non_finite_bits<T>(vb[k * stride + col]))
            vb[k * stride + col] = 0;
        }
        __syncwarp();
      }
      // O += P V, 16 head-dim columns (two accumulator tiles) per ldmatrix.trans.
#pragma unroll
      for (int ks = 0; ks < kMaxSteps; ++ks) {
        if (ks >= steps) break;
        uint32_t vf[4];
        ldmatrix4<true>(
            vf, vt + (((lane >> 3) & 1) * 8 + (lane & 7)) * stride + (2 * ks + (lane >> 4)) * 8);
        mma<T>(o[2 * ks], pa, vf[0], vf[1]);
        mma<T>(o[2 * ks + 1], pa, vf[2], vf[3]);
        if constexpr (kSplitP) {
          mma<T>(o[2 * ks], pl, vf[0], vf[1]);
          mma<T>(o[2 * ks + 1], pl, vf[2], vf[3]);
        }
      }
      __syncwarp();  // every lane is done reading this stage before it is refilled
#pragma unroll
      for (int r = 0; r + 1 < kStages; ++r) valid[r] = valid[r + 1];
      valid[kStages - 1] = load(n + kStages, s);
    }
  }

  // Row sums over the 4 lanes of a row group; then the slots of each head are merged through
  // shared memory (the ring's), one warp a (head, live row): the slots' weights once, then 32
  // head-dim elements a step, no division per element (the alternatives measured slower:
  // docs/perf-log/code-notes.md).
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
  wait_copies<0>();
  __syncthreads();  // every warp is done with its ring
  // [warp][16][d + 8]: padded so the 8-byte stores of rows g = 0..3 fall in distinct banks.
  const int o_stride = d + 8;
  float* sm_o = reinterpret_cast<float*>(smem_raw);
  float* sm_m = sm_o + kWarps * 16 * o_stride;              // [warp][16]
  float* sm_l = sm_m + kWarps * 16;                         // [warp][16]
  const int live_rows = min(16, a.group_rows - tile * 16);  // often 4 of the 16
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (g + 8 * h >= live_rows) continue;
    float* row = sm_o + (warp * 16 + g + 8 * h) * o_stride + 2 * t;
#pragma unroll
    for (int nt = 0; nt < 2 * kMaxSteps; ++nt) {
      if (nt >= 2 * steps) break;
      *reinterpret_cast<float2*>(row + 8 * nt) = make_float2(o[nt][2 * h], o[nt][2 * h + 1]);
    }
    if (t == 0) {
      sm_m[warp * 16 + g + 8 * h] = m[h];
      sm_l[warp * 16 + g + 8 * h] = l[h];
    }
  }
  __syncthreads();
  // One warp a (head, live row) task, straight-line code: this runs after the last tile, on the
  // critical path, so it is short on serial instructions (approximate exp2 / log2 / reciprocal,
  // slots and head-dim chunks unrolled, one output pointer).
  for (int task = warp; task < hpb * live_rows; task += kWarps) {
    const int h = task / live_rows, i = task - h * live_rows;
    if (chunk * hpb + h >= a.kv_heads) continue;
    const int at =
        h * 16 + i;  // the row in slot 0's part of sm_m / sm_l / sm_o; slot sl adds sl * hpb * 16
    float ms[kWarps], mx = kNegInf;
#pragma unroll
    for (int sl = 0; sl < kWarps; ++sl) {
      ms[sl] = sl < slots ? sm_m[sl * hpb * 16 + at] : kNegInf;
      mx = fmaxf(mx, ms[sl]);
    }
    float w[kWarps], sum = 0.0f;
#pragma unroll
    for (int sl = 0; sl < kWarps; ++sl) {
      w[sl] = ms[sl] == kNegInf ? 0.0f : exp2_approx(ms[sl] - mx);
      sum = sl < slots ? fmaf(sm_l[sl * hpb * 16 + at], w[sl], sum) : sum;
    }
    const bool empty = sum == 0.0f;  // NaN (a row that saw a NaN score) stays NaN
    const float inv = empty ? 0.0f : __fdividef(1.0f, sum);
    const int gi = tile * 16 + i;
    const int head = (chunk * hpb + h) * heads_per_group + gi / a.rows, r = gi % a.rows;
    const int64_t row = (static_cast<int64_t>(b) * a.heads + head) * a.rows + r;
    float* partial = a.splits > 1 ? a.partial_o + (row * a.splits + split) * d : nullptr;
    const int64_t out_at = b * a.out_stride[0] + r * a.out_stride[1] + head * a.out_stride[2];
#pragma unroll
    for (int c = 0; c < kMaxSteps / 2; ++c) {  // 32 head-dim elements a step
      const int e = lane + 32 * c;
      if (e >= d) break;
      float acc = 0.0f;
#pragma unroll
      for (int sl = 0; sl < kWarps; ++sl)
        if (sl < slots) acc = fmaf(w[sl], sm_o[(sl * hpb * 16 + at) * o_stride + e], acc);
      if (a.splits > 1)
        partial[e] = acc * inv;
      else
        store_element(a.out, out_at + e, a.q_dtype, acc * inv);
    }
    if (lane == 0) {
      const float lse = empty ? kNegInf : (mx + __log2f(sum)) * kLn2;
      if (a.splits > 1)
        a.partial_lse[row * a.splits + split] = lse;
      else if (a.lse)
        a.lse[b * a.lse_stride[0] + head * a.lse_stride[1] + r * a.lse_stride[2]] = lse;
    }
  }
#else
  __trap();  // the host launches this kernel on sm_80+ only (mma_decode_supported)
#endif
}

}  // namespace qwen3vl::detail::decode_mma

namespace qwen3vl::detail {

template <class T>
Status launch_decode_mma(const DecodeArgs& a, cudaStream_t stream) {
  using namespace decode_mma;
  constexpr int kMaxSteps = kMmaMaxHeadDim / 16;
  const dim3 grid(static_cast<unsigned>(a.splits),
                  static_cast<unsigned>(a.head_chunks * a.row_tiles),
                  static_cast<unsigned>(a.batch));
  const size_t bytes = mma_decode_smem_bytes(a.head_dim, a.mma_warps);
  auto go = [&](auto kernel) {
    // Above 48 KiB dynamic shared memory must be allowed per kernel (and device); cheap to repeat.
    QWEN3VL_RETURN_IF_ERROR(
        cuda_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes)),
                    "cudaFuncSetAttribute(decode_mma_kernel)"));
    kernel<<<grid, 32 * a.mma_warps, bytes, stream>>>(a);
    return cuda_status(cudaGetLastError(), "launch of decode_mma_kernel");
  };
  // Blocks of 8 warps (one a SM) or 4 (two a SM).
  auto shape = [&](auto warps) {
    constexpr int kW = decltype(warps)::value;
    return a.table ? go(decode_mma_kernel<T, kW, kMaxSteps, true>)
                   : go(decode_mma_kernel<T, kW, kMaxSteps, false>);
  };
  return a.mma_warps == kMmaWarps / 2 ? shape(std::integral_constant<int, kMmaWarps / 2>{})
                                      : shape(std::integral_constant<int, kMmaWarps>{});
}

template <class T>
bool decode_mma_compiled() {
  cudaFuncAttributes attr{};
  const cudaError_t e = cudaFuncGetAttributes(
      &attr, decode_mma::decode_mma_kernel<T, kMmaWarps, kMmaMaxHeadDim / 16, true>);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: clear it
    return false;
  }
  return attr.ptxVersion >= 80;
}

}  // namespace qwen3vl::detail
