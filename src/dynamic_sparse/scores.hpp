// The one dense product the routers need, S = Q K^T over f32 rows, compiled once per ISA (Eigen's
// GEMM with that ISA's flags, in its own namespace) and reached through scores_kernel(isa).
#pragma once

#include <cstdint>

#include "qwen3vl/cpu/isa.hpp"

namespace qwen3vl::detail {

// s[r * lds + j] = sum_c q[r * ldq + c] * k[j * ldk + c] for r < rows, j < keys, c < d.
using ScoresFn = void (*)(const float* q, int64_t rows, int64_t ldq, const float* k, int64_t keys,
                          int64_t ldk, int64_t d, float* s, int64_t lds);

// For an ISA that resolve_cpu_isa() returned.
ScoresFn scores_kernel(CpuIsa isa);

namespace cpu::scalar {
void dynamic_sparse_scores(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t,
                           float*, int64_t);
}
namespace cpu::avx2 {
void dynamic_sparse_scores(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t,
                           float*, int64_t);
}
namespace cpu::avx512 {
void dynamic_sparse_scores(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t,
                           float*, int64_t);
}

}  // namespace qwen3vl::detail
