// The kernel-table entry that runs one vector_math.inl function over an array (for its tests).

#include <cstdint>

#include "simd.hpp"
#include "src/cpu/kernels.hpp"

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS {

void vector_math(VectorOp op, const float* x, float* y, int64_t n) {
  constexpr int kW = Simd::kWidth;
  const auto apply = [op](Simd::V v) {
    switch (op) {
      case VectorOp::kExp2: return vmath::exp2(v);
      case VectorOp::kTanh: return vmath::tanh(v);
      default: return vmath::exp(v);
    }
  };
  int64_t i = 0;
  for (; i + kW <= n; i += kW) Simd::store(y + i, apply(Simd::load(x + i)));
  if (i < n) {  // the tail through a full vector, so every element takes the same path
    float in[kW] = {}, out[kW];
    for (int64_t t = i; t < n; ++t) in[t - i] = x[t];
    Simd::store(out, apply(Simd::load(in)));
    for (int64_t t = i; t < n; ++t) y[t] = out[t - i];
  }
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS

namespace qwen3vl::detail {
QWEN3VL_DEFINE_ISA_TABLE(VectorMathKernels, &cpu::QWEN3VL_ISA_NS::vector_math)
}  // namespace qwen3vl::detail
