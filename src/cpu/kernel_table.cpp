#include "kernels.hpp"

namespace qwen3vl::detail {

#define QWEN3VL_CPU_KERNEL_TABLE(ns) \
  CpuKernels{&cpu::ns::standard_head, &cpu::ns::flash2_plan, &cpu::ns::flash2_tile, \
             &cpu::ns::vector_math}

const CpuKernels& cpu_kernels(CpuIsa isa) {
  static const CpuKernels scalar = QWEN3VL_CPU_KERNEL_TABLE(scalar);
#if QWEN3VL_HAVE_AVX2
  static const CpuKernels avx2 = QWEN3VL_CPU_KERNEL_TABLE(avx2);
  if (isa == CpuIsa::kAvx2) return avx2;
#endif
#if QWEN3VL_HAVE_AVX512
  static const CpuKernels avx512 = QWEN3VL_CPU_KERNEL_TABLE(avx512);
  if (isa == CpuIsa::kAvx512) return avx512;
#endif
  return scalar;
}

}  // namespace qwen3vl::detail
