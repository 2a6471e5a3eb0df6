#define QWEN3VL_ISA_NS avx512
#include "decode_kernel.inl"
