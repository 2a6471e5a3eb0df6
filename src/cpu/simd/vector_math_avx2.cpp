#define QWEN3VL_ISA_NS avx2
#include "simd_avx2.hpp"
#include "vector_math.inl"
#include "vector_math_entry.inl"
