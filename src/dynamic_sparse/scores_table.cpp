#include "scores.hpp"

namespace qwen3vl::detail {

ScoresFn scores_kernel(CpuIsa isa) {
#if QWEN3VL_HAVE_AVX2
  if (isa == CpuIsa::kAvx2) return &cpu::avx2::dynamic_sparse_scores;
#endif
#if QWEN3VL_HAVE_AVX512
  if (isa == CpuIsa::kAvx512) return &cpu::avx512::dynamic_sparse_scores;
#endif
  (void)isa;
  return &cpu::scalar::dynamic_sparse_scores;
}

PvFn pv_kernel(CpuIsa isa) {
#if QWEN3VL_HAVE_AVX2
  if (isa == CpuIsa::kAvx2) return &cpu::avx2::dynamic_sparse_pv;
#endif
#if QWEN3VL_HAVE_AVX512
  if (isa == CpuIsa::kAvx512) return &cpu::avx512::dynamic_sparse_pv;
#endif
  (void)isa;
  return &cpu::scalar::dynamic_sparse_pv;
}

}  // namespace qwen3vl::detail
