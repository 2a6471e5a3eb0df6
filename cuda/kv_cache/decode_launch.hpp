// The CUDA decode kernels' arguments and launchers (one instantiation file per storage dtype).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"

namespace qwen3vl::detail {

constexpr int kDecodeThreads = 128;
constexpr int kDecodeRowTile = 4;  // packed query rows (G * R of a KV head) per thread block
constexpr int kDecodeWarps = kDecodeThreads / 32;  // KV heads (or slots of one head) per block

// Everything a decode block needs, by value (no device-side argument buffer to allocate). The
// fields are ordered by first use: kernel parameters sit in constant memory, and under a graph
// replay that streams the caches they are cold (Nsight Compute showed constant-cache miss stalls
// in the prologue), so the fields on the path to the first copy share as few lines as possible.
struct DecodeArgs {
  // The sequence's length and the split plan (every block's first reads).
  const int32_t* seq_lens;
  int64_t lens_stride, lens_stride_head;  // seq_lens over sequences and KV heads (0: shared)
  int64_t capacity;
  int splits, row_tiles, heads_per_block,
      kv_heads;  // heads_per_block: KV heads a block serves (a power of two)
  // Where the keys are (the first tile's copies).
  const void* k;
  const void* v;
  int64_t k_stride[3], v_stride[3];  // [major, minor, head]
  const int32_t* table;              // null: contiguous layout
  int64_t table_stride[2];           // [b, block]
  int64_t table_stride_head;         // per-KV-head tables (0: one table for all heads)
  int64_t block_size, num_blocks;
  int block_shift;  // log2(block_size) where a power of two, else -1
  int head_dim;
  // The queries.
  const void* q;
  int64_t q_stride[3];  // [b, r, h]
  DType q_dtype;        // also the output dtype
  int heads, rows, group_rows;
  float scale_log2;   // scale * log2(e)
  bool vector_loads;  // 16-byte aligned K/V rows and D a multiple of the vector width
  bool q_vector;      // 16-byte aligned q base and row strides: the query prologue reads vectors
  // The outputs.
  float* partial_o;    // [B, Hq, R, splits, D] when splits > 1
  float* partial_lse;  // [B, Hq, R, splits], natural log
  void* out;
  int64_t out_stride[3];  // [b, r, h]
  float* lse;             // null: not written
  int64_t lse_stride[3];  // [b, h, r]
  int batch, head_chunks;
  int mma_warps;  // tensor-core kernel: warps a block, kMmaWarps or kMmaWarps / 2
};

// Lanes that share one key in a decode warp, `elems` head-dim elements each (a power of
// two, 4..32).
inline int decode_lanes(int head_dim, int elems) {
  int lanes = 4;
  while (lanes < 32 && lanes * elems < head_dim) lanes *= 2;
  return lanes;
}

// The tensor-core kernel (decode_mma.cuh, sm_80+, f16 / bf16 caches, D % 16 == 0, D <= 128):
// tiles of 16 packed query rows and 16 keys, 8 warps (up to 8 KV heads) a block, a ring of
// kMmaStages K/V tiles per warp in dynamic shared memory (204 KiB at D 128: one block per SM), or
// blocks of 4 warps (two a SM).
constexpr int kMmaWarps = 8;
constexpr int kMmaStages = 3;
__host__ __device__ constexpr int mma_blocks_per_sm(int warps) { return kMmaWarps / warps; }
constexpr int kMmaMaxHeadDim = 128;
constexpr int kMmaRowTile = 16;
constexpr int kMmaTileKeys = 16;
inline size_t mma_decode_smem_bytes(int head_dim, int warps) {
  return static_cast<size_t>(warps) * kMmaStages * 2 * kMmaTileKeys * (head_dim + 8) * 2;
}

// The split-KV kernel (grid: splits x (head chunks * row tiles) x B) for storage type T, and the
// merge.
template <class T>
Status launch_decode(const DecodeArgs& args, cudaStream_t stream);
// The tensor-core kernel (grid: splits x (head chunks * 16-row tiles) x B), T = half or bfloat16.
template <class T>
Status launch_decode_mma(const DecodeArgs& args, cudaStream_t stream);
Status launch_merge(const DecodeArgs& args, cudaStream_t stream);
// Whether this binary's tensor-core kernel runs on the current device: compiled for sm_80+, not
// the trap a compute_61 build (JIT-compiled on a newer GPU) holds in its place.
template <class T>
bool decode_mma_compiled();

}  // namespace qwen3vl::detail
