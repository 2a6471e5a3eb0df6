// Eigen's GEMM split over oneTBB: the sgemm anchor where OpenBLAS is absent. Compiled once per ISA
// (qwen3vl_add_isa_kernels: the library's per-ISA flags and Eigen namespace).
#pragma once

#include <cstdint>

#include <tbb/task_arena.h>

#include "qwen3vl/cpu/isa.hpp"
#include "src/cpu/isa_table.hpp"

namespace qwen3vl::bench {

// C = A B, row-major n x n, row blocks of C spread over `arena`'s threads.
void eigen_sgemm(CpuIsa isa, tbb::task_arena& arena, const float* a, const float* b, float* c,
                 int64_t n);

struct EigenSgemmKernels {
  void (*run)(tbb::task_arena& arena, const float* a, const float* b, float* c, int64_t n);
};
QWEN3VL_DECLARE_ISA_TABLE(EigenSgemmKernels)

}  // namespace qwen3vl::bench
