#define QWEN3VL_ISA_NS scalar
#include "decode_kernel.inl"
