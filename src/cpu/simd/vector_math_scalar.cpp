#define QWEN3VL_ISA_NS scalar
#include "simd_scalar.hpp"
#include "vector_math.inl"
#include "vector_math_entry.inl"
