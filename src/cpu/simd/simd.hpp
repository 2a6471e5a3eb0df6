// The SIMD traits (Simd) and vector math (vmath) of the ISA this translation unit is compiled for.
#pragma once

#if defined(QWEN3VL_ISA_AVX512)
#include "simd_avx512.hpp"
#elif defined(QWEN3VL_ISA_AVX2)
#include "simd_avx2.hpp"
#else
#include "simd_scalar.hpp"
#endif
#include "vector_math.inl"
