// The key intervals a flash2 task visits. Dense attention visits one interval, the hull of its
// rows' visible keys; a block-sparse layout cuts that hull to the column blocks its row block
// lists, with consecutive blocks merged so that the kernel still walks long runs in its own block_k
// steps.
#pragma once

#include <cstdint>

#include "qwen3vl/core/block_layout.hpp"
#include "qwen3vl/core/mask.hpp"

namespace qwen3vl::detail {

// The most intervals one task of this layout can need (runs of consecutive column blocks in any
// row block); 1 without a layout. Sizes the per-thread interval list (O(nnz) host scan).
inline int64_t max_key_intervals(const BlockLayout& bl) {
  if (!bl.present()) return 1;
  int64_t most = 1;
  for (int64_t l = 0; l < bl.layouts(); ++l) {
    const int32_t* ptr = bl.row_ptr(l);
    const int32_t* col = bl.col_ptr(l);
    for (int64_t r = 0; r < bl.row_blocks(); ++r) {
      int64_t runs = 0;
      for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) runs += e == ptr[r] || col[e] != col[e - 1] + 1;
      most = runs > most ? runs : most;
    }
  }
  return most;
}

// The hull [lo, hi) of the non-empty ranges of rows[0..n); lo = hi = 0 if every row is empty.
inline KeyRange key_hull(const KeyRange* rows, int64_t n) {
  KeyRange hull{0, 0};
  bool any = false;
  for (int64_t i = 0; i < n; ++i) {
    if (rows[i].end <= rows[i].begin) continue;
    hull.begin = any && hull.begin < rows[i].begin ? hull.begin : rows[i].begin;
    hull.end = any && hull.end > rows[i].end ? hull.end : rows[i].end;
    any = true;
  }
  return hull;
}

// Writes the ascending, disjoint intervals of `hull` that layout `l`'s row block `row_block` lists
// (all of `hull` without a layout) to out[], at most max_key_intervals(bl) of them; returns the
// count.
inline int64_t key_intervals(const BlockLayout& bl, int64_t l, int64_t row_block, KeyRange hull,
                             KeyRange* out) {
  if (hull.end <= hull.begin) return 0;
  if (!bl.present()) {
    out[0] = hull;
    return 1;
  }
  const int32_t* ptr = bl.row_ptr(l);
  const int32_t* col = bl.col_ptr(l);
  int64_t count = 0;
  for (int64_t e = ptr[row_block]; e < ptr[row_block + 1];) {
    const int64_t first = col[e];
    int64_t last = first;
    for (++e; e < ptr[row_block + 1] && col[e] == last + 1; ++e) ++last;
    const int64_t begin = first * bl.block_k, end = (last + 1) * bl.block_k;
    const int64_t lo = begin > hull.begin ? begin : hull.begin;
    const int64_t hi = end < hull.end ? end : hull.end;
    if (lo < hi) out[count++] = KeyRange{lo, hi};
  }
  return count;
}

}  // namespace qwen3vl::detail
