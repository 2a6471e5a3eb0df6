#define QWEN3VL_ISA_NS avx512
#include "../isa_prologue.hpp"
#include "linear_kernel.inl"
