#define QWEN3VL_ISA_NS avx2
#include "decode_kernel.inl"
