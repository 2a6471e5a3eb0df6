#define QWEN3VL_ISA_NS scalar
#include "../isa_prologue.hpp"
#include "linear_kernel.inl"
