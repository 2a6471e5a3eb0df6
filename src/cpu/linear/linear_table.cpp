#include "linear_kernels.hpp"

namespace qwen3vl::detail {

const LinearKernels& linear_kernels(CpuIsa isa) {
  static const LinearKernels scalar{&cpu::scalar::linear_run};
#if QWEN3VL_HAVE_AVX2
  static const LinearKernels avx2{&cpu::avx2::linear_run};
  if (isa == CpuIsa::kAvx2) return avx2;
#endif
#if QWEN3VL_HAVE_AVX512
  static const LinearKernels avx512{&cpu::avx512::linear_run};
  if (isa == CpuIsa::kAvx512) return avx512;
#endif
  return scalar;
}

}  // namespace qwen3vl::detail
