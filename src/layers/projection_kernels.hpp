// The per-ISA projection GEMM tile (projection_<isa>.cpp, each compiled with its own flags and its
// own Eigen namespace), reached through isa_table<ProjectionKernels>(isa).
#pragma once

#include <cstdint>

#include "qwen3vl/cpu/isa.hpp"
#include "src/cpu/isa_table.hpp"

namespace qwen3vl::layers::detail {

// y[r, c] = sum_k x[r, k] * w[c, k] for r < rows, c < cols: a tile of x W^T, all fp32 row-major
// with leading dimensions ldx, ldw, ldy (elements).
using GemmTile = void (*)(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                          int64_t ldy, int64_t rows, int64_t cols, int64_t depth);

struct ProjectionKernels {
  GemmTile gemm_tile;
};
QWEN3VL_DECLARE_ISA_TABLE(ProjectionKernels)

}  // namespace qwen3vl::layers::detail
