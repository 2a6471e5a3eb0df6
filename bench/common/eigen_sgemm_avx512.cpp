#if !defined(__AVX512F__)
#error "eigen_sgemm_avx512.cpp needs the AVX-512 flags of qwen3vl_add_isa_kernels"
#endif
#define QWEN3VL_ISA_NS avx512
#include "../../src/cpu/isa_prologue.hpp"
#include "eigen_sgemm.inl"
