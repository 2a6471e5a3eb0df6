#if !defined(__AVX2__) || !defined(__FMA__)
#error "projection_avx2.cpp needs the AVX2 flags of qwen3vl_add_isa_kernels"
#endif
#define QWEN3VL_ISA_NS avx2
#include "../cpu/isa_prologue.hpp"
#include "projection.inl"
