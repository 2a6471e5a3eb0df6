// BlockLayoutData: the owning host BSR layout, its view, and conversions to and from dense masks.
#include <algorithm>

#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl {

BlockLayout BlockLayoutData::view() const {
  BlockLayout bl;
  bl.block_q = block_q;
  bl.block_k = block_k;
  // The views are read-only in practice (kernels take const pointers); TensorView has no const.
  bl.indptr = TensorView::contiguous(const_cast<int32_t*>(indptr.data()), DType::kI32,
                                     {layouts, row_blocks + 1});
  bl.indices = TensorView::contiguous(const_cast<int32_t*>(indices.data()), DType::kI32,
                                      {layouts, capacity});
  return bl;
}

int64_t BlockLayoutData::blocks(int64_t l) const {
  return indptr[static_cast<size_t>(l * (row_blocks + 1) + row_blocks)];
}

Status from_block_mask(const std::vector<uint8_t>& mask, int64_t layouts, int64_t row_blocks,
                       int64_t col_blocks, int32_t block_q, int32_t block_k, BlockLayoutData* out) {
  if (layouts < 1 || row_blocks < 0 || col_blocks < 0)
    return make_error(StatusCode::kInvalidArgument, "block mask dims [", layouts, ", ", row_blocks,
                      ", ", col_blocks, "]: allowed layouts >= 1, blocks >= 0");
  if (static_cast<int64_t>(mask.size()) != layouts * row_blocks * col_blocks)
    return make_error(
        StatusCode::kShapeMismatch, "block mask size = ", mask.size(),
        ": must be layouts x row_blocks x col_blocks = ", layouts * row_blocks * col_blocks);
  BlockLayoutData d;
  d.block_q = block_q;
  d.block_k = block_k;
  d.layouts = layouts;
  d.row_blocks = row_blocks;
  d.col_blocks = col_blocks;
  for (int64_t l = 0; l < layouts; ++l) {
    const auto first = mask.begin() + l * row_blocks * col_blocks;
    d.capacity = std::max<int64_t>(d.capacity, std::count_if(first, first + row_blocks * col_blocks,
                                                             [](uint8_t x) { return x != 0; }));
  }
  d.indptr.assign(static_cast<size_t>(layouts * (row_blocks + 1)), 0);
  d.indices.assign(static_cast<size_t>(layouts * d.capacity), 0);
  for (int64_t l = 0; l < layouts; ++l) {
    int32_t* ptr = d.indptr.data() + l * (row_blocks + 1);
    int32_t* col = d.indices.data() + l * d.capacity;
    int32_t n = 0;
    for (int64_t r = 0; r < row_blocks; ++r) {
      const uint8_t* row = mask.data() + (l * row_blocks + r) * col_blocks;
      for (int64_t c = 0; c < col_blocks; ++c)
        if (row[c]) col[n++] = static_cast<int32_t>(c);
      ptr[r + 1] = n;
    }
  }
  *out = std::move(d);
  // The view must satisfy the layout contract (block sizes included); say so here, not in a kernel.
  return validate_block_layout(out->view(), 1, layouts, row_blocks * block_q, col_blocks * block_k);
}

std::vector<uint8_t> materialize(const BlockLayout& layout, int64_t l, int64_t q_len,
                                 int64_t k_len) {
  std::vector<uint8_t> mask(static_cast<size_t>(q_len * k_len), 0);
  const int32_t* ptr = layout.row_ptr(l);
  const int32_t* col = layout.col_ptr(l);
  for (int64_t i = 0; i < q_len; ++i) {
    const int64_t r = i / layout.block_q;
    for (int32_t e = ptr[r]; e < ptr[r + 1]; ++e) {
      const int64_t j0 = static_cast<int64_t>(col[e]) * layout.block_k;
      const int64_t j1 = std::min<int64_t>(j0 + layout.block_k, k_len);
      for (int64_t j = j0; j < j1; ++j) mask[static_cast<size_t>(i * k_len + j)] = 1;
    }
  }
  return mask;
}

}  // namespace qwen3vl
