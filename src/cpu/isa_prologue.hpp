// Included first by every per-ISA translation unit, after it defines QWEN3VL_ISA_NS (scalar, avx2,
// avx512). It renames Eigen's namespace per ISA: Eigen's templates compiled with -mavx2 and with
// baseline flags would otherwise share symbol names, and the linker would keep one copy for both
// (an ODR violation that runs AVX2 code on CPUs without it).
#pragma once

#ifndef QWEN3VL_ISA_NS
#error "define QWEN3VL_ISA_NS before including isa_prologue.hpp"
#endif

#define QWEN3VL_CAT2(a, b) a##b
#define QWEN3VL_CAT(a, b) QWEN3VL_CAT2(a, b)
#define Eigen QWEN3VL_CAT(qwen3vl_eigen_, QWEN3VL_ISA_NS)
#define EIGEN_DONT_PARALLELIZE 1
#include <Eigen/Core>
