#define QWEN3VL_ISA_NS avx512
#include "rope_kernel.inl"
