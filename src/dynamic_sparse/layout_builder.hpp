// The BSR layout a block router writes: one layout per (sequence, KV head), row blocks filled in
// parallel into fixed slots of `row_capacity` entries, then compacted into indptr/indices.
#pragma once

#include <cstdint>

#include "qwen3vl/core/block_layout.hpp"
#include "routing_common.hpp"

namespace qwen3vl::detail {

class LayoutBuilder {
 public:
  LayoutBuilder(int64_t layouts, int64_t row_blocks, int64_t row_capacity, int32_t block_q,
                int32_t block_k, Carver* carver)
      : layouts_(layouts),
        row_blocks_(row_blocks),
        row_capacity_(row_capacity),
        block_q_(block_q),
        block_k_(block_k) {
    indptr_ = carver->take<int32_t>(layouts * (row_blocks + 1));
    indices_ = carver->take<int32_t>(layouts * capacity());
  }

  int64_t capacity() const { return row_blocks_ * row_capacity_; }
  // Row block `row` of layout l: write up to row_capacity column blocks (increasing), then count.
  int32_t* slot(int64_t l, int64_t row) const {
    return indices_ + l * capacity() + row * row_capacity_;
  }
  void set_count(int64_t l, int64_t row, int64_t n) const {
    indptr_[l * (row_blocks_ + 1) + row + 1] = static_cast<int32_t>(n);
  }

  // Moves every layout's rows together (counts become offsets); returns the kept pairs.
  int64_t compact() const {
    int64_t kept = 0;
    for (int64_t l = 0; l < layouts_; ++l) {
      int32_t* ptr = indptr_ + l * (row_blocks_ + 1);
      int32_t* col = indices_ + l * capacity();
      ptr[0] = 0;
      for (int64_t r = 0; r < row_blocks_; ++r) {
        const int32_t n = ptr[r + 1];
        const int32_t* from = col + r * row_capacity_;
        for (int32_t e = 0; e < n; ++e) col[ptr[r] + e] = from[e];  // destination <= source
        ptr[r + 1] = ptr[r] + n;
      }
      kept += ptr[row_blocks_];
    }
    return kept;
  }

  BlockLayout view() const {
    BlockLayout bl;
    bl.block_q = block_q_;
    bl.block_k = block_k_;
    bl.indptr = TensorView::contiguous(indptr_, DType::kI32, {layouts_, row_blocks_ + 1});
    bl.indices = TensorView::contiguous(indices_, DType::kI32, {layouts_, capacity()});
    return bl;
  }

 private:
  int64_t layouts_, row_blocks_, row_capacity_;
  int32_t block_q_, block_k_;
  int32_t* indptr_ = nullptr;
  int32_t* indices_ = nullptr;
};

// Visible (query block, key block) pairs of a problem: the denominator of a layout's density.
inline int64_t visible_block_pairs(const AttentionParams& p, const AttentionShape& s,
                                   int32_t block_q, int32_t block_k) {
  int64_t pairs = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(p, b);
    for (int64_t row = 0; row * block_q < span.q_len; ++row) {
      const KeyRange hull = row_block_keys(p, b, span, row, block_q).hull;
      if (hull.size() > 0) pairs += (hull.end - 1) / block_k - hull.begin / block_k + 1;
    }
  }
  return pairs * s.kv_heads;
}

}  // namespace qwen3vl::detail
