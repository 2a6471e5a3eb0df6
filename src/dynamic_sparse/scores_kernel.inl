// S = Q K^T with Eigen's GEMM; included by scores_<isa>.cpp after the ISA prologue.
#include "scores.hpp"

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS {

void dynamic_sparse_scores(const float* q, int64_t rows, int64_t ldq, const float* k, int64_t keys,
                           int64_t ldk, int64_t d, float* s, int64_t lds) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const Eigen::Map<const RowMajor, 0, Stride> qm(q, rows, d, Stride(ldq));
  const Eigen::Map<const RowMajor, 0, Stride> km(k, keys, d, Stride(ldk));
  Eigen::Map<RowMajor, 0, Stride> sm(s, rows, keys, Stride(lds));
  sm.noalias() = qm * km.transpose();
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS
