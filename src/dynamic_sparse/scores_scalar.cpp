#define QWEN3VL_ISA_NS scalar
#include "../cpu/isa_prologue.hpp"
#include "scores_kernel.inl"
