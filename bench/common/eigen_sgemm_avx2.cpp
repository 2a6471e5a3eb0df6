#define QWEN3VL_ISA_NS avx2
#include "../../src/cpu/isa_prologue.hpp"
#include "eigen_sgemm.inl"
