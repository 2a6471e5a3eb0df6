#if !defined(__AVX2__) || !defined(__FMA__)
#error "eigen_sgemm_avx2.cpp needs the AVX2 flags of qwen3vl_add_isa_kernels"
#endif
#define QWEN3VL_ISA_NS avx2
#include "../../src/cpu/isa_prologue.hpp"
#include "eigen_sgemm.inl"
