#define QWEN3VL_ISA_NS avx512
#include "../../src/cpu/isa_prologue.hpp"
#include "eigen_sgemm.inl"
