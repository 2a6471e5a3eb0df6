#define QWEN3VL_ISA_NS avx2
#include "rope_kernel.inl"
