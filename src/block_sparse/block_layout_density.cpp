// block_layout_density(): how much of the (query block, key block) grid a host layout lists.
#include <limits>

#include "qwen3vl/variants/block_sparse.hpp"

namespace qwen3vl {

double block_layout_density(const BlockLayout& layout, int64_t max_q, int64_t max_k) {
  if (!layout.present() || layout.block_q <= 0 || layout.block_k <= 0) return 0.0;
  if (layout.indptr.device != Device::kCPU)  // not readable here
    return std::numeric_limits<double>::quiet_NaN();
  const int64_t row_blocks = (max_q + layout.block_q - 1) / layout.block_q;
  const int64_t col_blocks = (max_k + layout.block_k - 1) / layout.block_k;
  const int64_t layouts = layout.layouts();
  if (row_blocks == 0 || col_blocks == 0 || row_blocks > layout.row_blocks()) return 0.0;
  int64_t listed = 0;
  for (int64_t l = 0; l < layouts; ++l) {
    const int32_t* ptr = layout.row_ptr(l);
    listed += ptr[row_blocks] - ptr[0];
  }
  return static_cast<double>(listed) / static_cast<double>(layouts * row_blocks * col_blocks);
}

}  // namespace qwen3vl
