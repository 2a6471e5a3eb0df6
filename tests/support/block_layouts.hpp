// Host block-sparse layouts for tests and benchmarks: from explicit column lists, or seeded random
// ones (a density, optionally the diagonal block kept, optionally some row blocks left empty).
#pragma once

#include <cstdint>
#include <vector>

#include "qwen3vl/core/block_layout.hpp"
#include "qwen3vl/core/tensor.hpp"

namespace qwen3vl::testing {

// Column blocks per row block, per layout: columns[l][row_block] (ascending for a valid layout).
using LayoutColumns = std::vector<std::vector<std::vector<int32_t>>>;

struct HostLayout {
  Tensor indptr, indices;
  BlockLayout layout;

  HostLayout() = default;
  HostLayout(const HostLayout&) = delete;
  HostLayout& operator=(const HostLayout&) = delete;
  HostLayout(HostLayout&&) = default;
  HostLayout& operator=(HostLayout&&) = default;

  // Rank-2 tensors [L, ...] unless there is one layout and `flat` asks for rank 1.
  HostLayout(int32_t block_q, int32_t block_k, const LayoutColumns& columns, bool flat = false) {
    const int64_t n = static_cast<int64_t>(columns.size());
    const int64_t rows = n ? static_cast<int64_t>(columns[0].size()) : 0;
    int64_t capacity = 1;
    for (const auto& layout : columns) {
      int64_t nnz = 0;
      for (const auto& row : layout) nnz += static_cast<int64_t>(row.size());
      capacity = nnz > capacity ? nnz : capacity;
    }
    const bool rank1 = flat && n == 1;
    indptr = rank1 ? Tensor(DType::kI32, {rows + 1}) : Tensor(DType::kI32, {n, rows + 1});
    indices = rank1 ? Tensor(DType::kI32, {capacity}) : Tensor(DType::kI32, {n, capacity});
    int32_t* ptr = indptr.data<int32_t>();
    int32_t* col = indices.data<int32_t>();
    for (int64_t l = 0; l < n; ++l) {
      int32_t e = 0;
      ptr[l * (rows + 1)] = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int32_t c : columns[l][r]) col[l * capacity + e++] = c;
        ptr[l * (rows + 1) + r + 1] = e;
      }
      for (int64_t x = e; x < capacity; ++x) col[l * capacity + x] = -1;  // unused tail
    }
    layout.block_q = block_q;
    layout.block_k = block_k;
    layout.indptr = indptr.view();
    layout.indices = indices.view();
  }
};

struct RandomLayoutSpec {
  int32_t block_q = 64, block_k = 64;
  int64_t layouts = 1;
  double density = 0.5;        // probability that a (row block, column block) pair is listed
  bool keep_diagonal = false;  // always list the column block holding the row block's first key
  int64_t empty_every = 0;     // > 0: every empty_every-th row block (from 1) lists nothing
  uint64_t seed = 1;
};

inline uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The columns of a seeded random layout for a max_q x max_k problem.
inline LayoutColumns random_layout_columns(const RandomLayoutSpec& s, int64_t max_q,
                                           int64_t max_k) {
  const int64_t rows = (max_q + s.block_q - 1) / s.block_q;
  const int64_t cols = (max_k + s.block_k - 1) / s.block_k;
  uint64_t state = s.seed;
  LayoutColumns columns(static_cast<size_t>(s.layouts));
  for (auto& layout : columns) {
    layout.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      if (s.empty_every > 0 && r % s.empty_every == 1 % s.empty_every) continue;
      const int64_t diagonal = r * s.block_q / s.block_k;
      for (int64_t c = 0; c < cols; ++c) {
        const double u = static_cast<double>(splitmix64(&state) >> 11) * 0x1.0p-53;
        if (u < s.density || (s.keep_diagonal && c == diagonal))
          layout[static_cast<size_t>(r)].push_back(static_cast<int32_t>(c));
      }
    }
  }
  return columns;
}

inline HostLayout random_layout(const RandomLayoutSpec& s, int64_t max_q, int64_t max_k) {
  return HostLayout(s.block_q, s.block_k, random_layout_columns(s, max_q, max_k));
}

// Every column block listed: the dense pattern as a layout.
inline HostLayout full_layout(int32_t block_q, int32_t block_k, int64_t layouts, int64_t max_q,
                              int64_t max_k) {
  RandomLayoutSpec s;
  s.block_q = block_q;
  s.block_k = block_k;
  s.layouts = layouts;
  s.density = 1.0;
  return random_layout(s, max_q, max_k);
}

}  // namespace qwen3vl::testing
