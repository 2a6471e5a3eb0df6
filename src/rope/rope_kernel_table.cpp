#include "rope_kernels.hpp"

namespace qwen3vl::rope::detail {

const RopeCpuKernels& rope_cpu_kernels(CpuIsa isa) {
  static const RopeCpuKernels scalar{&cpu_rope::scalar::apply_tokens};
#if QWEN3VL_HAVE_AVX2
  static const RopeCpuKernels avx2{&cpu_rope::avx2::apply_tokens};
  if (isa == CpuIsa::kAvx2) return avx2;
#endif
#if QWEN3VL_HAVE_AVX512
  static const RopeCpuKernels avx512{&cpu_rope::avx512::apply_tokens};
  if (isa == CpuIsa::kAvx512) return avx512;
#endif
  return scalar;
}

}  // namespace qwen3vl::rope::detail
