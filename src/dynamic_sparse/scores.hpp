// The dense products the routers and exact top-k need, S = Q K^T and O += P V over f32 rows,
// compiled once per ISA (Eigen's GEMM with that ISA's flags, in its own namespace) and reached
// through isa_table<ScoresKernels>(isa).
#pragma once

#include <cstdint>

#include "qwen3vl/cpu/isa.hpp"
#include "src/cpu/isa_table.hpp"

namespace qwen3vl::detail {

// s[r * lds + j] = sum_c q[r * ldq + c] * k[j * ldk + c] for r < rows, j < keys, c < d.
using ScoresFn = void (*)(const float* q, int64_t rows, int64_t ldq, const float* k, int64_t keys,
                          int64_t ldk, int64_t d, float* s, int64_t lds);

// o[r * ldo + c] += sum_j p[r * ldp + j] * v[j * ldv + c] for r < rows, c < d, j < keys.
using PvFn = void (*)(const float* p, int64_t rows, int64_t ldp, const float* v, int64_t keys,
                      int64_t ldv, int64_t d, float* o, int64_t ldo);

struct ScoresKernels {
  ScoresFn scores;
  PvFn pv;
};
QWEN3VL_DECLARE_ISA_TABLE(ScoresKernels)

}  // namespace qwen3vl::detail
