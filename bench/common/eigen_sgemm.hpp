// Eigen's GEMM split over oneTBB: the sgemm anchor where OpenBLAS is absent. Compiled once per ISA
// (eigen_sgemm_<isa>.cpp with the library's per-ISA flags and Eigen namespace).
#pragma once

#include <cstdint>

#include <tbb/task_arena.h>

#include "qwen3vl/cpu/isa.hpp"

namespace qwen3vl::bench {

// C = A B, row-major n x n, row blocks of C spread over `arena`'s threads.
void eigen_sgemm(CpuIsa isa, tbb::task_arena& arena, const float* a, const float* b, float* c,
                 int64_t n);

#define QWEN3VL_DECLARE_EIGEN_SGEMM(ns)                                                          \
  namespace ns {                                                                                 \
  void eigen_sgemm(tbb::task_arena& arena, const float* a, const float* b, float* c, int64_t n); \
  }
QWEN3VL_DECLARE_EIGEN_SGEMM(scalar)
QWEN3VL_DECLARE_EIGEN_SGEMM(avx2)
QWEN3VL_DECLARE_EIGEN_SGEMM(avx512)
#undef QWEN3VL_DECLARE_EIGEN_SGEMM

}  // namespace qwen3vl::bench
