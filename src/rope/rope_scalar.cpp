#define QWEN3VL_ISA_NS scalar
#include "rope_kernel.inl"
