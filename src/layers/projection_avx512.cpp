#if !defined(__AVX512F__)
#error "projection_avx512.cpp needs the AVX-512 flags of qwen3vl_add_isa_kernels"
#endif
#define QWEN3VL_ISA_NS avx512
#include "../cpu/isa_prologue.hpp"
#include "projection.inl"
