// Quest page selection, shared by the host (select_cpu.cpp) and CUDA (cuda/quest/select_cuda.cu)
// implementations: the arguments, the group score of one page, the ranking key and the forced
// pages. Both devices run exactly these functions, so their selections agree bit for bit.
#pragma once

#include <cstdint>

#include "qwen3vl/kv_cache/quest.hpp"

namespace qwen3vl::detail::quest {

struct SelectArgs {
  const void* q = nullptr;  // [batch, rows, heads, D] of q_dtype
  DType q_dtype = DType::kF32;
  int64_t q_stride[3] = {0, 0, 0};
  const float* bounds = nullptr;  // [num_blocks, 2, Hkv, D]
  const int32_t* seq_lens = nullptr;
  int64_t lens_stride = 0;
  const int32_t* table = nullptr;  // the cache's [batch, max_blocks] block table
  int64_t table_stride[2] = {0, 0};
  int64_t batch = 0, rows = 0, heads = 0, kv_heads = 0, head_dim = 0, block_size = 0;
  int64_t max_blocks = 0;    // the cache table's width: candidate pages per sequence at most
  int64_t budget_pages = 0;  // ceil(token_budget / block_size)
  int64_t max_pages = 0;     // the compacted table's width (QuestDecode::max_pages)
  float scale = 1.0f;
  bool sum = false;  // QuestAggregation::kSum

  // Workspace.
  int32_t* out_table = nullptr;  // [Hkv, batch, max_pages]
  int32_t* out_lens = nullptr;   // [Hkv, batch]
  uint32_t* keys = nullptr;      // [batch, Hkv, max_blocks] ranking keys of candidate pages
  int32_t* order = nullptr;      // [batch, Hkv, max_blocks] (host: nth_element's index array)
  float* scaled_q = nullptr;     // [batch, Hq, rows, D] q * scale (host; CUDA scales in place)

  QWEN3VL_HOST_DEVICE int64_t group() const { return heads / kv_heads; }
};

// An unsigned key in the order of the float score; NaN ranks as +inf (such a page is kept, so the
// NaN reaches the output), -0 as +0 (they compare equal as floats).
QWEN3VL_HOST_DEVICE inline uint32_t order_key(float s) {
  if (!(s == s)) s = INFINITY;
  const uint32_t u = float_bits(s + 0.0f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Pages that hold the keys of the newest `rows` tokens (they must stay, last and in order): the
// last page, and the one before it when the last holds fewer than `rows` tokens.
QWEN3VL_HOST_DEVICE inline int64_t forced_pages(int64_t len, int64_t rows, int64_t block_size,
                                                int64_t pages) {
  const int64_t last_fill = len - (pages - 1) * block_size;
  return pages >= 2 && last_fill < rows ? 2 : 1;
}

// The group's score of page `block` (a pool index) for sequence b, KV head g: U of every query
// head of the group and every row, aggregated in (head, row) order. `q(b, h, r, d)` gives the
// scaled query element.
template <class Query>
QWEN3VL_HOST_DEVICE inline float group_score(const SelectArgs& a, const Query& q, int64_t b,
                                             int64_t g, int64_t block) {
  const float* lo = a.bounds + ((block * 2) * a.kv_heads + g) * a.head_dim;
  const float* hi = lo + a.kv_heads * a.head_dim;
  float agg = a.sum ? 0.0f : -INFINITY;
  for (int64_t i = 0; i < a.group() * a.rows; ++i) {
    const int64_t h = g * a.group() + i / a.rows, r = i % a.rows;
    const float u = quest_page_bound([&](int64_t d) { return q(b, h, r, d); }, lo, hi, a.head_dim);
    agg = a.sum ? agg + u : (u > agg || !(u == u) ? u : agg);
  }
  return agg;
}

Status select_cpu(const SelectArgs& a);
#if QWEN3VL_WITH_CUDA
Status select_cuda(const SelectArgs& a, void* stream);
#endif

}  // namespace qwen3vl::detail::quest
