#define QWEN3VL_ISA_NS avx512
#include "../simd/simd_avx512.hpp"
#include "../simd/vector_math.inl"
#include "flash2_kernel.inl"
