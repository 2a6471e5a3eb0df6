// S = Q K^T and O += P V with Eigen's GEMM; included by scores_<isa>.cpp after the ISA prologue.
#include <Eigen/Core>

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

void dynamic_sparse_pv(const float* p, int64_t rows, int64_t ldp, const float* v, int64_t keys,
                       int64_t ldv, int64_t d, float* o, int64_t ldo) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const Eigen::Map<const RowMajor, 0, Stride> pm(p, rows, keys, Stride(ldp));
  const Eigen::Map<const RowMajor, 0, Stride> vm(v, keys, d, Stride(ldv));
  Eigen::Map<RowMajor, 0, Stride> om(o, rows, d, Stride(ldo));
  om.noalias() += pm * vm;
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS

namespace qwen3vl::detail {
QWEN3VL_DEFINE_ISA_TABLE(ScoresKernels, &cpu::QWEN3VL_ISA_NS::dynamic_sparse_scores,
                         &cpu::QWEN3VL_ISA_NS::dynamic_sparse_pv)
}  // namespace qwen3vl::detail
