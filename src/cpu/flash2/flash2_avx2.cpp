#define QWEN3VL_ISA_NS avx2
#include "../simd/simd_avx2.hpp"
#include "../simd/vector_math.inl"
#include "flash2_kernel.inl"
