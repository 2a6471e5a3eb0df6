// One ISA's projection tile (see projection_kernels.hpp); included after isa_prologue.hpp.
#include <Eigen/Core>

#include "projection_kernels.hpp"

namespace qwen3vl::layers::detail::projection::QWEN3VL_ISA_NS {

void gemm_tile(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy,
               int64_t rows, int64_t cols, int64_t depth) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const Eigen::Map<const RowMatrix, 0, Stride> xm(x, rows, depth, Stride(ldx));
  const Eigen::Map<const RowMatrix, 0, Stride> wm(w, cols, depth, Stride(ldw));
  Eigen::Map<RowMatrix, 0, Stride> ym(y, rows, cols, Stride(ldy));
  if (rows == 1)  // decode: one matrix-vector product, y^T = W x^T
    ym.row(0).transpose().noalias() = wm * xm.row(0).transpose();
  else
    ym.noalias() = xm * wm.transpose();
}

}  // namespace qwen3vl::layers::detail::projection::QWEN3VL_ISA_NS

namespace qwen3vl::layers::detail {
QWEN3VL_DEFINE_ISA_TABLE(ProjectionKernels, &projection::QWEN3VL_ISA_NS::gemm_tile)
}  // namespace qwen3vl::layers::detail
