// MInference vertical-slash routing on CUDA (the CPU definition: src/dynamic_sparse/
// vertical_slash.cpp). Writes, per (sequence, KV head) layout and query block, the kept key blocks
// in increasing order to slots[l, row, 0 .. counts[l, row]); the caller compacts them to BSR.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common/kernel_args.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "src/core/workspace_carver.hpp"

namespace qwen3vl::detail {

struct VerticalSlashArgs {
  AttentionArgs a;  // q, k, sequences, masks (make_attention_args); no q_positions
  int64_t kv_heads = 0, max_q = 0, max_k = 0, nbq = 0, nbk = 0, row_cap = 0;
  int64_t a_max = 0;  // min(last_queries, max_q)
  DynamicSparseConfig config;
  float* scores = nullptr;    // [B Hq a_max, max_k]: the last rows' logits, then probabilities
  float* vertical = nullptr;  // [B Hkv, max_k]: column sums over the group's heads
  float* slash = nullptr;     // [B Hkv, 2 max_k]: diagonal sums, delta + k_len - 1
  unsigned char* kept_v = nullptr;  // [B Hkv, max_k]
  unsigned char* kept_s = nullptr;  // [B Hkv, 2 max_k]
  int32_t* slots = nullptr;         // [B Hkv, nbq, row_cap]
  int32_t* counts = nullptr;        // [B Hkv, nbq]
};

// The scratch `scores` .. `kept_s`, in the order above, taken from `c` (null while it counts).
struct VerticalSlashScratch {
  float* scores = nullptr;
  float* vertical = nullptr;
  float* slash = nullptr;
  unsigned char* kept_v = nullptr;
  unsigned char* kept_s = nullptr;
};
VerticalSlashScratch vertical_slash_scratch(Carver* c, int64_t batch, int64_t heads,
                                            int64_t kv_heads, int64_t a_max, int64_t max_k);

// Four launches on `stream`: zero the sums, score the last rows (one block per row and head),
// select the columns and diagonals (one block per layout and kind), mark the blocks.
Status launch_vertical_slash(const VerticalSlashArgs& args, cudaStream_t stream);

}  // namespace qwen3vl::detail
