#define QWEN3VL_ISA_NS scalar
#include "../../src/cpu/isa_prologue.hpp"
#include "eigen_sgemm.inl"
