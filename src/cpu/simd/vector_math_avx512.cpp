#define QWEN3VL_ISA_NS avx512
#include "simd_avx512.hpp"
#include "vector_math.inl"
#include "vector_math_entry.inl"
