// The one SIMD layer of the CPU kernels, for the ISA this translation unit is compiled for (a
// per-ISA unit of qwen3vl_add_isa_kernels): in namespace qwen3vl::detail::cpu::<isa>,
//   Simd        the ISA's vector traits: loads and stores of float / half / bfloat16 storage
//               (round to nearest even, as core/dtype.hpp), arithmetic, compares, the flash
//               kernels' register blocks, and (AVX2, AVX-512) RoPE's pair shuffles and the
//               lane-group reductions;
//   Simd4       traits whose vectors hold whole groups of 4 lanes: Simd on AVX2 and AVX-512, four
//               portable lanes in the scalar build (the decode kernel's [key][4 rows] scores);
//   vmath::     exp2, exp and tanh over either traits (vector_math.inl);
//   prefetch_l2 a software prefetch into L2.
#pragma once

#include <cstddef>

#if defined(QWEN3VL_ISA_AVX512)
#include "simd_avx512.hpp"
#elif defined(QWEN3VL_ISA_AVX2)
#include "simd_avx2.hpp"
#else
#include "simd_scalar.hpp"
#endif
#include "vector_math.inl"

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS {

// Software prefetch of the line at base + offset into L2 (prefetcht2). An asm statement, not
// __builtin_prefetch: GCC 12 deems a function that only prefetches free of side effects and drops
// calls to it. Base and offset are one addressing mode, so a loop over a row's lines costs no
// address arithmetic beyond its counter.
inline void prefetch_l2(const void* base, size_t offset) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht2 (%0,%1)" : : "r"(base), "r"(offset));
#else
  __builtin_prefetch(static_cast<const char*>(base) + offset, 0, 1);
#endif
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS
