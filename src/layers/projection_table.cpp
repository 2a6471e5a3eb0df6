#include "projection_kernels.hpp"

namespace qwen3vl::layers::detail {

GemmTile projection_kernel(CpuIsa isa) {
#if QWEN3VL_HAVE_AVX512
  if (isa == CpuIsa::kAvx512) return &projection::avx512::gemm_tile;
#endif
#if QWEN3VL_HAVE_AVX2
  if (isa == CpuIsa::kAvx2) return &projection::avx2::gemm_tile;
#endif
  (void)isa;
  return &projection::scalar::gemm_tile;
}

}  // namespace qwen3vl::layers::detail
