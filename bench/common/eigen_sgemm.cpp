#include "eigen_sgemm.hpp"

namespace qwen3vl::bench {

void eigen_sgemm(CpuIsa isa, tbb::task_arena& arena, const float* a, const float* b, float* c,
                 int64_t n) {
  switch (isa) {
#if QWEN3VL_HAVE_AVX512
    case CpuIsa::kAvx512: return avx512::eigen_sgemm(arena, a, b, c, n);
#endif
#if QWEN3VL_HAVE_AVX2
    case CpuIsa::kAvx2: return avx2::eigen_sgemm(arena, a, b, c, n);
#endif
    default: return scalar::eigen_sgemm(arena, a, b, c, n);
  }
}

}  // namespace qwen3vl::bench
