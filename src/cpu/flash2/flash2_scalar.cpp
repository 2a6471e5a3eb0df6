#define QWEN3VL_ISA_NS scalar
#include "../simd/simd_scalar.hpp"
#include "../simd/vector_math.inl"
#include "flash2_kernel.inl"
