// Plain kernel arguments shared by the CUDA kernels (host and device), built once per forward()
// from validated AttentionParams. All offsets are 64-bit element counts.
#pragma once

#include <cstdint>

#include "qwen3vl/core/params.hpp"

namespace qwen3vl::detail {

// A q/k/v/out tensor: element offset of (sequence b, token t, head h) is
// b * batch + t * token + h * head (varlen: batch = 0 and t counts from cu_seqlens[b]).
struct RowTensor {
  void* data = nullptr;
  int64_t batch = 0, token = 0, head = 0;
};

struct AttentionArgs {
  RowTensor q, k, v, out;
  DType dtype = DType::kF32;
  bool vector_io = false;  // 4-element vector loads/stores are aligned for q, k, v and out

  float* lse = nullptr;  // offset b * lse_batch + h * lse_head + t * lse_token (t as above)
  int64_t lse_batch = 0, lse_head = 0, lse_token = 0;

  const void* mask = nullptr;  // additive mask; strides by (b, h, i, j), 0 where broadcast
  DType mask_dtype = DType::kF32;
  int64_t mask_stride[4] = {0, 0, 0, 0};

  const int32_t* cu_q = nullptr;  // varlen when set (device memory)
  const int32_t* cu_k = nullptr;
  int64_t cu_q_stride = 1, cu_k_stride = 1;
  const int32_t* key_lengths = nullptr;
  int64_t key_lengths_stride = 1;

  int64_t seq_q = 0, seq_k = 0;      // fixed-length sequence lengths (ignored with varlen)
  int64_t total_q = 0, total_k = 0;  // varlen: packed token counts (bounds for cu_seqlens)
  int64_t batch = 0;
  int32_t heads = 0, group = 1, head_dim = 0;
  float scale = 1.0f;    // softmax scale (natural units)
  float softcap = 0.0f;  // 0: off
  MaskKind mask_kind = MaskKind::kNone;
  int64_t window_left = -1, window_right = -1;

  // Query positions on the key axis (structural masks use them), or null: bottom-right alignment.
  // Row i of sequence b sits at q_positions[b * q_positions_batch + (q_start + i) * ..._token].
  const int32_t* q_positions = nullptr;
  int64_t q_positions_batch = 0, q_positions_token = 0;

  // Block-sparse layout (BlockLayout, device i32), or null layout_indptr: every key block.
  const int32_t* layout_indptr = nullptr;
  const int32_t* layout_indices = nullptr;
  int64_t layout_indptr_stride = 0, layout_indices_stride = 0;  // elements between layouts
  int64_t layouts = 0;                                          // 1, Hkv or B * Hkv
  int32_t layout_capacity = 0;  // entries per layout in layout_indices (bounds indptr values)
  int32_t block_q = 0, block_k = 0;

  // Gathered query rows (mixture-of-heads: one launch over every head's own rows), or null: the
  // problem's rows. When set, query head h of sequence b owns rows [head_cu_q[h * head_cu_q_stride
  // + b], head_cu_q[h * head_cu_q_stride + b + 1]) (clamped to head_rows) of its own packed block:
  // q/out at row * token + h * head (batch stride 0), LSE at h * lse_head + row * lse_token,
  // q_positions at h * q_positions_head + row * q_positions_token. Keys are the problem's.
  const int32_t* head_cu_q = nullptr;
  int64_t head_cu_q_stride = 0, head_rows = 0;
  int64_t q_positions_head = 0;
};

// Where a launch over gathered query rows finds them (device memory): per query head h, a block
// of `rows` packed rows of head_dim elements at q/out + h * rows * head_dim, in sequence order,
// sequence b's at cu_rows[h * (batch + 1) + b ...]; lse (optional) and positions (optional: the
// rows' key positions, as q_positions) [heads, rows].
struct GatheredQueries {
  void* q = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* cu_rows = nullptr;
  int64_t rows = 0;
};

// Fills args from validated params (host side; reads no device memory).
AttentionArgs make_attention_args(const AttentionParams& p, const AttentionShape& s);

// The same problem's keys with the query rows gathered per head (validated params; `p`'s own q,
// out, lse and q_positions are not read).
AttentionArgs make_gathered_args(const AttentionParams& p, const AttentionShape& s,
                                 const GatheredQueries& g);

}  // namespace qwen3vl::detail
