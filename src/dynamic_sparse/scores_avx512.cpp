#define QWEN3VL_ISA_NS avx512
#include "../cpu/isa_prologue.hpp"
#include "scores_kernel.inl"
